#!/usr/bin/env bash
# bench/run's nginx rows of the TLS workloads (see nginx_http.sh):
#   bench/servers/nginx_https.sh [return|lua] PORT    (default return)
# with BENCH_TLS_CERT and BENCH_TLS_KEY naming the certificate and key.
if [ $# -ge 2 ]; then mode=$1; shift; else mode="return"; fi
exec "$(dirname "$0")/nginx_http.sh" "${1:-0}" "$mode" tls
