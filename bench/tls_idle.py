#!/usr/bin/env python3
"""bench/tls_idle.py - the https_idle workload's client: bench/loadgen's
http_idle over TLS (loadgen is plain TCP).

    bench/tls_idle.py HOST PORT --conns N --seconds S [--batch B]

Opens N connections, at most B (default 256) still setting up at a time.
Each one completes a TLS handshake (no certificate verification, no
session offered: a full handshake), sends one keep-alive
`GET / HTTP/1.1` and reads the whole response, which must be 200 with the
body "hello\\n" (by Content-Length or chunked) and no `Connection: close`.
Then it is established and only watched: any byte or EOF from the server
counts it as dropped. Once all are established (or none progressed for
STALL_S seconds) it prints

    workload=https_idle conns=N established=M connect_s=T errors=E

holds them S seconds, and prints

    held_s=S dropped=D

- the lines of `loadgen http_idle`, which bench/run reads. Exits 0 when all
N were established and none dropped.
"""
import argparse
import errno
import re
import resource
import selectors
import socket
import ssl
import sys
import time

STALL_S = 30.0
REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
CONNECTING, HANDSHAKE, SENDING, READING, HELD = range(5)


class Conn:
    __slots__ = ("sock", "state", "inbuf", "sent")

    def __init__(self, sock):
        self.sock = sock
        self.state = CONNECTING
        self.inbuf = b""
        self.sent = 0


def response_done(buf):
    """True when buf holds one whole good response, False when more is
    needed; raises ValueError on a bad one."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    head = buf[:end].decode("latin-1").split("\r\n")
    if not re.match(r"HTTP/1\.1 200 ", head[0]):
        raise ValueError("status line " + head[0])
    fields = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip().lower()
    if "close" in fields.get("connection", ""):
        raise ValueError("Connection: close")
    body = buf[end + 4:]
    if "content-length" in fields:
        n = int(fields["content-length"])
        if len(body) < n:
            return False
        if body[:n] != b"hello\n":
            raise ValueError("body %r" % body[:n])
        return True
    if "chunked" in fields.get("transfer-encoding", ""):
        if not body.endswith(b"0\r\n\r\n"):
            return False
        if not re.fullmatch(rb"6\r\nhello\n\r\n0\r\n\r\n", body):
            raise ValueError("chunked body %r" % body)
        return True
    raise ValueError("no framing")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--conns", type=int, required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.conns + 64
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sel = selectors.DefaultSelector()
    conns = []
    pending = 0          # connections still setting up
    established = errors = dropped = 0
    t0 = time.monotonic()
    progress = t0

    def fail(c, why):
        nonlocal pending, errors
        if errors < 5:
            print("tls_idle: connection failed: %s" % why, file=sys.stderr)
        errors += 1
        pending -= 1
        sel.unregister(c.sock)
        c.sock.close()
        c.state = None

    def step(c):
        """Advance c as far as it goes; returns the events it waits for."""
        nonlocal pending, established
        if c.state == CONNECTING:
            e = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if e:
                raise OSError(e, "connect: " + errno.errorcode.get(e, str(e)))
            c.sock = ctx.wrap_socket(c.sock, do_handshake_on_connect=False)
            c.state = HANDSHAKE
        if c.state == HANDSHAKE:
            try:
                c.sock.do_handshake()
            except ssl.SSLWantReadError:
                return selectors.EVENT_READ
            except ssl.SSLWantWriteError:
                return selectors.EVENT_WRITE
            c.state = SENDING
        if c.state == SENDING:
            while c.sent < len(REQUEST):
                try:
                    c.sent += c.sock.send(REQUEST[c.sent:])
                except ssl.SSLWantReadError:
                    return selectors.EVENT_READ
                except ssl.SSLWantWriteError:
                    return selectors.EVENT_WRITE
            c.state = READING
        if c.state == READING:
            while True:
                try:
                    d = c.sock.recv(4096)
                except ssl.SSLWantReadError:
                    return selectors.EVENT_READ
                except ssl.SSLWantWriteError:
                    return selectors.EVENT_WRITE
                if not d:
                    raise OSError("closed before the response was complete")
                c.inbuf += d
                if response_done(c.inbuf):
                    break
            c.state = HELD
            c.inbuf = b""
            pending -= 1
            established += 1
        return selectors.EVENT_READ

    def start_more():
        nonlocal pending
        while len(conns) < a.conns and pending < a.batch:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            c = Conn(s)
            conns.append(c)
            pending += 1
            rc = s.connect_ex((a.host, a.port))
            if rc not in (0, errno.EINPROGRESS):
                sel.register(s, selectors.EVENT_WRITE, c)
                fail(c, "connect: " + errno.errorcode.get(rc, str(rc)))
                continue
            sel.register(s, selectors.EVENT_WRITE, c)

    def on_event(c):
        nonlocal dropped
        if c.state == HELD:
            try:
                d = c.sock.recv(1)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except OSError:
                d = b""
            del d
            dropped += 1
            sel.unregister(c.sock)
            c.sock.close()
            c.state = None
            return
        try:
            ev = step(c)
        except (OSError, ValueError) as e:
            fail(c, e)
            return
        sel.modify(c.sock, ev, c)

    start_more()
    while established + errors < a.conns:
        now = time.monotonic()
        if now - progress > STALL_S:
            break
        before = established + errors
        for key, _ in sel.select(timeout=1.0):
            on_event(key.data)
        if established + errors > before:
            progress = time.monotonic()
        start_more()
    connect_s = time.monotonic() - t0
    errors = a.conns - established       # failed, or stalled
    print("workload=https_idle conns=%d established=%d connect_s=%.3f errors=%d"
          % (a.conns, established - dropped, connect_s, errors), flush=True)
    t1 = time.monotonic()
    while True:
        left = a.seconds - (time.monotonic() - t1)
        if left <= 0:
            break
        for key, _ in sel.select(timeout=left):
            on_event(key.data)
    print("held_s=%.3f dropped=%d" % (time.monotonic() - t1, dropped), flush=True)
    ok = errors == 0 and dropped == 0 and established == a.conns
    for c in conns:
        if c.state is not None:
            c.sock.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
