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
%s}
]]

-- A server over TLS with the locations of the plain one.
local SSL_SERVER = [[
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s;
    ssl_certificate_key %s;
    root %s/www;
    location = /conn { return 200 "$connection $connection_requests\n"; }
    location = /short {
      keepalive_timeout 200ms;
      return 200 "$connection $connection_requests\n";
    }
    location = /moved { return 301 /www.txt; }
    location ~ \.shtml$ { ssi on; ssi_types text/plain; }
  }
]]

--- Start nginx serving dir/www (files: www.txt, big.bin of big bytes,
-- page.shtml, an SSI page nginx sends chunked). keepalive: its
-- keepalive_timeout (default "75s"). tls: an array of {cert, key}, one
-- more server over TLS each, with the same files, and /short whose
-- connection nginx closes after 200 ms idle. Returns {port, dir,
-- tls_ports = {port of each tls server}, stop = fn}.
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
    local ssl, tls_ports = {}, {}
    for i, t in ipairs(opts.tls or {}) do
      tls_ports[i] = free_port()
      ssl[i] = SSL_SERVER:format(tls_ports[i], t[1], t[2], dir)
    end
    write(dir .. "/nginx.conf", CONF:format(dir, dir, dir, dir, dir, dir, dir, ka, port, dir,
      table.concat(ssl)))
    local p = process.spawn(tools.tool("nginx -e " .. dir .. "/error.log -p " .. dir
      .. " -c " .. dir .. "/nginx.conf"), { limit = 120 })
    if pcall(framework.poll, function()
      if not accepting(port) then return false end
      for _, tp in ipairs(tls_ports) do
        if not accepting(tp) then return false end
      end
      return true
    end, 5, "nginx") then
      return { port = port, dir = dir, tls_ports = tls_ports, stop = function()
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

local PY_TLS = [[
import sys, ssl, socket, threading, http.server

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def setup(self):
        super().setup()
        self.count = 0
    def reply(self, body, status=200):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def until_close(self, body):
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
    def cut(self):
        # SSLSocket.shutdown drops the TLS session first: the TCP stream
        # ends without close_notify
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True
    def notify(self):
        # close_notify (unwrap waits for the client's), then the close
        self.wfile.flush()
        self.connection.unwrap().close()
        self.close_connection = True
    def do_GET(self):
        self.count += 1
        p = self.path
        if p == "/conn":
            self.reply(b"%d %d\n" % (self.client_address[1], self.count))
        elif p == "/bye":
            self.reply(b"bye\n")
            self.notify()
        elif p == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"py", b"thon", b"-chunks"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\nX-Trailer: t\r\n\r\n")
        elif p == "/big":
            n = int(self.headers["X-Size"])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            piece = b"0123456789abcdef" * 4096
            while n > 0:
                self.wfile.write(piece[:n])
                n -= len(piece)
        elif p == "/eof":
            self.until_close(b"until close_notify\n")
            self.notify()
        elif p == "/cut-eof":
            self.until_close(b"until a bare close\n")
            self.cut()
        elif p == "/cut-length":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"only ten..")
            self.cut()
        elif p == "/cut-chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5\r\nhello\r\n")
            self.cut()
        else:
            self.reply(b"python %s\n" % p.encode())
    def do_POST(self):
        self.count += 1
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.reply(body, 201)

class S(http.server.ThreadingHTTPServer):
    daemon_threads = True
    def handle_error(self, request, address): pass  # a refused handshake

servers = []
for cert, key in zip(sys.argv[1::2], sys.argv[2::2]):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    s = S(("127.0.0.1", 0), H)
    # the handshake runs in the connection's thread, at its first read
    s.socket = ctx.wrap_socket(s.socket, server_side=True, do_handshake_on_connect=False)
    servers.append(s)
    print("listening on 127.0.0.1:%d" % s.server_address[1], flush=True)
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
]]

--- Start python3's http.server over TLS (ssl), one server per {cert,
-- key} of the array certs, HTTP/1.1 with keep-alive: GET /conn answers
-- "CLIENTPORT N\n" (N: the connection's request count), /bye answers then
-- sends close_notify, /chunked chunked with a trailer, /big X-Size bytes,
-- /eof a body until close_notify, /cut-eof a body until a bare close,
-- /cut-length and /cut-chunked part of a body then a bare close (no
-- close_notify), others "python PATH\n"; POST echoes its body (201).
-- Returns {ports = {port of each}, stop = fn}.
function M.python_tls(certs)
  tools.need("python3")
  local path = os.tmpname()
  write(path, PY_TLS)
  local args = { "python3", process.shquote(path) }
  for _, c in ipairs(certs) do
    args[#args + 1] = process.shquote(c[1])
    args[#args + 1] = process.shquote(c[2])
  end
  local p = process.spawn(tools.tool(table.concat(args, " ")), { limit = 120 })
  local ports = {}
  for i = 1, #certs do
    local _, port = p:listening("127.0.0.1")
    ports[i] = port
  end
  return { ports = ports, stop = function()
    p:close()
    os.remove(path)
  end }
end

return M
