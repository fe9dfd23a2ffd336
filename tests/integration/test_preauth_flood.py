#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Pre-authentication flood against ttyhub-sshd: 500 slow-loris connections from many
loopback source addresses while a real user logs in with OpenSSH every few seconds.

ttyhub-sshd's design (ssh-front/sshd.h, sshd.c): at most 64 unauthenticated connections,
at most 8 from one address; a new connection beyond a limit makes room by dropping one
unauthenticated connection (of its address if the per-address limit is hit, else
overall): the one that got least far in the handshake -- fewest bytes received from the
client, a session with keys exchanged last (here "progress 0" is nothing received, "1" an
identification line and perhaps a few trickled bytes) -- the oldest among those.  It is
told "Bye Bye" (SSH_MSG_DISCONNECT) when ttyhub-sshd has run its I/O for it at least once,
and closed; each connection has
--login-grace seconds to authenticate; refusals are logged at most once per 10 s.

The flood connections come from 127.2.x.y (one connection per address) and from 8 "hot"
addresses 127.3.0.1-8 (10 back-to-back connections each time), so that both limits act,
and do one of three slow-loris things: send nothing ("silent"); send the SSH
identification line one byte per second ("ident"); send it at once and then a KEXINIT
packet one byte per second ("kexinit").  The client sees when the server has read its
identification line: libssh answers it with its own KEXINIT packet (the first bytes after
the server's identification line), never before.

Phase 1, a burst held until the grace time: the 500 connections are opened one after the
other, each once the server's identification line has arrived (the server has accepted it
and made room) and, for a "kexinit" one, once the server's KEXINIT has arrived too (the
server holds it at progress 1).  The "silent" and "ident" ones send nothing during the
burst (progress 0).  So the progress of every held connection is known at every accept and
a model of the rule predicts exactly which connection is dropped by which (the stalled
progress-0 ones go first, oldest first; a progress-1 one only when its candidate set holds
no progress-0 one).  Proven:

* exactly the predicted connections are closed early, each within EVICT_MAX_S of the
  connection that displaced it; no other is closed early;
* every displaced connection got an SSH_MSG_DISCONNECT ("Bye Bye") before EOF (or a
  reset), not a bare EOF;
* the first login (from 127.0.0.1) displaces exactly the connection the rule picks among
  the survivors (by the progress observed when the login began), no later login displaces
  anything, and no connection of the user is ever displaced (ttyhub-sshd's log);
* every other flood connection is closed at its login grace time (between grace - 0.5 s
  and grace + GRACE_LATE_S after it was accepted);
* at rest after the burst, /proc/net/tcp shows exactly the connections the rule keeps
  (64, at most 8 per address); sampled from ttyhub-sshd's fd table during the burst, never
  more than 64 held (65 while one is being admitted: the connection it displaces is closed
  by the sweep after the accept callback);
* every login (ssh ... list, exit 0, the console listed) completes within 2 s (the
  issue's target; asserted with a margin for loaded CI machines: 3 s).

Phase 2, a flood that keeps its 500 connections: every connection the server closes is
reopened at once (the same address plan and kinds, again slow-loris), for FLOOD_S seconds,
while the real user logs in every LOGIN_EVERY_S seconds (ssh -v: a failed login is
classified by how far its handshake got).  The order of accepts and reads is not
controlled here, so no exact model.  Proven: every login completes (3 s) and no
connection of the user is displaced; at most 64 flood connections held (+1 while
admitting); and the rule's ordering, from the connections the server holds (sampled from
/proc/net/tcp, matched to the flood's sockets by port): drop-oldest would hold the three
kinds in equal shares, least-progress-first holds "kexinit" ones (progress 1) and
displaces the progress-0 ones at the next accept: asserted >= 75% "kexinit".  The user's
connection is at progress 1 from its accept (OpenSSH sends its line at once) until the
server has read its NEWKEYS; a progress-1 connection is displaced, oldest first, whenever
no progress-0 one is held, so the user's key exchange must end before about 63 such
displacements.

Phase 3, the case the rule is weakest against: a flood whose connections send their
identification line at once and then stall ("stall", progress 1 as soon as the server
reads it), reopened at once, for FLOOD_S seconds while the user logs in.  A real client is
at progress 1 too until the server has its NEWKEYS, and then the newest; each accept of a
flood connection displaces the oldest progress-1 one, so the user's connection survives
only if its key exchange ends before 63 newer flood connections are accepted.  Printed:
login times, failed logins and how far they got, the user's connections displaced, the
flood's rate.  Asserted: the limits, memory and fds as in phase 2, and that logins do get
through (at least one succeeds) -- not the 2 s target, which does not hold here.

Throughout: ttyhub-sshd's RSS stays within RSS_MAX_KIB of its start (not asserted under
ASan, TTYHUB_SANITIZED=1), its "pre-authentication limit" warnings are rate-limited (at
most one per 10 s), and after each phase its fd count returns to the baseline.

CI form: --login-grace 10, phases 2 and 3 for 16 s each.  TTYHUB_LONG=1: the default
grace (30 s), phases 2 and 3 for 60 s.  Both use 500 connections.
"""

import os
import re
import selectors
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import net  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402

LONG = os.environ.get("TTYHUB_LONG") == "1"
FLOOD = 500
MAX_UNAUTH = 64          # ttyhub-sshd defaults (ssh-front/ttyhub-sshd.c)
MAX_PER_SOURCE = 8
GRACE = 30 if LONG else 10
FLOOD_S = 60.0 if LONG else 16.0
LOGIN_EVERY_S = 3.0 if LONG else 2.0
LOGIN_MAX_S = 3.0        # the target is 2 s; 0.1-0.5 s measured, 2.9 s once at load 20
# Upper bounds are clocks: under ASan (TTYHUB_SANITIZED=1) on a loaded 2-core machine they get
# headroom that no scheduling delay reaches; what they check (a displaced connection is closed
# promptly, the rest at the grace time, not much later) stays the same.
EVICT_MAX_S = 1.0 if not hub.SANITIZED else 5.0   # a displaced connection is closed at once
GRACE_EARLY_S = 0.5
GRACE_LATE_S = 2.0 if not hub.SANITIZED else 8.0
RSS_MAX_KIB = 10 * 1024
HOT = 8
IDENT = b"SSH-2.0-slowloris_0.1\r\n"
MIXED = ("silent", "ident", "kexinit")
AT_ONCE = ("kexinit", "stall")   # kinds that send their identification line on connect
SSH_MSG_KEXINIT = 20
USER_DROPPED = r"connection from 127\.0\.0\.1 closed: dropped to admit"


def figure(name, value):
    print("figure: %s = %s" % (name, value), flush=True)


def kexinit_packet():
    """A plausible client KEXINIT packet (only its first bytes are ever sent)."""
    lists = [b"curve25519-sha256", b"ssh-ed25519", b"aes128-ctr", b"aes128-ctr",
             b"hmac-sha2-256-etm@openssh.com", b"hmac-sha2-256-etm@openssh.com",
             b"none", b"none", b"", b""]
    payload = bytes([20]) + b"\x11" * 16
    payload += b"".join(struct.pack(">I", len(x)) + x for x in lists) + b"\x00" + b"\x00" * 4
    pad = 8 - (len(payload) + 5) % 8 + 8
    return struct.pack(">IB", len(payload) + pad + 1, pad) + payload + b"\x00" * pad


KEXINIT = kexinit_packet()


def address_plan(n):
    """Source addresses in connection order: blocks of 10 from one hot address, then 20
    from addresses used once."""
    out, hot, distinct = [], 0, 0
    while len(out) < n:
        out += ["127.3.0.%d" % (hot % HOT + 1)] * 10
        hot += 1
        for _ in range(20):
            out.append("127.2.%d.%d" % (distinct // 250, distinct % 250 + 1))
            distinct += 1
    return out[:n]


def pick(cands, progress):
    """The rule's victim among candidate indices: least progress, then oldest."""
    return min(cands, key=lambda i: (progress[i], i))


def model(sources, progress):
    """The eviction rule applied to connections accepted in this order, connection i being
    at handshake progress progress[i] at every accept.

    Returns (survivors in acceptance order, {evicted: (evicting index, rule)})."""
    alive, evicted = [], {}
    for j, src in enumerate(sources):
        same = [i for i in alive if sources[i] == src]
        cands = rule = None
        if len(same) >= MAX_PER_SOURCE:
            cands, rule = same, "per-source"
        elif len(alive) >= MAX_UNAUTH:
            cands, rule = alive, "overall"
        if cands:
            victim = pick(cands, progress)
            alive.remove(victim)
            evicted[victim] = (j, rule)
        alive.append(j)
    return alive, evicted


class Conn:
    def __init__(self, idx, src, kind):
        self.idx, self.src, self.kind = idx, src, kind
        self.sock = None
        # t_kex: the server's KEXINIT arrived, i.e. it had read our identification line.
        self.t_connect = self.t_banner = self.t_kex = self.t_closed = None
        self.rx = b""
        self.sent = 0
        self.how = None

    def lifetime(self):
        return self.t_closed - (self.t_banner or self.t_connect)


class Flood(threading.Thread):
    """All flood sockets, in one thread.  burst(): open the plan's connections one by one,
    each after the previous one got the server's identification line (and, for a kind that
    sends its own at once, the server's KEXINIT).  Then (or with reopen=True, at once)
    every second each open connection sends its next slow-loris byte, and EOF/reset is
    recorded; with reopen, every closed connection is replaced."""

    def __init__(self, port, sources, kinds=MIXED, reopen=False):
        super().__init__(daemon=True)
        self.port, self.sources, self.kinds, self.reopen = port, sources, kinds, reopen
        self.sel = selectors.DefaultSelector()
        self.conns = []
        self.by_peer = {}   # (address, port): the newest Conn from there
        self.open = set()
        self.stop_ev = threading.Event()
        self.burst_done = threading.Event()
        self.error = None
        self.connect_failures = 0
        self.next_send = 0.0

    def _open(self, idx):
        src = self.sources[idx % len(self.sources)]
        c = Conn(idx, src, self.kinds[idx % len(self.kinds)])
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.bind((src, 0))
            s.connect(("127.0.0.1", self.port))
        except OSError:
            s.close()
            self.connect_failures += 1
            return None
        c.t_connect = time.monotonic()
        self.by_peer[s.getsockname()] = c
        s.setblocking(False)
        c.sock = s
        if c.kind in AT_ONCE:
            self._send(c, IDENT)
        self.sel.register(s, selectors.EVENT_READ, c)
        self.conns.append(c)
        self.open.add(c)
        return c

    def _send(self, c, data):
        try:
            c.sent += c.sock.send(data)
        except OSError:
            pass

    def _closed(self, c, how):
        c.t_closed = time.monotonic()
        c.how = how
        self.sel.unregister(c.sock)
        c.sock.close()
        self.open.discard(c)
        if self.reopen and not self.stop_ev.is_set():
            self._open(len(self.conns))

    def _poll(self, timeout):
        for key, _ in self.sel.select(timeout):
            c = key.data
            try:
                while True:
                    data = c.sock.recv(65536)
                    if not data:
                        self._closed(c, "eof")
                        break
                    now = time.monotonic()
                    c.rx = (c.rx + data)[:4096]
                    nl = c.rx.find(b"\n")
                    if c.t_banner is None and nl >= 0:
                        c.t_banner = now
                    # Before keys are exchanged packets are in clear: uint32 length,
                    # byte padding length, then the message number (20: KEXINIT; a
                    # displaced connection gets 1: DISCONNECT).
                    if c.t_kex is None and nl >= 0 and len(c.rx) > nl + 6 and \
                            c.rx[nl + 6] == SSH_MSG_KEXINIT:
                        c.t_kex = now
            except BlockingIOError:
                pass
            except OSError:
                self._closed(c, "reset")

    def _trickle(self):
        now = time.monotonic()
        if now < self.next_send:
            return
        self.next_send = now + 1.0
        for c in list(self.open):
            if c.kind == "ident" and c.sent < len(IDENT):
                self._send(c, IDENT[c.sent:c.sent + 1])
            elif c.kind == "kexinit" and c.sent - len(IDENT) < len(KEXINIT):
                off = c.sent - len(IDENT)
                self._send(c, KEXINIT[off:off + 1])

    def run(self):
        try:
            for idx in range(len(self.sources)):
                c = self._open(idx)
                if c is None or self.reopen:
                    continue
                deadline = time.monotonic() + 5
                while c.t_closed is None and (c.t_banner is None or
                                              (c.kind in AT_ONCE and c.t_kex is None)):
                    if time.monotonic() > deadline:
                        raise AssertionError("connection %d (%s): no identification line%s "
                                             "from the server within 5 s" % (
                                                 idx, c.kind, " and KEXINIT"
                                                 if c.kind in AT_ONCE else ""))
                    self._poll(0.05)
                self._poll(0)
            self.burst_done.set()
            while not self.stop_ev.is_set() and (self.open or self.reopen):
                self._poll(0.05)
                self._trickle()
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            self.error = e
        finally:
            self.burst_done.set()
            for c in list(self.open):
                self.sel.unregister(c.sock)
                c.sock.close()
            self.open.clear()


def server_conns(port):
    """(address, port) of the peer of every established connection ttyhub-sshd has
    accepted on PORT (sockets still in the listen queue have no inode and are skipped)."""
    return net.accepted_peers(port)


def server_held(port, prefixes=("127.2.", "127.3.", "127.4.")):
    """Connections ttyhub-sshd holds from flood addresses: {address: count}."""
    held = {}
    for addr, _ in server_conns(port):
        if addr.startswith(prefixes):
            held[addr] = held.get(addr, 0) + 1
    return held


class Watch:
    """Samples ttyhub-sshd while a phase runs (main thread, never during a login): the
    connections it holds beyond its baseline fds, and its RSS; with a flood, also the kinds
    of the flood connections it holds.  The fd table is read in one go; /proc/net/tcp is
    not (during a flood it counts sockets that came and went while it was read), so the
    limits are checked on it only when the flood is at rest; during a flood it gives
    shares, not counts."""

    def __init__(self, front, base_fds, flood=None):
        self.front, self.base_fds, self.flood = front, base_fds, flood
        self.max_held = 0
        self.rss = []
        self.samples = 0
        self.kinds = {}     # flood connections held, by kind, summed over the samples
        self.composition_samples = 0

    def sample(self):
        self.max_held = max(self.max_held, self.front.fd_count() - self.base_fds)
        self.rss.append(self.front.rss_kib())
        self.samples += 1
        # /proc/net/tcp also lists the flood's sockets in TIME_WAIT (thousands): slow.
        if self.flood and self.samples % 4 == 1:
            self.composition_samples += 1
            for peer in server_conns(self.front.port):
                c = self.flood.by_peer.get(peer)
                if c is not None:
                    self.kinds[c.kind] = self.kinds.get(c.kind, 0) + 1


# How far OpenSSH got (ssh -v), in order: the server sends its KEXINIT only once it has
# read the client's identification line, and NEWKEYS once the keys are agreed.
# The server is at progress 2 only once it has read the client's NEWKEYS too.
STAGES = ((b"Authenticated to", "after authentication"),
          (b"SSH2_MSG_NEWKEYS received", "after the server's NEWKEYS"),
          (b"SSH2_MSG_KEXINIT received", "after the server's KEXINIT"),
          (b"", "before the server's KEXINIT (identification not read)"))


class Logins:
    """The real user: `ssh ... list` from 127.0.0.1, timed.  With verbose, ssh runs with
    -v and a failed login records how far the handshake had got (STAGES)."""

    def __init__(self, front, key, verbose=False):
        self.front, self.key, self.verbose = front, key, verbose
        self.results = []   # (t_start, t_end, seconds, ok, detail)
        self.failed_at = {}

    def once(self):
        t0 = time.monotonic()
        try:
            r = sshhub.run_ssh(self.front, self.key, "console", "list", timeout=30,
                               options=["LogLevel=DEBUG1"] if self.verbose else [])
            ok = r.returncode == 0 and re.search(rb"^vm\s", r.stdout, re.M) is not None
            err = b"\n".join(x for x in r.stderr.splitlines() if not x.startswith(b"debug"))
            detail = "exit %d, %r" % (r.returncode, (err or r.stdout)[-200:])
            if not ok and self.verbose:
                stage = next(name for mark, name in STAGES if mark in r.stderr)
                self.failed_at[stage] = self.failed_at.get(stage, 0) + 1
        except Exception as e:  # noqa: BLE001 - a hung ssh is a failed login
            ok, detail = False, repr(e)
        t1 = time.monotonic()
        self.results.append((t0, t1, t1 - t0, ok, detail))

    def bad(self):
        # The time bound is a clock: the plain build only.  Under ASan a login must still
        # succeed and never be displaced.
        slow = LOGIN_MAX_S if not hub.SANITIZED else float("inf")
        return [(round(r[2], 2), r[4]) for r in self.results if not r[3] or r[2] > slow]

    def report(self, what):
        times = [r[2] for r in self.results]
        figure("%s: logins, failed or > %g s, slowest s" % (what, LOGIN_MAX_S),
               "%d, %d, %.2f" % (len(times), len(self.bad()), max(times)))

    def check(self, what, displaced=None):
        self.report(what)
        bad = self.bad()
        hint = ""
        if displaced:
            hint = ("; ttyhub-sshd logged %d of the user's connections as 'dropped to admit a "
                    "newer connection (pre-authentication limit)' ('Bye Bye' is that "
                    "disconnect)" % displaced)
        assert not bad, "%d of %d logins failed or took > %g s: %r%s" \
            % (len(bad), len(self.results), LOGIN_MAX_S, bad[:5], hint)


def wait_fds(front, base, timeout=10):
    deadline = time.monotonic() + timeout
    while front.fd_count() != base and time.monotonic() < deadline:
        time.sleep(0.1)
    return front.fd_count()


def user_dropped(front):
    return len(re.findall(USER_DROPPED, front.log()))


def run_logins(flood, watch, logins, until):
    """The real user logs in every LOGIN_EVERY_S while until() is true; between logins
    ttyhub-sshd is sampled (not within 0.3 s after one: its session may still close)."""
    next_login = time.monotonic()
    last_end = 0.0
    while until():
        if time.monotonic() >= next_login:
            logins.once()
            last_end = time.monotonic()
            next_login += LOGIN_EVERY_S
        elif time.monotonic() - last_end > 0.3:
            watch.sample()
        time.sleep(0.1)


def phase_burst(front, key, res, base_fds, rss0):
    sources = address_plan(FLOOD)
    kinds = [MIXED[i % len(MIXED)] for i in range(FLOOD)]
    # During the burst a "kexinit" connection is at progress 1 (the burst waits for the
    # server's KEXINIT), the others at 0 (they have sent nothing yet).
    progress = [1 if k in AT_ONCE else 0 for k in kinds]
    survivors, evicted = model(sources, progress)
    by_rule = [sum(1 for v in evicted.values() if v[1] == r) for r in ("per-source", "overall")]
    figure("flood addresses", len(set(sources)))
    figure("model: displaced by the per-address limit, by the overall limit, survivors",
           "%d, %d, %d" % (by_rule[0], by_rule[1], len(survivors)))
    figure("model: displaced at progress 0, at progress 1; survivors at progress 1",
           "%d, %d; %d" % (sum(1 for i in evicted if progress[i] == 0),
                           sum(1 for i in evicted if progress[i] == 1),
                           sum(progress[i] for i in survivors)))
    dropped0 = user_dropped(front)
    watch = Watch(front, base_fds)
    logins = Logins(front, key)
    flood = Flood(front.port, sources)
    t0 = time.monotonic()
    flood.start()
    while not flood.burst_done.wait(0.02):
        watch.sample()
    t_burst = time.monotonic() - t0
    assert flood.error is None, flood.error
    figure("burst: %d connections opened in, s" % FLOOD, "%.2f" % t_burst)
    # At rest: what the server holds, per address, is what the rule leaves.
    deadline = time.monotonic() + 2
    while front.fd_count() != base_fds + MAX_UNAUTH and time.monotonic() < deadline:
        time.sleep(0.02)
    held = server_held(front.port)
    want_held = {}
    for i in survivors:
        want_held[sources[i]] = want_held.get(sources[i], 0) + 1
    figure("burst: held at rest (connections, addresses, most from one address)",
           "%d, %d, %d" % (sum(held.values()), len(held), max(held.values(), default=0)))
    # The real user logs in every LOGIN_EVERY_S until every flood connection is gone.
    deadline = time.monotonic() + GRACE + GRACE_LATE_S + 10
    run_logins(flood, watch, logins, lambda: (flood.is_alive() or not logins.results) and
               time.monotonic() < deadline)
    flood.stop_ev.set()
    flood.join(10)
    logins.once()   # after the flood, for comparison
    conns = flood.conns
    user_displaced = user_dropped(front) - dropped0
    figure("burst: ttyhub-sshd RSS before, max, KiB", "%d, %d" % (rss0, max(watch.rss)))
    figure("burst: most connections held beyond the baseline fds (%d samples)"
           % watch.samples, watch.max_held)
    figure("burst: login times, s", ", ".join("%.2f" % r[2] for r in logins.results))
    figure("burst: the real user's connections displaced (ttyhub-sshd log)", user_displaced)

    def plan_held():
        assert len(conns) == FLOOD and flood.connect_failures == 0, \
            "%d connections, %d failed" % (len(conns), flood.connect_failures)
        for c in conns:
            nxt = conns[c.idx + 1].t_connect if c.idx + 1 < FLOOD else t0 + t_burst
            if c.kind in AT_ONCE:
                assert c.t_kex is not None and c.t_kex <= nxt, \
                    "connection %d: the server had not read its identification line when " \
                    "the next one was opened" % c.idx
            else:
                assert c.t_kex is None or c.t_kex > t0 + t_burst, \
                    "connection %d (%s) at progress 1 during the burst" % (c.idx, c.kind)
    res.run("burst: every connection's progress was as planned at every accept", plan_held)

    def exact_evictions():
        first_login = logins.results[0]
        # The first login came when 64 were held: it displaced the rule's pick among the
        # survivors, by their progress when it began (an "ident" one reaches progress 1
        # only once its whole line has trickled in, which takes longer than the CI grace).
        at_login = {}
        for i in survivors:
            c = conns[i]
            assert c.t_kex is None or not first_login[0] <= c.t_kex <= first_login[1], \
                "connection %d reached progress 1 during the first login: the plan is " \
                "ambiguous" % i
            at_login[i] = 1 if c.t_kex is not None and c.t_kex < first_login[0] else 0
        by_login = pick(survivors, at_login)
        figure("burst: the first login displaced (model): connection, kind, progress",
               "%d, %s, %d" % (by_login, conns[by_login].kind, at_login[by_login]))
        early, late = [], []
        for c in conns:
            assert c.t_closed is not None, "connection %d (%s, %s) never closed" \
                % (c.idx, c.src, c.kind)
            (early if c.lifetime() < GRACE - GRACE_EARLY_S else late).append(c)
        got = {c.idx for c in early}
        want = set(evicted) | {by_login}
        assert got == want, "closed early but kept by the rule: %r; kept but predicted " \
            "to be displaced: %r" % (sorted(got - want)[:10], sorted(want - got)[:10])
        delays = []
        displaced.update({c.idx: (evicted[c.idx][0] if c.idx in evicted else "login")
                          for c in early})
        for c in early:
            if c.idx == by_login:
                assert first_login[0] <= c.t_closed <= first_login[1] + EVICT_MAX_S, \
                    "connection %d was closed %.2f s after the first login began" \
                    % (c.idx, c.t_closed - first_login[0])
                continue
            by = conns[evicted[c.idx][0]]
            delays.append(c.t_closed - by.t_banner)
        figure("displaced connections: closed after the displacing one was accepted, "
               "max s", "%.3f" % max(delays))
        assert max(delays) <= EVICT_MAX_S, max(delays)
        assert min(delays) >= -0.05, "closed before the displacing connection: %r" \
            % min(delays)
        lifetimes = [c.lifetime() for c in late]
        figure("connections closed at the grace time (%d s): count, earliest, latest s"
               % GRACE, "%d, %.2f, %.2f" % (len(late), min(lifetimes), max(lifetimes)))
        assert len(late) == MAX_UNAUTH - 1, len(late)
        assert max(lifetimes) <= GRACE + GRACE_LATE_S, max(lifetimes)
    displaced = {}   # displaced index: the index (or "login") that displaced it
    res.run("burst: exactly the predicted connections displaced (least progress first, "
            "then oldest), promptly; the rest closed at the grace time", exact_evictions)

    def told():
        # ttyhub-sshd closes a displaced connection with ssh_disconnect() (SSH_MSG_DISCONNECT
        # "Bye Bye"); a reset also tells the peer.  A plain EOF does not say why.
        assert displaced, "no displaced connection to check (see the check above)"
        silent = [c for c in conns if c.idx in displaced and b"Bye Bye" not in c.rx and
                  c.how != "reset"]
        gaps = {}
        for c in silent:
            by = displaced[c.idx]
            gap = "login" if by == "login" else by - c.idx
            gaps[gap] = gaps.get(gap, 0) + 1
        figure("burst: displaced connections closed without SSH_MSG_DISCONNECT, of", "%d, %d"
               % (len(silent), len(displaced)))
        figure("burst: those by how many accepts later they were displaced (accepts: count)",
               ", ".join("%s: %d" % kv for kv in sorted(gaps.items(), key=str)) or "none")
        # Displaced by the very next accept, before ttyhub-sshd ran its first I/O callback
        # for it: libssh writes only after it has seen POLLOUT since its last write (the
        # banner), so the disconnect that session_free() queues goes with the socket.
        # A flood connection then sees a plain close; any later one must be told.
        late = [c for c in silent if displaced[c.idx] == "login" or displaced[c.idx] - c.idx > 1]
        assert not late, (
            "%d of %d displaced connections got EOF without SSH_MSG_DISCONNECT although "
            "displaced later than the next accept, e.g. %r"
            % (len(late), len(displaced), [(c.idx, c.kind, c.rx[-40:]) for c in late[:3]]))
    res.run("burst: displaced connections are told (SSH_MSG_DISCONNECT) once served", told)

    def limits_held():
        assert held == want_held, "held at rest %r, the rule leaves %r" % (held, want_held)
        assert max(held.values()) <= MAX_PER_SOURCE
        # While admitting a connection the server briefly has one more fd: the one it
        # displaces is closed by the sweep right after the accept callback.
        assert watch.max_held <= MAX_UNAUTH + 1, watch.max_held
    res.run("burst: at most 64 held (8 per address), exactly the ones the rule keeps",
            limits_held)

    def logins_ok():
        assert user_displaced == 0, "the user's connection was displaced %d times" \
            % user_displaced
        logins.check("burst")
    res.run("burst: every login succeeds quickly (target 2 s), never displaced", logins_ok)

    def memory_and_fds():
        if not hub.SANITIZED:
            assert max(watch.rss) - rss0 <= RSS_MAX_KIB, (rss0, max(watch.rss))
        fds = wait_fds(front, base_fds)
        figure("burst: ttyhub-sshd fds afterwards (baseline %d)" % base_fds, fds)
        assert fds == base_fds, (fds, base_fds)
    res.run("burst: RSS bounded, fds back to baseline", memory_and_fds)


def sustained(front, key, kinds):
    """A reopening flood of KINDS for FLOOD_S while the user logs in; returns
    (flood, watch, logins, seconds, the user's connections displaced)."""
    dropped0 = user_dropped(front)
    logins = Logins(front, key, verbose=True)
    flood = Flood(front.port, address_plan(FLOOD), kinds=kinds, reopen=True)
    watch = Watch(front, front.base_fds, flood if kinds == MIXED else None)
    flood.start()
    flood.burst_done.wait(30)
    t0 = time.monotonic()
    time.sleep(1.0)
    run_logins(flood, watch, logins, lambda: time.monotonic() - t0 < FLOOD_S)
    flood.stop_ev.set()
    flood.join(10)
    dur = time.monotonic() - t0
    return flood, watch, logins, dur, user_dropped(front) - dropped0


def report_sustained(what, flood, watch, logins, dur, displaced, rss0):
    opened = len(flood.conns)
    figure("%s: connections opened in %.0f s (per s)" % (what, dur),
           "%d (%.0f)" % (opened, opened / dur))
    figure("%s: ttyhub-sshd RSS before, max, KiB" % what, "%d, %d" % (rss0, max(watch.rss)))
    figure("%s: most connections held beyond the baseline fds (%d samples)"
           % (what, watch.samples), watch.max_held)
    figure("%s: login times, s" % what, ", ".join(
        "%.2f%s" % (r[2], "" if r[3] else " FAILED") for r in logins.results))
    figure("%s: the real user's connections displaced (ttyhub-sshd log)" % what, displaced)
    figure("%s: failed logins by how far the handshake got" % what,
           ", ".join("%s: %d" % kv for kv in sorted(logins.failed_at.items())) or "none")


def check_bounds(res, what, front, watch, rss0, base_fds):
    def limits_held():
        assert watch.max_held <= MAX_UNAUTH + 1, watch.max_held
    res.run("%s: at most 64 held (+1 being admitted)" % what, limits_held)

    def memory_and_fds():
        if not hub.SANITIZED:
            assert max(watch.rss) - rss0 <= RSS_MAX_KIB, (rss0, max(watch.rss))
        fds = wait_fds(front, base_fds)
        figure("%s: ttyhub-sshd fds afterwards (baseline %d)" % (what, base_fds), fds)
        assert fds == base_fds, (fds, base_fds)
    res.run("%s: RSS bounded, fds back to baseline" % what, memory_and_fds)


def phase_sustained(front, key, res, base_fds, rss0):
    flood, watch, logins, dur, displaced = sustained(front, key, MIXED)
    report_sustained("sustained", flood, watch, logins, dur, displaced, rss0)
    assert flood.error is None, flood.error

    def logins_ok():
        assert displaced == 0, "the user's connection was displaced %d times" % displaced
        logins.check("sustained", displaced)
    res.run("sustained flood (closed connections reopened at once): every login succeeds "
            "quickly (target 2 s), never displaced", logins_ok)

    def least_progress_first():
        # Sampled from /proc/net/tcp between logins: the flood connections the server
        # holds, by kind.  Drop-oldest would hold the kinds in the proportions they arrive
        # (a third each); least-progress-first keeps the "kexinit" ones (progress 1 once
        # their line is read) and displaces the "silent" and "ident" ones (progress 0)
        # at the next accept.
        total = sum(watch.kinds.values())
        figure("sustained: flood connections held by the server, by kind (summed over "
               "%d samples)" % watch.composition_samples,
               ", ".join("%s %d" % (k, watch.kinds.get(k, 0)) for k in MIXED))
        for kind in MIXED:
            cs = [c for c in flood.conns if c.kind == kind and c.t_closed is not None]
            early = sum(1 for c in cs if c.lifetime() < GRACE - GRACE_EARLY_S)
            figure("sustained: %s connections closed, before the grace time" % kind,
                   "%d, %d" % (len(cs), early))
        assert total, "no flood connection seen held"
        share = watch.kinds.get("kexinit", 0) / total
        figure("sustained: share of progress-1 ('kexinit') connections among those held",
               "%.2f" % share)
        assert share >= 0.75, "only %.2f of the connections held are at progress 1: not " \
            "least progress first" % share
    res.run("sustained: connections at progress 0 are displaced before progress 1",
            least_progress_first)
    check_bounds(res, "sustained", front, watch, rss0, base_fds)


def phase_stalled_ident(front, key, res, base_fds, rss0):
    flood, watch, logins, dur, displaced = sustained(front, key, ("stall",))
    what = "stalled-identification flood"
    report_sustained(what, flood, watch, logins, dur, displaced, rss0)
    logins.report(what)
    assert flood.error is None, flood.error

    def logins_get_through():
        ok = sum(1 for r in logins.results if r[3])
        assert ok >= 1, "no login succeeded: %r" % [r[4] for r in logins.results][:5]
    res.run("%s: logins get through (the 2 s target is reported, not asserted)" % what,
            logins_get_through)
    check_bounds(res, what, front, watch, rss0, base_fds)


def main():
    res = runner.Runner()
    if not os.access(sshhub.SSHD, os.X_OK):
        print("FAIL %s is missing (build it first)" % sshhub.SSHD, flush=True)
        sys.exit(1)
    wd = hub.workdir("flood")
    print("form: %s; %d connections, --login-grace %d, sustained floods %.0f s"
          % ("full" if LONG else "CI", FLOOD, GRACE, FLOOD_S), flush=True)
    t_start = time.monotonic()
    # The console need not exist for `list` to show it.
    d = hub.Daemon(wd, "--console", "vm=" + os.path.join(wd, "vm.sock"),
                   "--front-user", "root").start()
    try:
        key, pub = sshhub.make_key(wd, "alice")
        front = sshhub.SshFront(os.path.join(wd, "sshd"), d.socket, ['consoles="vm:ro" ' + pub],
                                extra_args=["--login-grace", str(GRACE)])
        lg = Logins(front, key)
        lg.once()
        res.run("login without a flood", lg.check, "no flood")
        # The login's session closes shortly after ssh exits: wait for a stable count.
        base_fds, prev = None, front.fd_count()
        for _ in range(50):
            time.sleep(0.2)
            base_fds, prev = prev, front.fd_count()
            if base_fds == prev:
                break
        front.base_fds = base_fds
        rss0 = front.rss_kib()
        figure("ttyhub-sshd fds, RSS KiB before the flood", "%d, %d" % (base_fds, rss0))

        res.on_failure = lambda: print("--- ttyhub-sshd log tail ---\n" + front.log()[-2000:],
                                       flush=True)
        args = (front, key, res, base_fds, rss0)
        res.run("burst phase ran", phase_burst, *args)
        res.run("sustained phase ran", phase_sustained, *args)
        res.run("stalled-identification phase ran", phase_stalled_ident, *args)

        def log_rate_limited():
            elapsed = time.monotonic() - t_start
            n = len(re.findall(r"pre-authentication limit: ", front.log()))
            figure("'pre-authentication limit' log lines in %.0f s" % elapsed, n)
            assert n <= elapsed / 10 + 2, "%d lines in %.0f s" % (n, elapsed)
        res.run("refusals logged at most once per 10 s", log_rate_limited)
        res.run("ttyhub-sshd alive", lambda: runner.require(front.alive(), front.log()[-3000:]))
    finally:
        d.stop()
    figure("run time, s", "%.0f" % (time.monotonic() - t_start))
    res.finish(wd)


if __name__ == "__main__":
    main()
