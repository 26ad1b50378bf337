--- Test certificates, made at test time by the openssl command line (no key
-- is ever committed): EC P-256 keys, in a fresh 0700 temporary folder that
-- M.cleanup() removes (and the Lua state's close, at the latest).
--
--   local certs = require "support.certs"
--   local p = certs.make()   -- made once per process, then cached
--
-- p.ca                   the CA certificate (CN "lepoll test CA")
-- p.cert, p.key          server "localhost": DNS:localhost, IP:127.0.0.1, IP:::1
-- p.b_cert, p.b_key      server "b.test" (DNS:b.test, DNS:*.b.test), for SNI
-- p.expired_cert/_key    server "localhost", signed by the CA, expired in 2020
-- p.self_cert/_key       server "localhost", self-signed
-- p.client_cert/_key     client "client" (extendedKeyUsage clientAuth), for mTLS
-- p.enc_key              p.key encrypted with the password p.password
-- p.other_key            a key that matches no certificate here
-- p.big_cert, p.big_key  server "localhost" with a chain of about 90 KB
--                        (p.big_size bytes of PEM): more than a small
--                        SO_SNDBUF, less than OpenSSL's 100 KB default
--                        limit on a Certificate message
-- p.dir                  the folder
local process = require "support.process"

local q = process.shquote
local M = {}

local CONFIG = [[
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ v3_inter ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
nsComment = "%s"
[ localhost ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
[ btest ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:b.test, DNS:*.b.test
[ client ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
[ ca ]
default_ca = ca_default
[ ca_default ]
dir = %s
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[ policy_any ]
commonName = supplied
]]

local cached

-- Run the shell script (set -e: the first failing command stops it) and
-- raise with its output unless it succeeded.
local function run(script)
  local out, ok, code = process.sh("set -ex; " .. script, 120)
  if not ok then
    error("certs: openssl failed (exit " .. tostring(code) .. "):\n" .. out, 2)
  end
end

local function writefile(path, text)
  local f = assert(io.open(path, "wb"))
  assert(f:write(text))
  assert(f:close())
end

local function filesize(path)
  local f = assert(io.open(path, "rb"))
  local n = f:seek("end")
  f:close()
  return n
end

local serial = 0x1000

--- Make everything (once per process; cached until M.cleanup()).
function M.make()
  if cached then return cached end
  local dir = os.tmpname()
  assert(os.remove(dir))
  assert(os.execute("mkdir -m 700 " .. q(dir)), "certs: mkdir " .. dir)
  local p = { dir = dir, password = "lepoll-secret" }
  local function path(name) return dir .. "/" .. name end
  -- nsComment of an intermediate: 8 KiB, so that eight of them make the chain big
  writefile(path("openssl.cnf"), CONFIG:format(("x"):rep(8192), dir))
  writefile(path("index.txt"), "")
  writefile(path("serial"), "1000\n")
  assert(os.execute("mkdir " .. q(path("newcerts"))))
  local cnf = " -config " .. q(path("openssl.cnf"))
  local newkey = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"

  -- A CSR and key for cn, then a certificate of it signed by the issuer
  -- (cert, key) with the config's section ext.
  local function issue(name, cn, ext, issuer, issuer_key)
    serial = serial + 1
    return ("openssl req -new" .. newkey .. cnf .. " -subj " .. q("/CN=" .. cn)
      .. " -keyout " .. q(path(name .. ".key")) .. " -out " .. q(path(name .. ".csr"))
      .. "\nopenssl x509 -req -sha256 -days 3650 -in " .. q(path(name .. ".csr"))
      .. " -CA " .. q(issuer) .. " -CAkey " .. q(issuer_key)
      .. " -set_serial " .. serial .. " -extfile " .. q(path("openssl.cnf"))
      .. " -extensions " .. ext .. " -out " .. q(path(name .. ".pem")) .. "\n")
  end

  p.ca, p.ca_key = path("ca.pem"), path("ca.key")
  run("openssl req -x509 -sha256 -days 3650" .. newkey .. cnf .. " -extensions v3_ca"
    .. " -subj '/CN=lepoll test CA' -keyout " .. q(p.ca_key) .. " -out " .. q(p.ca) .. "\n"
    .. issue("localhost", "localhost", "localhost", p.ca, p.ca_key)
    .. issue("btest", "b.test", "btest", p.ca, p.ca_key)
    .. issue("client", "client", "client", p.ca, p.ca_key)
    .. issue("expired", "localhost", "localhost", p.ca, p.ca_key))
  p.cert, p.key = path("localhost.pem"), path("localhost.key")
  p.b_cert, p.b_key = path("btest.pem"), path("btest.key")
  p.client_cert, p.client_key = path("client.pem"), path("client.key")

  -- Expired: x509 -days takes no past dates, openssl ca takes explicit ones.
  p.expired_cert, p.expired_key = path("expired_ca.pem"), path("expired.key")
  run("openssl ca -batch -notext" .. cnf .. " -cert " .. q(p.ca) .. " -keyfile " .. q(p.ca_key)
    .. " -startdate 20200101000000Z -enddate 20200201000000Z -extensions localhost"
    .. " -extfile " .. q(path("openssl.cnf"))
    .. " -in " .. q(path("expired.csr")) .. " -out " .. q(p.expired_cert))

  p.self_cert, p.self_key = path("self.pem"), path("self.key")
  run("openssl req -x509 -sha256 -days 3650" .. newkey .. cnf .. " -extensions localhost"
    .. " -subj /CN=localhost -keyout " .. q(p.self_key) .. " -out " .. q(p.self_cert))

  p.enc_key, p.other_key = path("enc.key"), path("other.key")
  run("openssl pkey -in " .. q(p.key) .. " -aes256 -passout pass:" .. p.password
    .. " -out " .. q(p.enc_key) .. "\nopenssl genpkey -algorithm EC"
    .. " -pkeyopt ec_paramgen_curve:P-256 -out " .. q(p.other_key))

  -- The big chain: a leaf under ten intermediates of 8 KiB each.
  local script, issuer, issuer_key = {}, p.ca, p.ca_key
  for i = 1, 10 do
    local name = "inter" .. i
    script[#script + 1] = issue(name, "lepoll test intermediate " .. i, "v3_inter",
      issuer, issuer_key)
    issuer, issuer_key = path(name .. ".pem"), path(name .. ".key")
  end
  script[#script + 1] = issue("big", "localhost", "localhost", issuer, issuer_key)
  local parts = { q(path("big.pem")) }
  for i = 10, 1, -1 do parts[#parts + 1] = q(path("inter" .. i .. ".pem")) end
  script[#script + 1] = "cat " .. table.concat(parts, " ") .. " > " .. q(path("bigchain.pem"))
  run(table.concat(script))
  p.big_cert, p.big_key = path("bigchain.pem"), path("big.key")
  p.big_size = filesize(p.big_cert)

  cached = p
  return p
end

--- Remove the folder and forget it (the next make() starts again).
function M.cleanup()
  if cached then
    os.execute("rm -rf " .. q(cached.dir))
    cached = nil
  end
end

-- At the latest when the Lua state closes.
M._sentinel = setmetatable({}, { __gc = function() M.cleanup() end })

return M
