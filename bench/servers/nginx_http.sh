#!/usr/bin/env bash
# The http workloads on nginx, for bench/run's reference rows:
#   bench/servers/nginx_http.sh PORT return   location / { return 200 "hello\n"; }
#   bench/servers/nginx_http.sh PORT lua      content_by_lua_block { ngx.say("hello") }
#   bench/servers/nginx_http.sh PORT MODE tls the same over TLS (`listen ... ssl`)
#                                             with $BENCH_TLS_CERT, $BENCH_TLS_KEY
#   bench/servers/nginx_http.sh PORT stream   no HTTP: the stream module answers
#                                             every TCP connection with "hello\n"
#                                             and closes it (the hello workload)
# (nginx_return.sh and nginx_lua.sh are the first two, nginx_https.sh the
# third, nginx_stream.sh the fourth, with the port last, as every bench
# server takes it.) The stream mode needs Debian's libnginx-mod-stream
# (ngx_stream_module.so in BENCH_NGINX_MODULES). Over TLS no
# session is ever resumed: no tickets, no session cache, so each connection
# is a full handshake (nginx 1.22 still sends TLS 1.3 tickets, stateful
# ones it cannot resume, without NumTickets 0; lepoll's tickets = false
# sends none). ssl_protocols as lepoll's default (1.2 and 1.3):
# nginx 1.22's default leaves TLS 1.3 out. PORT 0 picks a free one: nginx
# cannot report the port the kernel gave it, so one is picked here (bound
# to port 0 and released) and written into the configuration.
#
# One process: `daemon off; master_process off;` - the one that serves is
# the one exec'd here, so bench/run's pid for CPU and RSS is nginx itself
# (with a master it would be the worker's). BENCH_NGINX_WORKERS=N (the
# workers_* workloads) instead runs a master and N worker processes, the
# listener with `reuseport` (one socket per worker, as lepoll --workers
# binds by default); bench/run then sums the CPU of the master and its
# workers. A private prefix, config and
# temp paths live under a temporary directory, removed once nginx exits.
# "listening on 127.0.0.1:PORT" is printed by a background probe once a TCP
# connect to the port succeeds, so no load starts before nginx accepts.
# Knobs: BENCH_NGINX (default nginx), BENCH_NGINX_MODULES (the directory of
# Debian's libnginx-mod-http-lua .so files, default /usr/lib/nginx/modules).
set -eu
port=${1:?usage: nginx_http.sh PORT return|lua}
mode=${2:?usage: nginx_http.sh PORT return|lua}
tls=${3:-}
nginx=${BENCH_NGINX:-nginx}
mods=${BENCH_NGINX_MODULES:-/usr/lib/nginx/modules}
workers=${BENCH_NGINX_WORKERS:-}
case $port in ''|*[!0-9]*) echo "nginx_http.sh: bad port '$port'" >&2; exit 2 ;; esac
case $workers in
  '') procs="master_process off;
worker_processes 1;" ;;
  *[!0-9]*|0) echo "nginx_http.sh: BENCH_NGINX_WORKERS must be a positive integer" >&2; exit 2 ;;
  *) procs="master_process on;
worker_processes $workers;" ;;
esac

if [ "$port" = 0 ]; then
  port=$(python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/lepoll-nginx.XXXXXX")
modules=
case $mode in
  return) body='return 200 "hello\n";' ;;
  lua)
    # ndk first: the lua module needs its symbols
    modules="load_module $mods/ndk_http_module.so;
load_module $mods/ngx_http_lua_module.so;"
    body='content_by_lua_block { ngx.say("hello") }' ;;
  stream)
    modules="load_module $mods/ngx_stream_module.so;"
    [ -z "$tls" ] || { echo "nginx_http.sh: stream has no tls" >&2; exit 2; } ;;
  *) echo "nginx_http.sh: mode must be return, lua or stream" >&2; exit 2 ;;
esac
listen="127.0.0.1:$port"
[ -z "$workers" ] || listen="$listen reuseport"
ssl=
case $tls in
  '') ;;
  tls)
    cert=${BENCH_TLS_CERT:?nginx_http.sh: BENCH_TLS_CERT: the certificate path}
    key=${BENCH_TLS_KEY:?nginx_http.sh: BENCH_TLS_KEY: the key path}
    listen="$listen ssl"
    ssl="ssl_certificate $cert;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets off;
    ssl_session_cache off;
    ssl_conf_command NumTickets 0;" ;;
  *) echo "nginx_http.sh: the third argument is tls or nothing" >&2; exit 2 ;;
esac
nofile=$(ulimit -n)
[ "$nofile" = unlimited ] && nofile=65536
if [ "$mode" = stream ]; then
  # No http block: the stream server is all there is.
  service="stream {
  server {
    listen $listen;
    return \"hello\\n\";
  }
}"
else
  service="http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 75s;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  default_type text/plain;
  server {
    listen $listen;
    $ssl
    location / {
      $body
    }
  }
}"
fi
cat >"$dir/nginx.conf" <<CONF
$modules
daemon off;
$procs
error_log stderr warn;
pid $dir/nginx.pid;
events {
  worker_connections $((nofile - 64));
}
$service
CONF

# The probe is a child of nginx once the exec below has run; it waits for
# the port, says so, then waits for nginx to exit to remove the directory.
nginx_pid=$$
(
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "listening on 127.0.0.1:$port"
      break
    fi
    kill -0 "$nginx_pid" 2>/dev/null || break
    sleep 0.05
  done
  exec >/dev/null
  tail --pid="$nginx_pid" -f /dev/null 2>/dev/null
  rm -rf "$dir"
) &
exec "$nginx" -p "$dir" -e stderr -c "$dir/nginx.conf"
