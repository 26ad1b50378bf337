#!/usr/bin/env bash
# bench/run's nginx lua row: bench/servers/nginx_lua.sh PORT (see nginx_http.sh)
exec "$(dirname "$0")/nginx_http.sh" "${1:-0}" lua
