# SPDX-License-Identifier: MIT
"""Web viewers (issue 15): N WebSocket readers of one console, ttyhub-webd against websockify.

ttyhub: tests/fake-guest (1,024-byte numbered lines) -> ttyhubd -> ttyhub-webd (plain HTTP on
loopback), read by N WebSocket readers (`ttyhub.v1`, HELLO read-only, every OUTPUT
acknowledged at once as the page does).  The readers are one `wsload` process (C, one epoll
loop: N browsers' worth of WebSocket without the rendering); each reader's console bytes go
through a pipe of its own to one `sshload read --fd` process, the line checker every
fan-out figure uses.  Links are minted with `ttyhub web-link` (the local admin) and redeemed
at POST /api/session as a page does; ttyhub-webd allows 10 WebSockets per web session and 50
per client address, so the readers share ceil(N/8) sessions and come from 127.0.0.2, .3, ...
(40 a source address), as N browsers on several hosts would.

websockify (Debian websockify, what OpenStack's serial console proxy is built on): the same
guest socket with `--unix-target`, read by the same wsload (its binary relay: a message's
payload is console bytes).  It opens a connection to the socket per WebSocket; the guest
socket, like QEMU's chardev, serves one client, so one reader gets the console and the
others nothing: it is measured at N = 1 and 10 only, with the number of readers it serves.

For each N, two windows per system, each on a fresh set-up:
* paced guest (RATE[N], as the SSH fan-out): every line must arrive; lines lost (announced
  or not) and the slowest reader's share of the guest's lines;
* unpaced guest: aggregate delivered MB/s, slowest and median reader, server CPU.
Keystroke echo latency at the writer: `sshload guest --echo` -> ttyhubd -> ttyhub-webd, the
writer a read-write WebSocket (a small Python client: one byte, then wait for its echo in an
OUTPUT) while N readers (wsload, read-only) watch; websockify: the writer is its only
client; the floor is the same Python client on the guest socket itself.
"""

import base64
import http.client
import json
import os
import random
import re
import select
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402

TITLE = "Web viewers: N WebSocket readers of one console"
ORDER = 25
LINE = 1024
RATE = {1: 8_000_000, 10: 5_000_000, 100: 500_000}
PEER = "websockify"
PEER_NS = (1, 10)          # websockify serves one reader per chardev: more shows nothing new
PER_SESSION = 8            # readers per web session (ttyhub-webd allows 10)
PER_SOURCE = 40            # readers per source address (ttyhub-webd allows 50)
COOKIE_RE = re.compile(r"^\s*((?:__Host-)?ttyhub)=([^;]+)", re.I)


# --- a small RFC 6455 client (the writer and the checks; wsload holds the readers) ------------

class WsClient:
    """One WebSocket on a plain TCP connection; frames are sent masked, read whole."""

    def __init__(self, port, path="/ws", protocol=None, origin=None, cookie=None, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        head = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port, "Upgrade: websocket",
                "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        if protocol:
            head.append("Sec-WebSocket-Protocol: " + protocol)
        if origin:
            head.append("Origin: " + origin)
        if cookie:
            head.append("Cookie: " + cookie)
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            d = self.sock.recv(4096)
            if not d:
                raise AssertionError("the server closed during the upgrade: %r" % self.buf)
            self.buf += d
        status, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if not status.startswith(b"HTTP/1.1 101"):
            raise AssertionError("upgrade refused: %r" % status[:300])

    def send(self, payload, opcode=2):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack(">BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack(">BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack(">BBQ", 0x80 | opcode, 0x80 | 127, n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + body)

    def _need(self, n):
        while len(self.buf) < n:
            d = self.sock.recv(65536)
            if not d:
                raise AssertionError("connection closed")
            self.buf += d

    def recv(self):
        """The next data message's payload (pings answered, fragments joined); None on close."""
        msg = b""
        while True:
            self._need(2)
            b0, b1 = self.buf[0], self.buf[1]
            n, at = b1 & 0x7f, 2
            if n == 126:
                self._need(4)
                n, at = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                self._need(10)
                n, at = struct.unpack(">Q", self.buf[2:10])[0], 10
            self._need(at + n)
            payload, self.buf = self.buf[at:at + n], self.buf[at + n:]
            op = b0 & 0x0f
            if op == 8:
                return None
            if op == 9:
                self.send(payload, 10)
                continue
            if op in (0, 1, 2):
                msg += payload
                if b0 & 0x80:
                    return msg

    def close(self):
        try:
            self.send(struct.pack(">H", 1000), 8)
        except OSError:
            pass
        self.sock.close()


# --- ttyhub: ttyhubd + ttyhub-webd, links and web sessions ------------------------------------

class WebTtyhub:
    """ttyhubd serving CONSOLE from SOCK (with --web-url) and ttyhub-webd in front of it, on
    plain HTTP at 127.0.0.1:port."""

    def __init__(self, ctx, wd, console, sock):
        self.ctx = ctx
        self.console = console
        self.port = benchlib.free_port()
        self.origin = "http://127.0.0.1:%d" % self.port
        self.hub = benchlib.Ttyhub(ctx, os.path.join(wd, "hub"), {console: sock}, front=False,
                                   daemon_args=["--web-url", self.origin + "/"])
        argv = [benchlib.exe(ctx, "web-front", "ttyhub-webd"), "--listen",
                "127.0.0.1:%d" % self.port, "--broker", self.hub.daemon.socket]
        static = os.path.join(ctx.build, "web")
        if os.path.isdir(static):
            argv += ["--static-dir", static]
        self.log_path = os.path.join(wd, "ttyhub-webd.log")
        self.log = open(self.log_path, "ab")
        self.webd = benchlib.spawn(argv, stdout=self.log, stderr=self.log)
        try:
            benchlib.wait_port(self.port)
        except AssertionError:
            raise AssertionError("ttyhub-webd does not listen:\n" + self.log_tail())
        if self.webd.poll() is not None:
            raise AssertionError("ttyhub-webd exited:\n" + self.log_tail())

    def log_tail(self):
        with open(self.log_path, "rb") as f:
            return f.read()[-3000:].decode(errors="replace")

    def mint(self, ro):
        """A one-time link's token, minted by the local admin (`ttyhub web-link`)."""
        args = ["web-link", self.console] + (["--ro"] if ro else [])
        r = self.hub.daemon.cli(*args)
        out = r.stdout.decode(errors="replace")
        m = re.search(r"#t=([A-Za-z0-9_-]+)", out)
        if r.returncode != 0 or not m:
            raise AssertionError("ttyhub web-link failed (%s): %s%s" % (
                r.returncode, out, r.stderr.decode(errors="replace")))
        return m.group(1)

    def session(self, ro=True):
        """A web session's cookie ("NAME=SECRET"), redeemed as the page does."""
        token = self.mint(ro)
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("POST", "/api/session", json.dumps({"token": token}),
                      {"Content-Type": "application/json", "Origin": self.origin})
            r = c.getresponse()
            body = r.read()
            cookie = r.getheader("Set-Cookie") or ""
        finally:
            c.close()
        m = COOKIE_RE.match(cookie)
        if r.status != 200 or not m:
            raise AssertionError("POST /api/session: %d %r (Set-Cookie %r)\n%s" % (
                r.status, body[:300], cookie, self.log_tail()))
        return "%s=%s" % (m.group(1), m.group(2))

    def pids(self):
        return {"ttyhubd": [self.hub.daemon.pid()], "ttyhub-webd": [self.webd.pid]}

    def stop(self):
        benchlib.kill(self.webd)
        self.log.close()
        self.hub.stop()


class Websockify:
    """websockify 127.0.0.1:port --unix-target SOCK (one process per connection)."""

    def __init__(self, ctx, wd, sock):
        self.port = benchlib.free_port()
        self.log = open(os.path.join(wd, "websockify.log"), "ab")
        self.proc = benchlib.spawn(["websockify", "127.0.0.1:%d" % self.port,
                                    "--unix-target=" + sock], stdout=self.log,
                                   stderr=self.log)
        benchlib.wait_port(self.port)

    def pids(self):
        return {PEER: [self.proc.pid] + benchlib.children(self.proc.pid)}

    def stop(self):
        benchlib.kill(self.proc)
        self.log.close()


# --- readers --------------------------------------------------------------------------------

class Readers:
    """N WebSocket readers (one wsload process) whose console bytes go, a pipe each, to one
    `sshload read --fd` (the line checker)."""

    def __init__(self, ctx, port, n, check=True, hello=None, cookies=(), origin=None,
                 protocol=None):
        self.n = n
        argv = [benchlib.exe(ctx, "tests", "bench", "wsload"), "--port", str(port)]
        if hello is not None:
            argv += ["--hello", json.dumps(hello), "--protocol", protocol or "ttyhub.v1",
                     "--src-base", "2", "--per-src", str(PER_SOURCE)]
        if origin:
            argv += ["--origin", origin]
        for c in cookies:
            argv += ["--cookie", c]
        self.check = None
        rfds, wfds = [], []
        if check:
            for _ in range(n):
                r, w = os.pipe()
                rfds.append(r)
                wfds.append(w)
                argv += ["--out", str(w)]
            self.check = benchlib.Load(ctx, sum((["--fd", str(r)] for r in rfds), []),
                                       pass_fds=rfds, line_length=LINE)
        else:
            argv += ["-n", str(n)]
        self.proc = benchlib.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   pass_fds=wfds, text=True, bufsize=1)
        for fd in rfds + wfds:
            os.close(fd)
        if self.check:
            self.check.wait_connected(30)

    def _line(self, word, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("wsload: no '%s' line within %g s" % (word, timeout))
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if not r:
                continue
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError("wsload exited (%s) before '%s'" % (self.proc.wait(), word))
            w, _, rest = line.partition(" ")
            if w == word:
                return json.loads(rest)

    def wait_connected(self, timeout=120):
        return self._line("connected", timeout)

    def mark(self):
        self.proc.stdin.write("mark\n")
        self.proc.stdin.flush()
        return self._line("snap", 30)

    def wait_attached(self, want, timeout=60):
        """Until WANT readers are attached (ttyhub: got a STATUS); the last snapshot."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.mark()
            if s["attached"] >= want or time.monotonic() > deadline:
                return s
            time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                benchlib.kill(self.proc)
        if self.check:
            self.check.stop()


def _window(ctx, readers, pids, guest, warm, dur):
    time.sleep(warm)
    ga = guest.stats()
    a = readers.check.mark()
    ca = {k: benchlib.cpu_of(v) for k, v in pids.items()}
    time.sleep(dur)
    b = readers.check.mark()
    gb = guest.stats()
    cb = {k: benchlib.cpu_of(v) for k, v in pids.items()}
    ws = readers.mark()
    w = benchlib.window(a, b)
    mbps = [x / w["seconds"] / 1e6 for x in w["bytes"]]
    guest_lines = gb["lines_written"] - ga["lines_written"]
    return dict(agg=sum(mbps), min=min(mbps), med=benchlib.median(mbps),
                served=sum(1 for x in w["bytes"] if x > 0),
                lost_silent=sum(w["lost_silent"]), lost_announced=sum(w["lost_announced"]),
                lines_min=min(w["lines"]), lines_max=max(w["lines"]), guest_lines=guest_lines,
                guest=(gb["bytes_written"] - ga["bytes_written"]) / (
                    gb["elapsed_s"] - ga["elapsed_s"]) / 1e6,
                cpu={k: (cb[k] - ca[k]) / w["seconds"] for k in pids},
                client=w["cpu"] / w["seconds"], open=ws["open"], errors=ws["errors"][:3],
                notices=sum(ws["notices"]))


def _run_ttyhub(ctx, n, rate, warm, dur):
    wd = ctx.workdir("web-hub%d" % n)
    guest = benchlib.FakeGuest(ctx, os.path.join(wd, "g.sock"), rate=rate,
                               line_length=LINE).start()
    web = readers = None
    try:
        web = WebTtyhub(ctx, wd, "fg", guest.sock)
        sessions = (n + PER_SESSION - 1) // PER_SESSION
        cookies = [web.session(ro=True) for _ in range(sessions)]
        t0 = time.monotonic()
        readers = Readers(ctx, web.port, n, hello={"console": "fg", "mode": "ro",
                                                   "cols": 80, "rows": 24},
                          cookies=cookies, origin=web.origin)
        c = readers.wait_connected()
        s = readers.wait_attached(n)
        if s["attached"] < n:
            raise AssertionError("ttyhub-webd: %d of %d readers attached (%s)\n%s" % (
                s["attached"], n, s["errors"][:3], web.log_tail()))
        ctx.log("web ttyhub N=%d rate %s: %d readers attached in %.1f s (%d failed)"
                % (n, rate or "unpaced", s["attached"], time.monotonic() - t0, c["failed"]))
        pids = web.pids()
        pids["ttyhubd"] = pids["ttyhubd"]
        return _window(ctx, readers, pids, guest, warm, dur)
    finally:
        if readers:
            readers.stop()
        if web:
            web.stop()
        guest.stop()


def _run_websockify(ctx, n, rate, warm, dur):
    wd = ctx.workdir("web-wsfy%d" % n)
    guest = benchlib.FakeGuest(ctx, os.path.join(wd, "g.sock"), rate=rate,
                               line_length=LINE).start()
    peer = readers = None
    try:
        peer = Websockify(ctx, wd, guest.sock)
        readers = Readers(ctx, peer.port, n)
        c = readers.wait_connected()
        ctx.log("web websockify N=%d rate %s: %d upgrades answered, %d failed"
                % (n, rate or "unpaced", c["open"], c["failed"]))
        # The first reader's relay holds the guest; wait until its bytes flow.
        deadline = time.monotonic() + 20
        while not any(readers.mark()["bytes"]):
            if time.monotonic() > deadline:
                raise AssertionError("websockify: no reader gets anything")
            time.sleep(0.1)
        return _window(ctx, readers, peer.pids(), guest, warm, dur)
    finally:
        if readers:
            readers.stop()
        if peer:
            peer.stop()
        guest.stop()


# --- keystroke echo latency -----------------------------------------------------------------

def _echo_times(send, recv_until, count):
    """Send COUNT keystrokes (a..z in turn, 2-6 ms apart); microseconds to each echo."""
    out = []
    rnd = random.Random(15)
    for i in range(count):
        k = bytes([0x61 + i % 26])
        t = time.perf_counter_ns()
        send(k)
        recv_until(k)
        out.append((time.perf_counter_ns() - t) / 1000.0)
        time.sleep(rnd.uniform(0.002, 0.006))
    return out


def _lat_direct(ctx, count):
    wd = ctx.workdir("web-lat-direct")
    g = benchlib.EchoGuest(ctx, os.path.join(wd, "e.sock"), echo=True).start()
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(g.sock)

        def recv_until(k):
            while k not in s.recv(4096):
                pass
        return _echo_times(s.sendall, recv_until, count)
    finally:
        s.close()
        g.stop()


def _lat_websockify(ctx, count):
    wd = ctx.workdir("web-lat-wsfy")
    g = benchlib.EchoGuest(ctx, os.path.join(wd, "e.sock"), echo=True).start()
    peer = Websockify(ctx, wd, g.sock)
    ws = None
    try:
        ws = WsClient(peer.port)

        def recv_until(k):
            while k not in ws.recv():
                pass
        return _echo_times(ws.send, recv_until, count)
    finally:
        if ws:
            ws.close()
        peer.stop()
        g.stop()


def _lat_ttyhub(ctx, count, ns):
    """{N: writer's echo times with N read-only readers attached}."""
    wd = ctx.workdir("web-lat-hub")
    g = benchlib.EchoGuest(ctx, os.path.join(wd, "e.sock"), echo=True).start()
    web = WebTtyhub(ctx, wd, "echo", g.sock)
    out = {}
    ws = None
    try:
        ws = WsClient(web.port, protocol="ttyhub.v1", origin=web.origin,
                      cookie=web.session(ro=False))
        ws.send(b"\x01" + json.dumps({"console": "echo", "mode": "rw", "cols": 80,
                                      "rows": 24}).encode())
        deadline = time.monotonic() + 10
        while True:
            m = ws.recv()
            if m is None:
                raise AssertionError("ttyhub-webd closed the writer:\n" + web.log_tail())
            if m[0] in (0x84, 0x85):
                raise AssertionError("writer refused: %r" % m)
            if m[0] == 0x82 and json.loads(m[1:]).get("role") == "writer":
                break
            if time.monotonic() > deadline:
                raise AssertionError("the writer never became the writer")

        def send(k):
            ws.send(b"\x02" + k)

        def recv_until(k):
            while True:
                m = ws.recv()
                if m is None:
                    raise AssertionError("ttyhub-webd closed the writer")
                if m[0] == 0x81:
                    ws.send(b"\x05" + m[9:17])  # ACK its end, as the page does
                    if k in m[17:]:
                        return

        for n in ns:
            readers = None
            if n:
                sessions = (n + PER_SESSION - 1) // PER_SESSION
                cookies = [web.session(ro=True) for _ in range(sessions)]
                readers = Readers(ctx, web.port, n, check=False, cookies=cookies,
                                  origin=web.origin,
                                  hello={"console": "echo", "mode": "ro", "cols": 80, "rows": 24})
                readers.wait_connected()
                s = readers.wait_attached(n)
                if s["attached"] < n:
                    raise AssertionError("%d of %d readers attached: %s" % (
                        s["attached"], n, s["errors"][:3]))
            try:
                ctx.log("web latency: ttyhub, writer + %d readers" % n)
                out[n] = _echo_times(send, recv_until, count)
                if readers:
                    got = readers.mark()["bytes"]
                    out[n, "readers_min_bytes"] = min(got)
            finally:
                if readers:
                    readers.stop()
    finally:
        if ws:
            ws.close()
        web.stop()
        g.stop()
    return out


def _ms(values, p):
    return benchlib.percentile(values, p) / 1000.0


# --- the section ----------------------------------------------------------------------------

def run(ctx):
    sec = benchlib.Section(TITLE)
    benchlib.raise_nofile()
    ns = [1, 10, 100]
    warm, dur = (0.5, 1.0) if ctx.quick else (1.0, 3.0)
    hub, peer = {}, {}
    for n in ns:
        hub[n] = (_run_ttyhub(ctx, n, 0, warm, dur), _run_ttyhub(ctx, n, RATE[n], warm, dur))
        f, p = hub[n]
        ctx.log("  ttyhub N=%d: %.0f MB/s aggregate (slowest %.2f), CPU %s; paced %.2f MB/s: "
                "%d lost (%d silent)" % (n, f["agg"], f["min"], f["cpu"], RATE[n] / 1e6,
                                         p["lost_silent"] + p["lost_announced"],
                                         p["lost_silent"]))
        if n in PEER_NS:
            peer[n] = (_run_websockify(ctx, n, 0, warm, dur),
                       _run_websockify(ctx, n, RATE[n], warm, dur))
            f, p = peer[n]
            ctx.log("  websockify N=%d: %.0f MB/s aggregate, %d of %d readers served; paced: "
                    "%d lost" % (n, f["agg"], f["served"], n,
                                 p["lost_silent"] + p["lost_announced"]))

    count = 100 if ctx.quick else 300
    lat_direct = _lat_direct(ctx, count)
    lat_peer = _lat_websockify(ctx, count)
    lat_hub = _lat_ttyhub(ctx, count, [0] + ns)

    def pf(d, n, i, key):
        return d[n][i][key] if n in d else None

    for n in ns:
        s = "s" if n > 1 else ""
        sec.row("aggregate, %d reader%s (unpaced)" % (n, s), hub[n][0]["agg"],
                pf(peer, n, 0, "agg"), PEER, "MB/s")
        sec.row("readers that get the console, N=%d" % n, hub[n][0]["served"],
                pf(peer, n, 0, "served"), PEER, "readers")
        sec.row("slowest reader, N=%d (unpaced)" % n, hub[n][0]["min"], pf(peer, n, 0, "min"),
                PEER, "MB/s")
        hc = hub[n][0]["cpu"]
        sec.row("server CPU, N=%d (ttyhubd %.2f + ttyhub-webd %.2f)"
                % (n, hc["ttyhubd"], hc["ttyhub-webd"]), hc["ttyhubd"] + hc["ttyhub-webd"],
                pf(peer, n, 0, "cpu")[PEER] if n in peer else None, PEER, "cores")
        hp = hub[n][1]
        lost = hp["lost_silent"] + hp["lost_announced"]
        keep_up = hp["lines_min"] >= 0.9 * hp["guest_lines"]
        plost = (peer[n][1]["lost_silent"] + peer[n][1]["lost_announced"]) if n in peer \
            else None
        sec.row("lines lost at %.2f MB/s per reader, N=%d" % (RATE[n] / 1e6, n), lost, plost,
                PEER, "lines", target="0, every reader keeps up",
                ok=lost == 0 and keep_up and hp["open"] == n)
        if not keep_up or hp["open"] != n:
            sec.note("N=%d paced: the slowest reader got %d of the guest's %d lines in the "
                     "window; %d of %d WebSockets open (%s)" % (
                         n, hp["lines_min"], hp["guest_lines"], hp["open"], n,
                         "; ".join(hp["errors"])))
    silent = sum(hub[n][i]["lost_silent"] for n in ns for i in (0, 1))
    sec.row("lines lost without a notice, all ttyhub runs", silent, None, "", "lines",
            target="0", ok=silent == 0)
    d50, d99 = _ms(lat_direct, 50), _ms(lat_direct, 99)
    p50, p99 = _ms(lat_peer, 50), _ms(lat_peer, 99)
    for n in [0] + ns:
        r = "%d reader%s" % (n, "" if n == 1 else "s")
        sec.row("writer's echo p50, %s" % r, _ms(lat_hub[n], 50), p50, PEER + " (no readers)",
                "ms")
        sec.row("writer's echo p99, %s" % r, _ms(lat_hub[n], 99), p99, PEER + " (no readers)",
                "ms")
    sec.row("writer's echo p50 vs the direct socket, no readers", _ms(lat_hub[0], 50), d50,
            "direct socket", "ms")
    if _ms(lat_hub[0], 50) >= 30:
        # Measured on the way: without TCP_NODELAY on the upgraded socket each echo waited
        # for the client's delayed ACK (p50 42 ms; 0.21 ms with it).
        sec.note("ttyhub-webd's echo p50 is %.0f ms: the signature of Nagle's algorithm "
                 "waiting for the client's delayed ACK (about 40 ms on Linux); its WebSocket "
                 "sockets need TCP_NODELAY, as ttyhub-sshd's have." % _ms(lat_hub[0], 50))

    sec.note("websockify serves one reader per connection while ttyhub fans out: each "
             "WebSocket makes websockify open its own connection to the console socket, and "
             "a chardev (QEMU's, or fake-guest here) serves one client, so at N=10 %s of 10 "
             "websockify readers got the console and the others nothing; N=100 was not run "
             "for websockify (100 forked relays, 99 of them idle).  ttyhub-webd gave all %s "
             "readers the console from one broker attachment each." % (
                 peer[10][0]["served"] if 10 in peer else "?",
                 "/".join(str(hub[n][0]["served"]) for n in ns)))
    sec.note("Readers: one `wsload` process (C, epoll; ttyhub.v1 with every OUTPUT ACKed at "
             "once, or websockify's binary relay), its per-reader pipes read by one `sshload "
             "read --fd` that checks the numbered lines; ttyhub-webd on plain HTTP (loopback), "
             "no TLS, as websockify.  Readers share ceil(N/%d) web sessions and come from "
             "127.0.0.2.. (%d per address) to stay inside ttyhub-webd's per-session and "
             "per-address limits.  The client processes (wsload + sshload) used %s cores at "
             "N=%s (unpaced)." % (PER_SESSION, PER_SOURCE,
                                 "/".join("%.2f" % hub[n][0]["client"] for n in ns),
                                 "/".join(str(n) for n in ns)))
    sec.note("Unpaced: the guest writes as fast as the consumer takes it (guest output ttyhub "
             "%s MB/s, websockify %s MB/s); window %g s after %g s of warm-up, on a fresh "
             "set-up per window.  A ttyhub reader that falls behind is skipped ahead with a "
             "dropped-bytes NOTICE (counted as announced loss), never stalls the guest: "
             "lines skipped with a notice, unpaced: %s." % (
                 "/".join("%.0f" % hub[n][0]["guest"] for n in ns),
                 "/".join("%.0f" % peer[n][0]["guest"] for n in PEER_NS if n in peer),
                 dur, warm, "/".join("{:,}".format(hub[n][0]["lost_announced"]) for n in ns)))
    sec.note("Echo latency: %d keystrokes, 2-6 ms apart, each sent when the previous echo "
             "came back, measured in one small Python WebSocket client (send -> the echo's "
             "OUTPUT message), the same client for websockify (its only connection) and for "
             "the direct socket (p50/p99 %.3f/%.3f ms).  The guest is `sshload guest --echo`."
             % (count, d50, d99))
    sec.plot("web_aggregate.png", "Web readers, unpaced guest: aggregate delivered",
             "readers", "MB/s",
             {"ttyhub-webd": [(n, hub[n][0]["agg"]) for n in ns],
              "websockify": [(n, peer[n][0]["agg"]) for n in ns if n in peer]}, logx=True)
    sec.plot("web_latency.png", "Writer's keystroke echo over WebSocket (p50 / p99)",
             "path", "ms",
             {"p50": [("direct", d50), ("websockify", p50)] +
              [("ttyhub, %d r." % n, _ms(lat_hub[n], 50)) for n in [0] + ns],
              "p99": [("direct", d99), ("websockify", p99)] +
              [("ttyhub, %d r." % n, _ms(lat_hub[n], 99)) for n in [0] + ns]}, kind="bar")
    return sec


if __name__ == "__main__":
    benchlib.run_standalone(run)
