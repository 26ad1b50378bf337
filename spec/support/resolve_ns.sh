#!/bin/sh
# resolve_ns.sh MODE CMD... - run CMD inside a private mount and network
# namespace made for spec/resolve_spec.lua (call it as
# `unshare -m -n sh resolve_ns.sh ...`): lo up, our own /etc/hosts,
# /etc/nsswitch.conf (files, then dns) and /etc/resolv.conf bind-mounted
# over the machine's, so no lookup ever reaches the machine's resolver.
#   MODE dns   dnsmasq on 127.0.0.1:53: *.x.test is 127.0.0.1, any other
#              name under .test does not exist (NXDOMAIN)
#   MODE hole  nothing on 127.0.0.1:53 here: CMD binds a UDP socket there
#              that never answers (resolv.conf: timeout 3 s, 1 attempt)
set -eu
mode=$1
shift
dir=$(mktemp -d "${TMPDIR:-/tmp}/lepoll-resolve.XXXXXX")
cleanup() {
  if [ -s "$dir/dnsmasq.pid" ]; then kill "$(cat "$dir/dnsmasq.pid")" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
ip link set lo up
cat > "$dir/hosts" <<'HOSTS'
127.0.0.1 localhost
::1 localhost
10.1.2.3 hosted.test
::1 two.test
127.0.0.1 two.test
HOSTS
echo "hosts: files dns" > "$dir/nsswitch.conf"
case $mode in
  dns)  printf 'nameserver 127.0.0.1\noptions timeout:2 attempts:1\n' > "$dir/resolv.conf" ;;
  hole) printf 'nameserver 127.0.0.1\noptions timeout:3 attempts:1\n' > "$dir/resolv.conf" ;;
  *) echo "resolve_ns.sh: unknown mode $mode" >&2; exit 2 ;;
esac
# unshare(1) made every mount private: these never reach the machine's view
for f in hosts nsswitch.conf resolv.conf; do
  mount --bind "$dir/$f" "/etc/$f"
done
if [ "$mode" = dns ]; then
  # in daemon mode dnsmasq returns once its socket is bound: ready. Not
  # under the sanitizers' LD_PRELOAD (dnsmasq is not ours, and with ASan
  # preloaded it never returns); never holding the caller's output pipe.
  timeout 20 env -u LD_PRELOAD dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --no-poll --user=root \
    --listen-address=127.0.0.1 --bind-interfaces --port=53 \
    --address=/x.test/127.0.0.1 --local=/test/ --pid-file="$dir/dnsmasq.pid" \
    </dev/null >"$dir/dnsmasq.log" 2>&1 || { cat "$dir/dnsmasq.log" >&2; exit 1; }
fi
"$@"
