"""Clients for spec/workers_spec.lua against spec/support/workers_app.lua
under lepoll --workers N. Every wait is bounded; results are printed as
"key value" lines for the spec to assert on.

  workers_client.py counts PORT N           N requests, each on a new connection
  workers_client.py kill9 PORT              kill -9 one worker during a client loop
  workers_client.py drain PORT MASTER       a request in flight across SIGTERM
  workers_client.py immediate PORT MASTER   the same with a second SIGTERM
  workers_client.py rehup PORT MASTER       a request in flight on an old
                                            worker across two SIGHUPs
"""
import os
import signal
import socket
import sys
import time

HOST = "127.0.0.1"


def who(reply):
    # "worker ID pid PID inode INODE init ID"
    parts = reply.split()
    i = parts.index("worker")
    return parts[i + 1], int(parts[i + 3])


def get(port, path="/", timeout=5):
    """One request on a new connection (HTTP/1.0: the server closes)."""
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        s.sendall(("GET %s HTTP/1.0\r\n\r\n" % path).encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError("bad reply: %r" % data[:200])
    return body.decode()


class KeepAlive:
    """One keep-alive connection: request() returns the body or raises."""

    def __init__(self, port):
        self.s = socket.create_connection((HOST, port), timeout=5)
        self.buf = b""

    def request(self, path="/"):
        self.s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        while b"\r\n\r\n" not in self.buf:
            b = self.s.recv(65536)
            if not b:
                raise ConnectionError("closed")
            self.buf += b
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        n = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":")[1])
        while len(rest) < n:
            b = self.s.recv(65536)
            if not b:
                raise ConnectionError("closed mid-body")
            rest += b
        self.buf = rest[n:]
        return rest[:n].decode()


def read_until(c, mark, timeout=10):
    """Read c until mark arrives (what was read, up to it) or the
    connection ends (None)."""
    c.s.settimeout(timeout)
    while mark not in c.buf:
        b = c.s.recv(65536)
        if not b:
            return None
        c.buf += b
    i = c.buf.index(mark) + len(mark)
    got, c.buf = c.buf[:i], c.buf[i:]
    return got


def counts(port, n):
    seen = {}
    for _ in range(n):
        wid, _ = who(get(port))
        seen[wid] = seen.get(wid, 0) + 1
    for wid in sorted(seen):
        print("worker", wid, seen[wid])


def kill9(port):
    # keep-alive connections until each of two workers holds three
    conns = {}
    for _ in range(400):
        c = KeepAlive(port)
        wid, pid = who(c.request())
        conns.setdefault((wid, pid), [])
        if len(conns[(wid, pid)]) < 3:
            conns[(wid, pid)].append(c)
        else:
            c.s.close()
        if len(conns) >= 2 and all(len(v) >= 3 for v in conns.values()):
            break
    keys = sorted(conns)
    if len(keys) < 2:
        print("error only one worker answered")
        return
    victim, survivor = keys[0], keys[1]
    print("victim", victim[0], victim[1])
    # a request in flight on every connection of the victim's: each
    # handler has written its first chunk and sleeps
    inflight = []
    for c in conns[victim]:
        c.s.sendall(b"GET /slow?ms=3000 HTTP/1.1\r\nHost: x\r\n\r\n")
        read_until(c, b"start\n")
        inflight.append(c)
    os.kill(victim[1], signal.SIGKILL)
    killed_at = time.monotonic()
    failed = 0
    for c in inflight:
        try:
            if not read_until(c, b"\r\n0\r\n\r\n"):
                failed += 1
        except OSError:
            failed += 1
    print("victim_failed", failed, "of", len(inflight))
    ok = 0
    for c in conns[survivor]:
        for _ in range(5):
            wid, pid = who(c.request())
            if (wid, pid) == survivor:
                ok += 1
    print("survivor_ok", ok, "of", 5 * len(conns[survivor]))
    # a new worker with the victim's number, from new connections
    new_pid = None
    while time.monotonic() - killed_at < 5 and new_pid is None:
        wid, pid = who(get(port))
        if wid == victim[0] and pid != victim[1]:
            new_pid = pid
    if new_pid is None:
        print("replacement none")
    else:
        print("replacement", new_pid, "after_ms", int((time.monotonic() - killed_at) * 1000))


def drain(port, master, twice, group=False):
    c = KeepAlive(port)
    _, worker = who(c.request())
    c.s.sendall(b"GET /slow?ms=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (5000 if twice else 600))
    read_until(c, b"start\n")
    if group:
        # a terminal's Ctrl-C: SIGINT to every process of the group
        os.kill(worker, signal.SIGINT)
        os.kill(master, signal.SIGINT)
    else:
        os.kill(master, signal.SIGTERM)
    if twice:
        # the first was read (the sockets are closed) before the second
        # goes: two pending TERMs would be one
        while True:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                time.sleep(0.01)
            except ConnectionRefusedError:
                break
        os.kill(master, signal.SIGTERM)
    start = time.monotonic()
    try:
        done = read_until(c, b"\r\n0\r\n\r\n")
        print("inflight", "answered" if done else "cut")
    except OSError as e:
        print("inflight", "error", e.errno)
    print("inflight_ms", int((time.monotonic() - start) * 1000))
    # then the connection closes (the drain's last word)
    try:
        c.s.settimeout(5)
        closed = c.s.recv(65536) == b""
    except OSError:
        closed = True
    print("closed", "yes" if closed else "no")
    # no worker accepts after the drain began: a new connection is refused
    refused = "no"
    while time.monotonic() - start < 5:
        try:
            s = socket.create_connection((HOST, port), timeout=1)
            s.close()
            time.sleep(0.02)
        except ConnectionRefusedError:
            refused = "yes"
            break
    print("refused", refused)


def reload_term(port, master):
    """SIGTERM while a reload's old workers drain: a request in flight on
    an old worker is still answered."""
    old = set()
    for _ in range(200):
        old.add(who(get(port))[1])
        if len(old) == 2:
            break
    c = KeepAlive(port)
    c.s.sendall(b"GET /slow?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n")
    read_until(c, b"start\n")
    os.kill(master, signal.SIGHUP)
    new = set()
    deadline = time.monotonic() + 10
    while len(new) < 2 and time.monotonic() < deadline:
        _, pid = who(get(port))
        if pid not in old:
            new.add(pid)
    print("new_workers", len(new))
    os.kill(master, signal.SIGTERM)
    done = read_until(c, b"\r\n0\r\n\r\n")
    print("inflight", "answered" if done else "cut")


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def rehup(port, master):
    # both first-generation workers, by pid
    pids = set()
    deadline = time.monotonic() + 10
    while len(pids) < 2 and time.monotonic() < deadline:
        pids.add(who(get(port))[1])
    c = KeepAlive(port)
    c.s.sendall(b"GET /slow?ms=6000 HTTP/1.1\r\nHost: x\r\n\r\n")
    read_until(c, b"start\n")
    os.kill(master, signal.SIGHUP)
    # the first reload told its old workers to drain once the one that
    # does not hold c (nothing to drain) is gone
    deadline = time.monotonic() + 20
    while not any(gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    print("first_reload", "drained" if any(gone(p) for p in pids) else "no")
    os.kill(master, signal.SIGHUP)
    start = time.monotonic()
    try:
        done = read_until(c, b"\r\n0\r\n\r\n", 20)
        print("inflight", "answered" if done else "cut")
    except OSError as e:
        print("inflight", "error", e.errno)
    print("inflight_ms", int((time.monotonic() - start) * 1000))


def connect(target):
    if target.startswith("/"):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(target)
        return s
    return socket.create_connection((HOST, int(target)), timeout=5)


def spin(target):
    """While the worker that took a /spin request is busy, another answers."""
    c = KeepAlive.__new__(KeepAlive)
    c.s, c.buf = connect(target), b""
    c.s.sendall(b"GET /spin?ms=1500 HTTP/1.1\r\nHost: x\r\n\r\n")
    read_until(c, b"start\n")
    d = connect(target)
    d.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        b = d.recv(65536)
        if not b:
            break
        data += b
    print("other", who(data.decode())[0])
    print("spinner", who(read_until(c, b"\r\n0\r\n\r\n").decode())[0])


def activated(port):
    """The first connection starts the program (systemd-socket-activate):
    connect until the socket is there, then one request."""
    deadline = time.monotonic() + 10
    while True:
        try:
            print("reply", get(port).strip())
            return
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def main():
    mode = sys.argv[1]
    if mode == "spin":
        spin(sys.argv[2])
        return
    port = int(sys.argv[2])
    if mode == "activated":
        activated(port)
    elif mode == "counts":
        counts(port, int(sys.argv[3]))
    elif mode == "kill9":
        kill9(port)
    elif mode == "drain":
        drain(port, int(sys.argv[3]), False)
    elif mode == "immediate":
        drain(port, int(sys.argv[3]), True)
    elif mode == "group":
        drain(port, int(sys.argv[3]), False, True)
    elif mode == "reload_term":
        reload_term(port, int(sys.argv[3]))
    elif mode == "rehup":
        rehup(port, int(sys.argv[3]))
    sys.stdout.flush()


main()
