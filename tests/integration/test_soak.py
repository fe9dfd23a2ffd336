#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Soak: 50 SSH watchers on one console, 10 of them stalled, and a writer pasting 10 MiB
into another console whose guest does not read.

Real components: ttyhubd, ttyhub-sshd, 50 + 1 OpenSSH `ssh` client processes (each from
its own 127.0.3.N source address, stdout to a file), the synthetic guest
(build/tests/fake-guest: numbered 128-byte lines at a fixed rate) on console "fg", and a
second console "stuck" whose chardev this script serves and does not read.

Timeline (CI form; TTYHUB_LONG=1 gives the issue's figures: 2 minutes after warm-up):

  warm-up     50 read-only watchers attached and streaming; ttyhub-sshd is stopped for 2 s
              once so that every per-watcher buffer in both daemons reaches its bound
              before anything is measured; a watcher with full buffers costs <= 1 MiB
              (RSS of both daemons after warm-up minus before the watchers, over 50);
  phase A     all 50 keep up: ttyhubd and ttyhub-sshd RSS may grow <= 2 MiB;
  paste       a read-write user pastes 10 MiB over SSH into "stuck": far less than 10 MiB
              is accepted and no more after that (the writer is throttled and stays so
              until the end), the daemons grow by a bounded amount (ttyhub-sshd holds the
              1.2 MiB SSH channel window libssh grants: <= 3 MiB), and the watchers of
              "fg" see no gap and no stall;
  stall       with the paste still held, 10 watchers' ssh processes are SIGSTOPped: the
              RSS the two daemons gain, divided by 10, is what stalling a watcher adds
              (<= 1 MiB);
  end         the stalled watchers are resumed and catch up (each within 2 s of output
              of the guest, within 30 s); "stuck" starts reading and gets every pasted
              byte in order; everybody detaches; both daemons' fd counts are back where
              they were before the first watcher.

Proven for the 40 watchers that keep up, over everything they received between the end
of warm-up and the end (pattern.check_lines): no gap, no corrupt or reordered line, no
"[ttyhub]" notice of any kind, never more than 3 s without new bytes, and first and last
lines within 2 s of output of what the guest had written then.  For the 10 stalled ones:
any gap they have is announced by a "[ttyhub] N bytes dropped" notice (never a silent
loss).  The guest's longest blocked write (fake-guest --stats max_block_ms) stays short:
neither stalled SSH clients nor a stopped ttyhub-sshd push back on the guest.

Memory bounds are not asserted under ASan (TTYHUB_SANITIZED=1; the allocator's quarantine,
not ttyhub, decides RSS), but every figure is printed.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import pattern  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402

LONG = os.environ.get("TTYHUB_LONG") == "1"
WATCHERS = 50
STALLED = 10
RATE = 300_000          # guest output, bytes/s: 50 watchers get 15 MB/s of SSH traffic
LINE = 128              # bytes per pattern line
# Stalls stay under 45 s: ttyhub-sshd drops a peer that acknowledges nothing for
# 3 x --keepalive (15 s) by design (TCP_USER_TIMEOUT), and a stopped ssh is such a peer.
if LONG:    # seconds: 55 + 20 + 40 + catching up = 2 minutes of 50 watchers after warm-up
    WARMUP, PHASE_A, PASTE_S, STALL_S = 20.0, 55.0, 20.0, 40.0
else:
    WARMUP, PHASE_A, PASTE_S, STALL_S = 4.0, 8.0, 6.0, 14.0
CATCH_UP_MAX_S = 30.0   # resumed watchers must be within 2 s of the guest by then
PASTE = 10 * 1024 * 1024
PASTE_LINE = 64
GROWTH_MAX_KIB = 2048   # RSS growth bound per daemon and phase
# A held paste keeps the SSH channel window libssh grants (1.2 MiB) in ttyhub-sshd.
PASTE_GROWTH_MAX_KIB = 3072
STALL_COST_MAX_KIB = 1024
PASTE_ACCEPT_MAX = 4 * 1024 * 1024
GUEST_BLOCK_MAX_MS = 500.0   # 0 when the machine is quiet; up to 365 ms seen at load 46
STALL_MAX_S = 3.0       # longest time a keeping-up watcher may go without new bytes
DETACH = b"\x05c."
NOTICE = b"[ttyhub]"


def figure(name, value):
    print("figure: %s = %s" % (name, value), flush=True)


class Watcher:
    """One `ssh -T fg+ro+replay=0@...` from its own source address, stdout to a file."""

    def __init__(self, wd, front, key, i):
        self.i = i
        self.path = os.path.join(wd, "w%02d.out" % i)
        out = open(self.path, "wb")
        argv = sshhub.ssh_cmd(front, key, "fg+ro+replay=0", tty=False,
                              options=["BindAddress=127.0.3.%d" % (i + 1)])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out,
                                     stderr=subprocess.STDOUT)
        out.close()
        self.stalled = False
        self.start_off = self.end_off = None

    def size(self):
        return os.path.getsize(self.path)

    def read(self, start=0, end=None):
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read() if end is None else f.read(end - start)

    def attached(self):
        with open(self.path, "rb") as f:
            head = f.read(4096)
        return b"attached to fg read-only" in head

    def detach(self):
        try:
            self.proc.stdin.write(DETACH)
            self.proc.stdin.flush()
        except OSError:
            pass

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdin:
            try:
                self.proc.stdin.close()
            except OSError:
                pass


class Sampler(threading.Thread):
    """Every 0.25 s: RSS of both daemons and the size of every watcher's file."""

    def __init__(self, d, front, watchers):
        super().__init__(daemon=True)
        self.d, self.front, self.watchers = d, front, watchers
        self.rows = []       # (t, ttyhubd KiB, ttyhub-sshd KiB)
        self.sizes = []      # (t, [size per watcher])
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            t = time.monotonic()
            try:
                self.rows.append((t, self.d.rss_kib(), self.front.rss_kib()))
                self.sizes.append((t, [w.size() for w in self.watchers]))
            except OSError:
                pass
            self.stop_ev.wait(0.25)

    def rss_at(self, t):
        """The last sample at or before t."""
        best = self.rows[0]
        for row in self.rows:
            if row[0] <= t:
                best = row
        return best

    def growth(self, t0, t1):
        """(ttyhubd, ttyhub-sshd) KiB: max over [t0, t1] minus the value at t0."""
        base = self.rss_at(t0)
        inside = [r for r in self.rows if t0 <= r[0] <= t1] or [base]
        return (max(r[1] for r in inside) - base[1], max(r[2] for r in inside) - base[2])

    def longest_still(self, k, t0, t1):
        """Longest time in [t0, t1] during which watcher k's file did not grow."""
        return self.still_window(k, t0, t1)[0]

    def still_window(self, k, t0, t1):
        """(seconds, start, end) of the longest time in [t0, t1] watcher k's file did not
        grow."""
        pts = [(t, s[k]) for t, s in self.sizes if t0 <= t <= t1]
        best, since, last = (0.0, pts[0][0], pts[0][0]) if pts else (0.0, t0, t0), None, None
        for t, size in pts:
            if last is None or size != last:
                since, last = t, size
            if t - since > best[0]:
                best = (t - since, since, t)
        return best

    def grew(self, k, t0, t1):
        """Whether watcher k's file grew between the last samples at or before t0 and t1."""
        def at(t):
            return ([s[k] for ts, s in self.sizes if ts <= t] or [0])[-1]
        return at(t1) != at(t0)

    def longest_gap(self, t0, t1):
        """Longest time between two samples in [t0, t1] (the sampler itself delayed)."""
        ts = [t for t, _ in self.sizes if t0 <= t <= t1]
        return max((b - a for a, b in zip(ts, ts[1:])), default=0.0)


class StuckGuest(threading.Thread):
    """The chardev of console "stuck": accepts ttyhubd and reads nothing until told to."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.lst = socket.socket(socket.AF_UNIX)
        self.lst.bind(path)
        self.lst.listen(1)
        self.reading = threading.Event()
        self.received = bytearray()
        self.conn = None
        self.done = threading.Event()

    def run(self):
        try:
            self.conn, _ = self.lst.accept()
            self.reading.wait()
            self.conn.settimeout(0.2)
            while len(self.received) < PASTE and not self.done.is_set():
                try:
                    chunk = self.conn.recv(1 << 16)
                except socket.timeout:
                    continue
                if not chunk:
                    break
                self.received += chunk
        except OSError:
            pass   # closed by close()
        self.done.set()

    def close(self):
        self.done.set()
        self.reading.set()
        self.lst.close()
        if self.conn:
            self.join(5)
            self.conn.close()


class Paster(threading.Thread):
    """Feeds PASTE bytes into the writer's ssh stdin as fast as it takes them."""

    def __init__(self, proc, data):
        super().__init__(daemon=True)
        self.proc, self.data = proc, data
        self.accepted = 0
        self.log = []   # (t, accepted)
        self.error = None

    def run(self):
        fd = self.proc.stdin.fileno()
        os.set_blocking(fd, False)
        try:
            while self.accepted < len(self.data) and self.proc.poll() is None:
                try:
                    n = os.write(fd, self.data[self.accepted:self.accepted + 65536])
                except BlockingIOError:
                    n = 0
                self.accepted += n
                self.log.append((time.monotonic(), self.accepted))
                if n == 0:
                    time.sleep(0.01)
        except OSError as e:
            self.error = e
        os.set_blocking(fd, True)

    def accepted_at(self, t):
        best = 0
        for when, n in self.log:
            if when <= t:
                best = n
        return best


def guest_stats(fg, path):
    """Ask fake-guest for its statistics now (SIGUSR1) and read them."""
    try:
        before = os.stat(path).st_mtime_ns
    except OSError:
        before = None
    fg.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if os.stat(path).st_mtime_ns != before:
                with open(path) as f:
                    return json.load(f)
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    raise AssertionError("fake-guest wrote no statistics")


def last_line(w):
    """The number of the last whole pattern line in the watcher's file (-1: none yet)."""
    size = w.size()
    chk = pattern.check_lines(w.read(max(0, size - 64 * LINE), size), "fg", LINE)
    return -1 if chk["last"] is None else chk["last"]


def check_keeper(w, st_a, st_end):
    """A watcher that was never stopped: everything between its offsets, checked."""
    data = w.read(w.start_off, w.end_off)
    assert NOTICE not in data, "w%02d got a notice: %r" % (
        w.i, data[max(0, data.find(NOTICE) - 100):data.find(NOTICE) + 200])
    chk = pattern.check_lines(data, "fg", LINE)
    assert not chk["gaps"] and not chk["corrupt"] and not chk["reorders"], \
        "w%02d: %r" % (w.i, {k: v if not isinstance(v, list) else v[:5] for k, v in chk.items()})
    # From about what the guest had written at the start to about what it wrote at the end.
    head = chk["first"] - st_a["lines_written"]
    lag = st_end["lines_written"] - chk["last"]
    return chk, head, lag


def run(wd, res):
    fg_sock = os.path.join(wd, "fg.sock")
    stats_path = os.path.join(wd, "fg-stats.json")
    stuck = StuckGuest(os.path.join(wd, "stuck.sock"))
    stuck.start()
    fg = subprocess.Popen([hub.FAKE_GUEST, "--socket", fg_sock, "--rate", str(RATE),
                           "--line-length", str(LINE), "--stats", stats_path],
                          stdin=subprocess.DEVNULL)
    runner.wait_until(lambda: os.path.exists(fg_sock), 10, "fake-guest's socket",
                      interval=0.1)
    d = hub.Daemon(wd, "--console", "fg=" + fg_sock, "--console",
                   "stuck=" + os.path.join(wd, "stuck.sock"), "--front-user", "root").start()
    watchers = []
    writer = None
    sampler = None
    try:
        wkey, wpub = sshhub.make_key(wd, "watch")
        pkey, ppub = sshhub.make_key(wd, "paste")
        # All watchers share one key: lift the per-key cap (10 by default).
        front = sshhub.SshFront(os.path.join(wd, "sshd"), d.socket,
                                ['consoles="fg:ro" ' + wpub, 'consoles="stuck:rw" ' + ppub],
                                extra_args=["--max-sessions-per-key", "1000"])
        for c in ("fg", "stuck"):
            d.wait_for(lambda c=c: (d.console(c) or {}).get("state") == "connected",
                       timeout=10, what=c + " connected")
        runner.wait_until(lambda: stuck.conn is not None, 10, "ttyhubd to connect to stuck",
                          interval=0.1)
        time.sleep(0.5)
        fds0 = (d.fd_count(), front.fd_count())
        rss0 = (d.rss_kib(), front.rss_kib())
        figure("fd count before the watchers (ttyhubd, ttyhub-sshd)", fds0)
        figure("RSS before the watchers, KiB (ttyhubd, ttyhub-sshd)", rss0)

        t0 = time.monotonic()
        watchers = [Watcher(wd, front, wkey, i) for i in range(WATCHERS)]
        runner.wait_until(lambda: all(w.attached() for w in watchers) or
                          any(w.proc.poll() is not None for w in watchers), 60, "50 watchers",
                          interval=0.1)
        dead = [w.i for w in watchers if w.proc.poll() is not None]
        assert not dead, "watchers %r exited: %r" % (dead, watchers[dead[0]].read()[-500:])
        figure("50 SSH watchers attached in, s", "%.1f" % (time.monotonic() - t0))
        assert d.console("fg")["watchers"] == WATCHERS, d.console("fg")
        sampler = Sampler(d, front, watchers)
        sampler.start()

        # Warm-up.  Every per-watcher buffer of both daemons is filled once, so that what
        # follows measures growth, not buffers reaching their bounds at the whim of the
        # scheduler: ttyhub-sshd is stopped for 2 s (ttyhubd queues to it, and on SIGCONT
        # each channel takes its share at once).
        time.sleep(1.0)
        os.kill(front.pid, signal.SIGSTOP)
        time.sleep(2.0)
        os.kill(front.pid, signal.SIGCONT)
        time.sleep(WARMUP)   # catch up; notices of the last attaches have arrived
        # Phase A: all 50 keep up.
        st_a = guest_stats(fg, stats_path)
        t_a = time.monotonic()
        for w in watchers:
            w.start_off = w.size()
        time.sleep(PHASE_A)

        # Paste: a writer pastes 10 MiB into "stuck", whose guest does not read.
        t_paste = time.monotonic()
        st_phase = [("warm-up", st_a), ("phase A", guest_stats(fg, stats_path))]
        writer_out = os.path.join(wd, "writer.out")
        with open(writer_out, "wb") as out:
            writer = subprocess.Popen(
                sshhub.ssh_cmd(front, pkey, "stuck+replay=0", tty=False,
                               options=["BindAddress=127.0.4.1"]),
                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)

        def writer_attached():
            with open(writer_out, "rb") as f:
                return b"attached to stuck read-write" in f.read()
        runner.wait_until(lambda: writer_attached() or writer.poll() is not None, 20,
                          "the writer", interval=0.1)
        assert writer.poll() is None, open(writer_out, "rb").read()[-500:]
        paste = pattern.make_stream(0, PASTE // PASTE_LINE, "px", PASTE_LINE)
        assert len(paste) == PASTE
        paster = Paster(writer, paste)
        t_paste_start = time.monotonic()
        paster.start()
        time.sleep(PASTE_S)

        # Stall: 10 watchers stop reading (SIGSTOP); the paste stays held meanwhile.
        t_stall = time.monotonic()
        st_phase.append(("paste", guest_stats(fg, stats_path)))
        stalled = watchers[::WATCHERS // STALLED][:STALLED]
        for w in stalled:
            w.stalled = True
            w.proc.send_signal(signal.SIGSTOP)
        keepers = [w for w in watchers if not w.stalled]
        time.sleep(STALL_S)
        t_resume = time.monotonic()
        st_phase.append(("stall", guest_stats(fg, stats_path)))
        for w in stalled:
            w.proc.send_signal(signal.SIGCONT)
        # They catch up: each one's last line comes within 2 s of output of the guest's.
        caught = {}
        while len(caught) < STALLED and time.monotonic() - t_resume < CATCH_UP_MAX_S:
            time.sleep(0.5)
            now_lines = guest_stats(fg, stats_path)["lines_written"]
            for w in stalled:
                if w.i not in caught and now_lines - last_line(w) <= RATE * 2 / LINE:
                    caught[w.i] = time.monotonic() - t_resume
        time.sleep(1.0)
        t_end = time.monotonic()
        st_end = guest_stats(fg, stats_path)
        st_phase.append(("resume", st_end))
        for w in watchers:
            w.end_off = w.size()
        rss_end = sampler.rss_at(t_end)

        # ---------------------------------------------------------------- figures + checks
        figure("guest rate asked, measured over the run, bytes/s", "%d, %.0f"
               % (RATE, (st_end["bytes_written"] - st_a["bytes_written"]) / (t_end - t_a)))
        figure("guest lines written", st_end["lines_written"])
        figure("guest longest blocked write, ms", "%.3f" % st_end["max_block_ms"])
        prev = {"blocks_over_10ms": 0}
        for name, st in st_phase:
            figure("guest writes blocked > 10 ms during %s (longest so far, ms)" % name,
                   "%d (%.1f)" % (st["blocks_over_10ms"] - prev["blocks_over_10ms"],
                                  st["max_block_ms"]))
            prev = st
        g_a = sampler.growth(t_a, t_paste)
        g_paste = sampler.growth(t_paste, t_stall)
        g_stall = sampler.growth(t_stall, t_resume)
        figure("RSS after warm-up, KiB (ttyhubd, ttyhub-sshd)", sampler.rss_at(t_a)[1:])
        per_watcher = (sum(sampler.rss_at(t_a)[1:]) - sum(rss0)) / WATCHERS
        figure("cost of one watcher with its buffers filled, KiB (both daemons)",
               "%.0f" % per_watcher)
        figure("RSS growth with 50 keeping up (%.0f s), KiB (ttyhubd, ttyhub-sshd)" % PHASE_A,
               g_a)
        figure("RSS growth during the paste (%.0f s), KiB (ttyhubd, ttyhub-sshd)" % PASTE_S,
               g_paste)
        figure("RSS growth with 10 stalled (%.0f s), KiB (ttyhubd, ttyhub-sshd)" % STALL_S,
               g_stall)
        cost = (max(0, g_stall[0]) + max(0, g_stall[1])) / STALLED
        figure("cost per stalled watcher, KiB (both daemons)", "%.0f" % cost)
        figure("RSS at the end, KiB (ttyhubd, ttyhub-sshd)", rss_end[1:])
        total = (max(r[1] for r in sampler.rows if r[0] >= t_a) - sampler.rss_at(t_a)[1],
                 max(r[2] for r in sampler.rows if r[0] >= t_a) - sampler.rss_at(t_a)[2])
        figure("RSS growth after warm-up, whole run (%.0f s), KiB (ttyhubd, ttyhub-sshd)"
               % (t_end - t_a), total)

        def guest_never_blocked():
            if not hub.SANITIZED:
                assert st_end["max_block_ms"] < GUEST_BLOCK_MAX_MS, st_end
                return
            # Under ASan the longest block is the sanitizer's clock, not ours: check instead
            # that the paced guest kept writing while the watchers were stopped (a quarter of
            # its rate is far above what the buffers to a stopped watcher could absorb).
            before, during = dict(st_phase)["paste"], dict(st_phase)["stall"]
            wrote = during["bytes_written"] - before["bytes_written"]
            assert wrote > RATE * STALL_S / 4, (wrote, before, during)
        res.run("the guest is never blocked (stalled watchers, paste)", guest_never_blocked)

        def memory_flat():
            if hub.SANITIZED:
                print("  (ASan run: RSS bounds not asserted)", flush=True)
                return
            assert per_watcher <= STALL_COST_MAX_KIB, "a watcher costs %.0f KiB" % per_watcher
            assert max(g_a) <= GROWTH_MAX_KIB, "growth with 50 keeping up: %r KiB" % (g_a,)
            assert max(g_paste) <= PASTE_GROWTH_MAX_KIB, \
                "growth during the paste: %r KiB" % (g_paste,)
            assert cost <= STALL_COST_MAX_KIB, "a stalled watcher costs %.0f KiB" % cost
            assert max(total) <= GROWTH_MAX_KIB + PASTE_GROWTH_MAX_KIB + \
                STALLED * STALL_COST_MAX_KIB, total
        res.run("RSS: <= 2 MiB growth after warm-up, <= 1 MiB per stalled watcher, "
                "the paste bounded", memory_flat)

        def keepers_complete():
            lines, heads, lags = [], [], []
            for w in keepers:
                chk, head, lag = check_keeper(w, st_a, st_end)
                lines.append(chk["lines"])
                heads.append(head)
                lags.append(lag)
            figure("lines per keeping-up watcher over %.0f s (min, max); the guest wrote"
                   % (t_end - t_a), "%d, %d; %d" % (min(lines), max(lines),
                                                     st_end["lines_written"] -
                                                     st_a["lines_written"]))
            figure("keeping-up watchers: first line after the guest's count at the start, "
                   "lines behind it at the end (max)", "%d, %d" % (max(heads), max(lags)))
            slack = RATE * 2 / LINE   # 2 s of output
            assert max(heads) <= slack and max(lags) <= slack, (max(heads), max(lags))
        res.run("40 watchers that keep up get every line in order, no notice", keepers_complete)

        def keepers_never_stall():
            worst = max((sampler.longest_still(k, t_a, t_end), k)
                        for k, w in enumerate(watchers) if not w.stalled)
            paste_worst = max(sampler.longest_still(k, t_paste_start, t_end)
                              for k, w in enumerate(watchers) if not w.stalled)
            figure("longest time a keeping-up watcher got nothing, s (whole run, from the "
                   "paste on)", "%.2f, %.2f" % (worst[0], paste_worst))
            # Where the worst one lies: which phase, how many other keeping-up watchers got
            # nothing over the same window (all of them: the guest or a daemon stalled; one:
            # that watcher's ssh or channel), and whether the sampler itself was late.
            _, w0, w1 = sampler.still_window(worst[1], t_a, t_end)
            phase = [name for name, t in (("phase A", t_a), ("paste", t_paste),
                                          ("stall", t_stall), ("resume", t_resume))
                     if t <= w0][-1]
            others = sum(1 for k, w in enumerate(watchers) if not w.stalled and
                         k != worst[1] and not sampler.grew(k, w0, w1))
            figure("that window: phase, start s after phase A began, keeping-up watchers "
                   "without new bytes over it too, longest sampler gap in it s",
                   "%s, %.1f, %d of %d, %.2f" % (phase, w0 - t_a, others, WATCHERS - STALLED - 1,
                                                 sampler.longest_gap(w0, w1))
                   if w1 > w0 else "none")
            assert worst[0] <= STALL_MAX_S, "w%02d got nothing for %.2f s (%s, %d others with " \
                "it)" % (worst[1], worst[0], phase, others)
        res.run("watchers that keep up never stall (stalled peers, paste)", keepers_never_stall)

        def writer_throttled():
            a3 = paster.accepted_at(t_paste_start + 3)
            a_end = paster.accepted_at(t_end)
            a_mid = paster.accepted_at(t_end - 5)
            figure("paste accepted from the writer after 3 s, after %.0f s, bytes"
                   % (t_end - t_paste_start), "%d, %d" % (a3, a_end))
            assert a_end <= PASTE_ACCEPT_MAX, "%d of %d bytes accepted" % (a_end, PASTE)
            assert a_end - a_mid <= 64 * 1024, \
                "the writer was not held: %d more bytes in the last 5 s" % (a_end - a_mid)
            assert writer.poll() is None, "the writer's ssh exited"
        res.run("the writer is throttled by a guest that does not read", writer_throttled)

        def stalled_catch_up():
            told = 0
            for w in stalled:
                data = w.read(w.start_off, w.end_off)
                dropped = [int(n) for n in re.findall(rb"\[ttyhub\] (\d+) bytes dropped", data)]
                told += bool(dropped)
                other = data.count(NOTICE) - len(dropped)
                assert other == 0, "w%02d: unexpected notice %r" \
                    % (w.i, data[data.find(NOTICE):][:200])
                chk = pattern.check_lines(data, "fg", LINE)
                assert not chk["reorders"], (w.i, chk["reorders"][:5])
                # A notice is inserted at the byte where the loss happened: it may cut one line.
                assert len(chk["gaps"]) <= len(dropped) and chk["corrupt"] <= len(dropped), \
                    "w%02d: gaps %r, %d corrupt lines, but only %d dropped-bytes notices" \
                    % (w.i, chk["gaps"][:5], chk["corrupt"], len(dropped))
                lag = st_end["lines_written"] - chk["last"]
                assert lag <= RATE * 2 / LINE, "w%02d did not catch up: %d lines behind" \
                    % (w.i, lag)
            figure("stalled watchers told of dropped bytes", "%d of %d" % (told, STALLED))
            figure("stalled watchers caught up after SIGCONT, s (max)",
                   "%.1f" % max(caught.values(), default=-1))
            assert len(caught) == STALLED, "w%r did not catch up within %g s" \
                % (sorted(set(w.i for w in stalled) - set(caught)), CATCH_UP_MAX_S)
        res.run("stalled watchers, resumed, catch up; every loss announced", stalled_catch_up)

        # The guest of "stuck" reads now: every pasted byte arrives, in order.
        stuck.reading.set()
        t_read = time.monotonic()
        paster.join(60)
        last, still = -1, time.monotonic()
        while not stuck.done.is_set() and time.monotonic() - still < 5:
            if len(stuck.received) != last:
                last, still = len(stuck.received), time.monotonic()
            time.sleep(0.1)
        t_delivered = time.monotonic() - t_read

        def paste_delivered():
            got = bytes(stuck.received)
            figure("paste: bytes the guest received once it read, s",
                   "%d of %d, %.1f" % (len(got), PASTE, t_delivered))
            assert not paster.is_alive() and paster.accepted == PASTE, \
                "the writer could not finish: %d of %d (%r)" % (paster.accepted, PASTE,
                                                               paster.error)
            chk = pattern.check_lines(got, "px", PASTE_LINE)
            where = [(seq, n, (seq + 1) * PASTE_LINE) for seq, n in chk["gaps"][:5]]
            assert len(got) == PASTE and chk["lines"] == PASTE // PASTE_LINE and \
                not chk["gaps"] and not chk["corrupt"] and not chk["reorders"] and \
                chk["first"] == 0, \
                "guest received %d of %d bytes; gaps (after line, lines missing, at byte) " \
                "%r, %d corrupt lines, first %r last %r" \
                % (len(got), PASTE, where, chk["corrupt"], chk["first"], chk["last"])
        res.run("every pasted byte reaches the guest once it reads", paste_delivered)

        # Everybody detaches; the daemons give back every fd.
        for w in watchers:
            w.detach()
        try:
            writer.stdin.write(DETACH)
            writer.stdin.flush()
        except OSError:
            pass

        def clean_exit():
            rcs = []
            for w in watchers:
                try:
                    rcs.append(w.proc.wait(20))
                except subprocess.TimeoutExpired:
                    rcs.append("hung")
            wrc = writer.wait(20)
            bad = [(w.i, rc) for w, rc in zip(watchers, rcs) if rc != 0]
            assert not bad and wrc == 0, "ssh exit statuses: %r, writer %r" % (bad, wrc)
            d.wait_for(lambda: (d.console("fg") or {}).get("watchers") == 0 and
                       (d.console("stuck") or {}).get("writer") is None, 10, "nobody attached")
            deadline = time.monotonic() + 10
            while (d.fd_count(), front.fd_count()) != fds0 and time.monotonic() < deadline:
                time.sleep(0.1)
            fds = (d.fd_count(), front.fd_count())
            figure("fd count after everybody left (ttyhubd, ttyhub-sshd)", fds)
            assert fds == fds0, "fds %r, before the watchers %r" % (fds, fds0)
        res.run("everybody detaches (exit 0), fd counts back to baseline", clean_exit)
        res.run("daemons alive", lambda: runner.require(
            d.alive() and front.alive(),
            "ttyhubd %s, ttyhub-sshd %s" % (d.alive(), front.alive())))
    finally:
        if sampler:
            sampler.stop_ev.set()
        for w in watchers:
            w.kill()
        if writer and writer.poll() is None:
            writer.kill()
            writer.wait()
        stuck.close()
        if fg.poll() is None:
            fg.terminate()
            fg.wait(10)
        d.stop()


def main():
    res = runner.Runner()
    for exe in (sshhub.SSHD, hub.FAKE_GUEST):
        if not os.access(exe, os.X_OK):
            print("FAIL %s is missing (build it first)" % exe, flush=True)
            sys.exit(1)
    wd = hub.workdir("soak")
    print("form: %s (TTYHUB_LONG=%s); %d watchers, %d stalled, %d bytes/s"
          % ("full" if LONG else "CI", os.environ.get("TTYHUB_LONG", ""), WATCHERS, STALLED,
             RATE), flush=True)
    t0 = time.monotonic()
    run(wd, res)
    print("figure: run time, s = %.0f" % (time.monotonic() - t0), flush=True)
    res.finish(wd)


if __name__ == "__main__":
    main()
