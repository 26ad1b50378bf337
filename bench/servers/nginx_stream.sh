#!/usr/bin/env bash
# bench/run's nginx stream row (workers_hello): bench/servers/nginx_stream.sh PORT
# answers every TCP connection with "hello\n" and closes it, as the hello
# workload expects (see nginx_http.sh; BENCH_NGINX_WORKERS=N for N workers)
exec "$(dirname "$0")/nginx_http.sh" "${1:-0}" stream
