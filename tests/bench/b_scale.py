# SPDX-License-Identifier: MIT
"""Scale, consoles (issue 7, item 5, first half): 1,000 consoles held by one ttyhubd: its
idle CPU and its memory per console, against conserver holding the same 1,000 consoles.

The consoles are 1,000 UNIX sockets served by one process (guestserve.py), each one
accepting a single client like a QEMU chardev and writing one 64-byte line on connect.
ttyhubd gets them as --console cNNNN=PATH (default 1 MiB ring).  Measured:
* RSS and PSS of ttyhubd with no console (an empty --domain-xml directory, also given in the
  1,000-console run) and with 1,000 connected idle consoles: per console = difference / 1000.
  Target: RSS per idle console < 64 KiB plus the ring pages actually used (the ring is
  allocated, not touched: the 64-byte line touches one page);
* idle CPU of ttyhubd with the 1,000 consoles over 30 s (5 s with --quick);
* the same RSS again after every console received 64 KiB more (17 ring pages used), target
  < 64 KiB + those pages per console.
All 1,000 consoles must be connected: guestserve counts the connections it accepted, and
ttyhubd's log must say "connected" for each; `ttyhub list --json` is tried as well (its
reply once had to fit one 64 KiB frame, which failed above ~150 consoles).
Peer: conserver (Debian conserver-server) with the same 1,000 `uds` consoles, its master
and children summed (PSS, since the children are forks sharing pages; RSS summed would count
shared pages many times), per console against conserver with one console.  conserver
takes about a minute to connect 1,000 consoles here (one child per 16 consoles, forked
about once a second), so it starts while ttyhubd's figures are taken: each figure is
that process's own (CPU time, RSS, PSS), so neither disturbs the other's.
"""

import json
import math
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402
import watchkit  # noqa: E402

TITLE = "Scale: 1,000 consoles on one ttyhubd"
ORDER = 50

CONSOLES = 1000
HELLO = 64           # bytes each guest writes on connect
FILL = 64 * 1024     # bytes each console receives in the second measurement
PAGE = 4096
MALLOC_HEADER = 16   # glibc puts its chunk header in the ring mapping's first page
TARGET_KIB = 64


def ring_pages_kib(nbytes):
    """KiB of ring pages touched by NBYTES written from the start of a fresh ring."""
    return math.ceil((MALLOC_HEADER + nbytes) / PAGE) * PAGE // 1024


class Guests:
    """guestserve.py serving COUNT sockets in DIR."""

    def __init__(self, directory, count):
        self.dir = directory
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "guestserve.py"), "--dir", directory,
             "--count", str(count), "--hello", str(HELLO)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline()
        if not ready.startswith("ready"):
            raise AssertionError("guestserve did not start: %r" % ready)
        self.paths = [(("c%04d" % i), os.path.join(directory, "c%04d.sock" % i))
                      for i in range(count)]

    def ask(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        ans = self.proc.stdout.readline().split()
        if not ans:
            raise AssertionError("guestserve died")
        return ans

    def count(self):
        a = self.ask("count")
        return int(a[1]), int(a[3])

    def wait_open(self, n, timeout):
        deadline = time.monotonic() + timeout
        while True:
            acc, opened = self.count()
            if opened >= n or time.monotonic() >= deadline:
                return opened
            time.sleep(0.1)

    def fill(self, nbytes):
        a = self.ask("fill %d" % nbytes)
        return int(a[1]), int(a[3])

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def list_check(d):
    """`ttyhub list --json`: (number of consoles listed as connected, error text or None)."""
    try:
        r = d.cli("list", "--json", timeout=30)
    except subprocess.TimeoutExpired:
        return None, "timed out"
    if r.returncode != 0:
        return None, (r.stderr or r.stdout).decode(errors="replace").strip()[:200]
    try:
        consoles = json.loads(r.stdout)["consoles"]
    except (ValueError, KeyError) as e:
        return None, "unparsable reply: %s" % e
    return sum(1 for c in consoles if c.get("state") == "connected"), None


def measure_ttyhub(ctx, idle_s, connected):
    os.environ["TTYHUB_BUILD"] = ctx.build
    import hub
    res = {}
    wd = ctx.workdir("scale-th")
    empty = os.path.join(wd, "xml")
    os.mkdir(empty)
    base = hub.Daemon(wd, "--domain-xml", empty, name="base").start()
    time.sleep(1.0)
    res["rss0"] = base.rss_kib()
    res["pss0"] = benchlib.pss_kib(base.pid())
    res["fd0"] = base.fd_count()
    base.stop()

    gdir = os.path.join(wd, "g")
    os.mkdir(gdir)
    guests = Guests(gdir, CONSOLES)
    args = ["--domain-xml", empty]
    for name, path in guests.paths:
        args += ["--console", "%s=%s" % (name, path)]
    d = hub.Daemon(wd, *args)
    try:
        t0 = time.monotonic()
        d.start(timeout=60)
        opened = guests.wait_open(CONSOLES, 60)
        res["connect_s"] = time.monotonic() - t0
        res["opened"] = opened
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            res["log_connected"] = d.log().count(": connected to ")
            if res["log_connected"] >= CONSOLES:
                break
            time.sleep(0.2)
        res["fds"] = d.fd_count()
        res["list_connected"], res["list_error"] = list_check(d)
        ctx.log("ttyhub: %d consoles connected in %.1f s (guestserve %d, log %d, fds %d, "
                "list %s)" % (CONSOLES, res["connect_s"], opened, res["log_connected"],
                              res["fds"], res["list_connected"] if res["list_error"] is None
                              else "failed: " + res["list_error"]))
        connected()  # only now: the peer's start-up must not slow this one down
        time.sleep(2.0)  # let start-up work (first reads, retries) settle
        res["rss_idle"] = d.rss_kib()
        res["pss_idle"] = benchlib.pss_kib(d.pid())
        c0, t0 = watchkit.cpu_precise([d.pid()]), time.monotonic()
        time.sleep(idle_s)
        res["idle_cpu"] = (watchkit.cpu_precise([d.pid()]) - c0) / (time.monotonic() - t0)
        res["rss_idle2"] = d.rss_kib()
        res["filled"], res["fill_pending"] = guests.fill(FILL)
        time.sleep(0.5)
        res["rss_full"] = d.rss_kib()
        res["pss_full"] = benchlib.pss_kib(d.pid())
        res["alive"] = d.alive()
        ctx.log("ttyhub: RSS %d KiB empty, %d idle, %d after %d KiB each; idle CPU %.6f"
                % (res["rss0"], res["rss_idle"], res["rss_full"], FILL // 1024,
                   res["idle_cpu"]))
    finally:
        rc = d.stop()
        guests.stop()
    res["rc"] = rc
    return res


class ConserverRun:
    """The peer, in two steps: prepare() (in a thread while ttyhubd is measured: conserver
    forks a child per 16 consoles, about one a second here, and is slow to connect 1,000)
    measures conserver with one console, then starts it with 1,000 and waits until they are
    connected; measure() takes the figures; stop() ends everything."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.res = {}
        self.error = None
        self.cs = self.guests = None
        self.thread = threading.Thread(target=self._prepare, daemon=True)

    def _prepare(self):
        try:
            self.prepare()
        except Exception as e:  # noqa: BLE001 - reported by measure()
            self.error = e

    def prepare(self):
        import sshhub
        res = self.res
        wd = self.ctx.workdir("scale-cs")
        # Baseline: one console (conserver wants at least one).
        g1dir = os.path.join(wd, "g1")
        os.mkdir(g1dir)
        g1 = Guests(g1dir, 1)
        cs1 = watchkit.Conserver(os.path.join(wd), g1.paths, sshhub.free_port())
        try:
            cs1.start()
            g1.wait_open(1, 30)
            time.sleep(1.0)
            pids = cs1.pids()
            res["pss1"] = sum(benchlib.pss_kib(p) for p in pids)
            res["rss1"] = sum(benchlib.rss_kib(p) for p in pids)
            res["procs1"] = len(pids)
        finally:
            cs1.stop()
            g1.stop()

        gdir = os.path.join(wd, "g")
        os.mkdir(gdir)
        self.guests = Guests(gdir, CONSOLES)
        cwd = os.path.join(wd, "cs")
        os.mkdir(cwd)
        self.cs = watchkit.Conserver(cwd, self.guests.paths, sshhub.free_port())
        t0 = time.monotonic()
        self.cs.start(timeout=180)
        res["opened"] = self.guests.wait_open(CONSOLES, 180)
        res["connect_s"] = time.monotonic() - t0

    def measure(self, idle_s):
        self.thread.join()
        if self.error:
            raise self.error
        res, cs, ctx = self.res, self.cs, self.ctx
        time.sleep(2.0)
        pids = cs.pids()
        res["procs"] = len(pids)
        res["pss_idle"] = sum(benchlib.pss_kib(p) for p in pids)
        res["rss_idle"] = sum(benchlib.rss_kib(p) for p in pids)
        ctx.log("conserver: %d of %d consoles connected in %.1f s, %d processes"
                % (res["opened"], CONSOLES, res["connect_s"], res["procs"]))
        c0, t0 = watchkit.cpu_precise(pids), time.monotonic()
        time.sleep(idle_s)
        res["idle_cpu"] = (watchkit.cpu_precise(pids) - c0) / (time.monotonic() - t0)
        res["filled"], res["fill_pending"] = self.guests.fill(FILL)
        time.sleep(0.5)
        res["pss_full"] = sum(benchlib.pss_kib(p) for p in pids)
        ctx.log("conserver: PSS %d KiB with 1 console, %d idle, %d after %d KiB each; "
                "idle CPU %.6f" % (res["pss1"], res["pss_idle"], res["pss_full"],
                                   FILL // 1024, res["idle_cpu"]))
        return res

    def stop(self):
        self.thread.join()
        if self.cs:
            self.cs.stop()
        if self.guests:
            self.guests.stop()


def run(ctx):
    idle_s = 5.0 if ctx.quick else 30.0
    sec = benchlib.Section(TITLE)
    peer = ConserverRun(ctx)
    try:
        th = measure_ttyhub(ctx, idle_s, peer.thread.start)
        cs = peer.measure(idle_s)
    finally:
        peer.stop()
    n = CONSOLES

    all_connected = th["opened"] == n and th["log_connected"] >= n
    sec.row("consoles connected", th["opened"], cs["opened"], "conserver", "consoles",
            "all %d" % n, all_connected)
    used_idle = ring_pages_kib(HELLO)
    used_full = ring_pages_kib(HELLO + FILL)
    rss_idle = (th["rss_idle"] - th["rss0"]) / n
    rss_full = (th["rss_full"] - th["rss0"]) / n
    sec.row("RSS per idle console (%d KiB of ring pages used)" % used_idle, rss_idle, None, "",
            "KiB", "< %d + %d KiB" % (TARGET_KIB, used_idle), rss_idle < TARGET_KIB + used_idle)
    sec.row("RSS per console after %d KiB each (%d KiB of ring pages used)"
            % (FILL // 1024, used_full), rss_full, None, "", "KiB",
            "< %d + %d KiB" % (TARGET_KIB, used_full), rss_full < TARGET_KIB + used_full)
    cs_pss_idle = (cs["pss_idle"] - cs["pss1"]) / (n - 1)
    cs_pss_full = (cs["pss_full"] - cs["pss1"]) / (n - 1)
    sec.row("PSS per idle console", (th["pss_idle"] - th["pss0"]) / n, cs_pss_idle,
            "conserver", "KiB")
    sec.row("PSS per console after %d KiB each" % (FILL // 1024),
            (th["pss_full"] - th["pss0"]) / n, cs_pss_full, "conserver", "KiB")
    sec.row("idle CPU with %d consoles" % n, th["idle_cpu"] * 1000, cs["idle_cpu"] * 1000,
            "conserver", "ms/s")
    sec.row("time to connect %d consoles" % n, th["connect_s"], cs["connect_s"], "conserver",
            "s")

    sec.note("ttyhubd: RSS %d KiB with no console, %d KiB with %d idle consoles (%d KiB after "
             "%d s idle), %d KiB after each received %d KiB more; PSS %d / %d / %d KiB; "
             "%d open fds (%d with no console)." % (
                 th["rss0"], th["rss_idle"], n, th["rss_idle2"], idle_s, th["rss_full"],
                 FILL // 1024, th["pss0"], th["pss_idle"], th["pss_full"], th["fds"],
                 th["fd0"]))
    sec.note("Each guest wrote a %d-byte line on connect (%d KiB of ring pages per console: "
             "the ring is malloc'ed, 1 MiB, and only touched pages count), then %d KiB more "
             "(%d KiB of pages)." % (HELLO, used_idle, FILL // 1024, used_full))
    sec.note("conserver (default consoles per process): %d processes; PSS summed %d KiB with "
             "1 console, %d KiB with %d, %d KiB after %d KiB each; RSS summed %d KiB (counts "
             "shared pages once per process)." % (
                 cs["procs"], cs["pss1"], cs["pss_idle"], n, cs["pss_full"], FILL // 1024,
                 cs["rss_idle"]))
    if th["list_error"] is None:
        sec.note("`ttyhub list --json` listed %d consoles as connected." % th["list_connected"])
        if th["list_connected"] != n:
            sec.note("PROBLEM: `ttyhub list` shows %d connected consoles, not %d"
                     % (th["list_connected"], n))
    else:
        sec.note("PROBLEM: `ttyhub list --json` failed with %d consoles: %s"
                 % (n, th["list_error"]))
    if not all_connected:
        sec.note("PROBLEM: ttyhubd connected %d consoles (log: %d), not %d"
                 % (th["opened"], th["log_connected"], n))
    if th["filled"] != n or th["fill_pending"]:
        sec.note("PROBLEM: ttyhubd did not read all %d KiB on %d consoles"
                 % (FILL // 1024, n - th["filled"] + th["fill_pending"]))
    if cs["opened"] != n:
        sec.note("conserver connected %d of %d consoles" % (cs["opened"], n))
    if th["rc"] != 0 or not th["alive"]:
        sec.note("PROBLEM: ttyhubd exit status %s (alive during the run: %s)"
                 % (th["rc"], th["alive"]))
    return sec


if __name__ == "__main__":
    benchlib.run_standalone(run)
