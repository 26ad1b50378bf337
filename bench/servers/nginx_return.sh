#!/usr/bin/env bash
# bench/run's nginx return row: bench/servers/nginx_return.sh PORT (see nginx_http.sh)
exec "$(dirname "$0")/nginx_http.sh" "${1:-0}" return
