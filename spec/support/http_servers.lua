--- Servers no one here wrote, for spec/http_client_spec.lua: nginx
-- (nginx-light, a config in a temporary prefix) and python3's
-- http.server (a small handler script). Each runs as a child process,
-- bounded by timeout(1) (support.process), stopped by its pid.
local net = require "lepoll.net"
local process = require "support.process"
local tools = require "support.http_tools"
local framework = require "support.framework"

local M = {}

-- A port that was free a moment ago: bind 127.0.0.1:0, read it, close.
-- (nginx cannot listen on port 0; another process may take the port in
-- between: start_nginx tries again with another.)
local function free_port()
  local fd = assert(net.socket(net.INET, net.STREAM, net.CLOEXEC))
  assert(net.bind(fd, "127.0.0.1", 0))
  local _, port = assert(net.getsockname(fd))
  fd:close()
  return port
end

local function write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- Whether something accepts on 127.0.0.1:port now (a blocking connect
-- to the loopback: refused or accepted at once).
local function accepting(port)
  local fd = assert(net.socket(net.INET, net.STREAM, net.CLOEXEC))
  local ok = net.connect(fd, "127.0.0.1", port)
  fd:close()
  return ok == true
end

local CONF = [[
daemon off;
master_process off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %s/tmp;
  proxy_temp_path %s/tmp;
  fastcgi_temp_path %s/tmp;
  uwsgi_temp_path %s/tmp;
  scgi_temp_path %s/tmp;
  keepalive_timeout %s;
  default_type text/plain;
  server {
    listen 127.0.0.1:%d;
    root %s/www;
    location = /conn { return 200 "$connection $connection_requests\n"; }
    location = /moved { return 301 /www.txt; }
    location ~ \.shtml$ { ssi on; ssi_types text/plain; }
  }
}
]]

--- Start nginx serving dir/www (files: www.txt, big.bin of big bytes,
-- page.shtml, an SSI page nginx sends chunked). keepalive: its
-- keepalive_timeout (default "75s"). Returns {port, dir, stop = fn}.
function M.nginx(opts)
  opts = opts or {}
  tools.need("nginx")
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir .. "/www " .. dir .. "/tmp"))
  write(dir .. "/www/www.txt", "hello from nginx\n")
  write(dir .. "/www/big.bin", ("0123456789abcdef"):rep((opts.big or 65536) // 16))
  write(dir .. "/www/page.shtml", "a<!--# echo var=\"document_uri\" -->b\n")
  for _ = 1, 5 do
    local port = free_port()
    local ka = opts.keepalive or "75s"
    write(dir .. "/nginx.conf", CONF:format(dir, dir, dir, dir, dir, dir, dir, ka, port, dir))
    local p = process.spawn(tools.tool("nginx -e " .. dir .. "/error.log -p " .. dir
      .. " -c " .. dir .. "/nginx.conf"), { limit = 120 })
    if pcall(framework.poll, function() return accepting(port) end, 5, "nginx") then
      return { port = port, dir = dir, stop = function()
        p:close()
        os.execute("rm -rf " .. process.shquote(dir))
      end }
    end
    p:close()  -- the port was taken meanwhile: another
  end
  os.execute("rm -rf " .. process.shquote(dir))
  error("nginx did not start")
end

local PY = [[
import sys, http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/chunked":
            self.protocol_version = "HTTP/1.1"
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            for part in (b"py", b"thon", b"-chunks"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\nX-Trailer: t\r\n\r\n")
            return
        body = ("python %s\n" % self.path).encode() * int(self.headers.get("X-Repeat", "1"))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        n = int(self.headers["Content-Length"])
        body = self.rfile.read(n)
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
s = socketserver.TCPServer(("127.0.0.1", 0), H)
print("listening on 127.0.0.1:%d" % s.server_address[1], flush=True)
s.serve_forever()
]]

--- Start python3's http.server with a handler: GET /chunked answers
-- chunked (HTTP/1.1, with a trailer), other GETs "python PATH\n" (times
-- X-Repeat) as HTTP/1.0 delimited by the close; POST echoes its body
-- (201). Returns {port, stop = fn}.
function M.python()
  tools.need("python3")
  local path = os.tmpname()
  write(path, PY)
  -- python3 is timeout(1)'s own child (env execs it), so that Proc:kill
  -- reaches it: behind a shell it would outlive the kill, holding the
  -- pipe Proc:wait reads to its end
  local p = process.spawn(tools.tool("python3 " .. process.shquote(path)), { limit = 120 })
  local _, port = p:listening("127.0.0.1")
  return { port = port, stop = function()
    p:close()
    os.remove(path)
  end }
end

return M
