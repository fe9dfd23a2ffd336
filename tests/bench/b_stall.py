# SPDX-License-Identifier: MIT
"""Guest stall (issue 7, item 4): how long the synthetic guest's writes block while 100
watchers read its console and 10 of them are stopped (SIGSTOP).

The guest is tests/fake-guest, unpaced (it writes as fast as its socket takes it); it
measures every write that blocks, from EAGAIN/short write until POLLOUT, and reports the
longest one (max_block_ms) and the blocks over 10 ms.  Unpaced, it is faster than any
reader and so waits most of the time; what matters is how long one wait lasts.  Target:
never blocked more than 50 ms.

Three consumers of the same guest, one after the other, each for the same time:
* ttyhub: ttyhubd holds the socket; 100 OpenSSH clients (`ssh -T fg+ro@`, aes128-gcm)
  watch through ttyhub-sshd, 10 of them SIGSTOPped before the guest starts;
* conserver (Debian conserver-server) with a `uds` console and 100 `console -s` spies,
  10 of them SIGSTOPped;
* a direct `socat` reader (the ceiling: nothing between the guest and one reader).
The watcher clients run at nice 19: they stand for people on other machines, and 100 local
clients reading flat out would otherwise take the CPU from the daemons under test.  The
guest and the daemons (ttyhubd, ttyhub-sshd, conserver, socat) run at nice -5, all alike,
so that unrelated work on the machine weighs less on how long the guest waits (the guest's
figure includes its own wait for a CPU after the socket became writable).  Every watcher's
stdout is a pipe drained by one thread here, which counts what each one received.  The
watchers attach while the guest socket does not exist yet (ttyhubd retries, conserver is
told to retry with SIGUSR1), so the guest's figures cover only the time with all 100
watchers attached.  fake-guest is sampled (SIGUSR1) every 0.5 s for the plot.  Each daemon's
time spent waiting for a CPU (/proc/PID/schedstat) is noted: on a loaded machine long
blocks come from there, and the direct reader shows what the machine itself allows.
"""

import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402
import watchkit  # noqa: E402

TITLE = "Guest stall: 100 watchers, 10 of them stopped"
ORDER = 40

WATCHERS = 100
STOPPED = 10
TARGET_MS = 50.0
CIPHER = "aes128-gcm@openssh.com"
# The watchers stand for people on other machines: on this host their clients (100 ssh or
# console processes decrypting/reading flat out) must not starve the daemons under test.
WATCHER_NICE = 19
# The guest and the daemons under test (ttyhubd, ttyhub-sshd, conserver, socat) run at this
# nice value, the same for all: other work on the machine (builds, fuzzers) must not decide
# how long the guest waits; what would on a host dedicated to its guests.
SUT_NICE = -5
SSH_BATCH = 6  # ttyhub-sshd admits 8 unauthenticated connections per address


def _stopped(i):
    return i % (WATCHERS // STOPPED) == WATCHERS // STOPPED - 1


def _wait_accepted(fg, timeout=30):
    """Wait until the guest has its client; returns False if it never came."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fg.proc.poll() is not None:
            return False
        fg.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.01)
        st = fg.read_stats()
        if st and st["clients_accepted"] > 0:
            return True
    return False


class Run:
    """One consumer's measurement: guest stats, watchers' bytes, daemons' CPU."""

    def __init__(self, name):
        self.name = name
        self.stats = None
        self.delivered = []       # MB/s of each running watcher
        self.stopped_bytes = []   # bytes each stopped watcher got (before it was stopped)
        self.cpu = None           # CPU seconds per second of the daemons
        self.cpu_each = []        # the same for each daemon process
        self.runq_ms = []         # ms each daemon process waited for a CPU (schedstat)
        self.series = ([], [])
        self.problems = []

    def mbps(self):
        return self.stats["bytes_written"] / self.stats["elapsed_s"] / 1e6


def _measure(ctx, run, fg, drain, keys, daemon_pids, duration):
    """Guest started: wait for its client, then measure until it ends."""
    if not _wait_accepted(fg):
        raise AssertionError("%s never connected to the guest" % run.name)
    perf = watchkit.Perf("stall-" + run.name.replace(" ", "-"), daemon_pids)
    t0 = time.monotonic()
    c0 = benchlib.cpu_of(daemon_pids)
    e0 = [benchlib.cpu_of([p]) for p in daemon_pids]
    q0 = [watchkit.runq_wait_ms(p) for p in daemon_pids]
    b0 = drain.snapshot()
    try:
        run.stats = fg.wait(duration + 60)
    finally:
        perf.stop()
    t1 = time.monotonic()
    c1 = benchlib.cpu_of(daemon_pids)
    run.cpu_each = [(benchlib.cpu_of([p]) - e) / (t1 - t0) for p, e in zip(daemon_pids, e0)]
    run.runq_ms = [watchkit.runq_wait_ms(p) - q for p, q in zip(daemon_pids, q0)]
    b1 = drain.snapshot()
    run.cpu = (c1 - c0) / (t1 - t0)
    for i, k in enumerate(keys):
        got = b1.get(k, 0) - b0.get(k, 0)
        if _stopped(i) and len(keys) > 1:
            run.stopped_bytes.append(got)
        else:
            run.delivered.append(got / (t1 - t0) / 1e6)
    run.series = fg.series()
    if any(d == 0 for d in run.delivered):
        run.problems.append("%d running watchers received nothing"
                            % sum(1 for d in run.delivered if d == 0))
    ctx.log("%s: guest %.0f MB/s, longest block %.2f ms, %d blocks > 10 ms; daemons %s CPU, "
            "waited %s ms for a CPU" % (
                run.name, run.mbps(), run.stats["max_block_ms"], run.stats["blocks_over_10ms"],
                "+".join("%.2f" % c for c in run.cpu_each[:3]),
                "+".join("%.0f" % q for q in run.runq_ms[:3])))


def _spawn(argv, drain, key, procs, stdin=subprocess.PIPE):
    """Start a watcher; its stdout (and stderr) is drained by DRAIN under KEY.  ssh needs
    its stdin held open (EOF would end the session); `console -s` needs /dev/null (with a
    pipe it attaches read-write instead of spying)."""
    p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, preexec_fn=lambda: os.nice(WATCHER_NICE))
    procs.append(p)
    drain.add(key, p.stdout)
    return p


def _cleanup(procs):
    for p in procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGCONT)
                p.kill()
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass
        for f in (p.stdin, p.stdout):
            try:
                if f:
                    f.close()
            except OSError:
                pass


def run_ttyhub(ctx, duration):
    os.environ["TTYHUB_BUILD"] = ctx.build
    import hub
    import sshhub
    wd = ctx.workdir("stall-th")
    sock = os.path.join(wd, "fg.sock")
    run = Run("ttyhub")
    d = hub.Daemon(wd, "--console", "fg=" + sock, "--front-user", "root").start()
    try:
        key, pub = sshhub.make_key(wd, "watcher")
        front = sshhub.SshFront(os.path.join(wd, "sshd"), d.socket,
                                ['consoles="fg:ro" ' + pub],
                                extra_args=["--max-sessions-per-key", "100000"])
    except Exception:
        d.stop()
        raise
    watchkit.renice([d.pid(), front.pid], SUT_NICE)
    drain = watchkit.PipeDrain()
    procs, keys = [], []
    fg = benchlib.FakeGuest(ctx, sock, line_length=None, tag=None,
                            stats_path=os.path.join(wd, "fg.json"), duration=duration,
                            wait_client=True, sample_every=0.5, nice=SUT_NICE)
    try:
        t0 = time.monotonic()
        for i in range(WATCHERS):
            argv = sshhub.ssh_cmd(front, key, "fg+ro", tty=False,
                                  options=["Ciphers=" + CIPHER])
            keys.append(("ssh", i))
            _spawn(argv, drain, keys[-1], procs)
            if len(keys) % SSH_BATCH == 0 or i == WATCHERS - 1:
                missing = drain.wait_heads(keys, b"[ttyhub] attached to fg", 60)
                if missing:
                    raise AssertionError("SSH watcher %s did not attach: %r\n%s" % (
                        missing[0], drain.head(missing[0])[-500:], front.log()[-2000:]))
        ctx.log("ttyhub: %d SSH watchers attached in %.1f s"
                % (WATCHERS, time.monotonic() - t0))
        for i, p in enumerate(procs):
            if _stopped(i):
                p.send_signal(signal.SIGSTOP)
        fg.start()
        _measure(ctx, run, fg, drain, keys, [d.pid(), front.pid], duration)
        alive = sum(1 for p in procs if p.poll() is None)
        if alive != WATCHERS:
            run.problems.append("%d of %d ssh watchers had exited by the end"
                                % (WATCHERS - alive, WATCHERS))
        if not d.alive():
            run.problems.append("ttyhubd died: " + d.log()[-500:])
    finally:
        fg.kill()
        _cleanup(procs)
        drain.stop()
        rc_front = front.stop()
        rc_d = d.stop()
    if rc_front != 0 or rc_d != 0:
        run.problems.append("exit status: ttyhubd %s, ttyhub-sshd %s" % (rc_d, rc_front))
    return run


def run_conserver(ctx, duration):
    import sshhub
    wd = ctx.workdir("stall-cs")
    sock = os.path.join(wd, "fg.sock")
    run = Run("conserver")
    cs = watchkit.Conserver(wd, [("fg", sock)], sshhub.free_port()).start()
    watchkit.renice(cs.pids(), SUT_NICE)
    drain = watchkit.PipeDrain()
    procs, keys = [], []
    fg = benchlib.FakeGuest(ctx, sock, line_length=None, tag=None,
                            stats_path=os.path.join(wd, "fg.json"), duration=duration,
                            wait_client=True, sample_every=0.5, nice=SUT_NICE)
    try:
        t0 = time.monotonic()
        for i in range(WATCHERS):
            keys.append(("spy", i))
            _spawn(cs.spy_cmd("fg"), drain, keys[-1], procs, stdin=subprocess.DEVNULL)
            if len(keys) % 25 == 0:
                missing = drain.wait_heads(keys, b"[Enter `^Ec?' for help]", 60)
                if missing:
                    raise AssertionError("conserver spy %s did not attach: %r\n%s" % (
                        missing[0], drain.head(missing[0])[-500:], cs.log()[-2000:]))
        ctx.log("conserver: %d spies attached in %.1f s" % (WATCHERS, time.monotonic() - t0))
        for i, p in enumerate(procs):
            if _stopped(i):
                p.send_signal(signal.SIGSTOP)
        fg.start()
        cs.bring_up()
        _measure(ctx, run, fg, drain, keys, cs.pids(), duration)
        alive = sum(1 for p in procs if p.poll() is None)
        if alive != WATCHERS:
            run.problems.append("%d of %d spies had exited by the end"
                                % (WATCHERS - alive, WATCHERS))
    finally:
        fg.kill()
        _cleanup(procs)
        drain.stop()
        cs.stop()
    return run


def run_socat(ctx, duration):
    wd = ctx.workdir("stall-direct")
    sock = os.path.join(wd, "fg.sock")
    run = Run("direct socat")
    drain = watchkit.PipeDrain()
    fg = benchlib.FakeGuest(ctx, sock, line_length=None, tag=None,
                            stats_path=os.path.join(wd, "fg.json"), duration=duration,
                            wait_client=True, sample_every=0.5, nice=SUT_NICE).start()
    # Straight to /dev/null: nothing here may slow the ceiling down.
    p = subprocess.Popen(["socat", "-u", "-b", "65536", "UNIX-CONNECT:" + sock,
                          "OPEN:/dev/null"], stdin=subprocess.DEVNULL,
                         preexec_fn=lambda: os.nice(SUT_NICE))
    try:
        _measure(ctx, run, fg, drain, [], [p.pid], duration)
        run.delivered = [run.mbps()]
    finally:
        fg.kill()
        p.kill()
        p.wait()
        drain.stop()
    return run


def run(ctx):
    duration = 6.0 if ctx.quick else 20.0
    sec = benchlib.Section(TITLE)
    th = run_ttyhub(ctx, duration)
    cs = run_conserver(ctx, duration)
    so = run_socat(ctx, duration)

    blk = th.stats["max_block_ms"]
    sec.row("longest guest write block", blk, cs.stats["max_block_ms"], "conserver", "ms",
            "< %g ms" % TARGET_MS, blk < TARGET_MS)
    sec.row("longest guest write block vs one direct reader", blk, so.stats["max_block_ms"],
            "direct socat", "ms")
    sec.row("guest writes blocked > 10 ms", th.stats["blocks_over_10ms"],
            cs.stats["blocks_over_10ms"], "conserver", "count")
    sec.row("guest output rate", th.mbps(), cs.mbps(), "conserver", "MB/s")
    sec.row("guest output rate vs one direct reader", th.mbps(), so.mbps(), "direct socat",
            "MB/s")
    sec.row("delivered per running watcher, median", statistics.median(th.delivered),
            statistics.median(cs.delivered), "conserver", "MB/s")
    sec.row("delivered per running watcher, slowest", min(th.delivered), min(cs.delivered),
            "conserver", "MB/s")
    sec.row("daemon CPU (ttyhubd + ttyhub-sshd / all conserver processes)", th.cpu, cs.cpu,
            "conserver", "cores")
    sec.note("Guest: tests/fake-guest unpaced, %g s with all %d watchers attached, %d of them "
             "SIGSTOPped before it starts; ttyhub's watchers are OpenSSH clients through "
             "ttyhub-sshd (%s), conserver's are `console -s` spies (plain TCP); the ceiling is "
             "one `socat -u` reader on the socket.  Watchers run at nice %d, the guest and the "
             "daemons at nice %d." % (duration, WATCHERS, STOPPED, CIPHER, WATCHER_NICE,
                                       SUT_NICE))
    sec.note("Longest block: ttyhub %.2f ms, conserver %.2f ms, direct socat %.2f ms; blocks "
             "over 10 ms: %d / %d / %d." % (
                 blk, cs.stats["max_block_ms"], so.stats["max_block_ms"],
                 th.stats["blocks_over_10ms"], cs.stats["blocks_over_10ms"],
                 so.stats["blocks_over_10ms"]))
    for r in (th, cs):
        sec.note("%s: running watchers got %.2f..%.2f MB/s (median %.2f); the stopped ones got "
                 "%d bytes in all during the run" % (
                     r.name, min(r.delivered), max(r.delivered),
                     statistics.median(r.delivered), sum(r.stopped_bytes)))
    sec.note("CPU used (cores) and time spent runnable but waiting for a CPU during the run: "
             + "; ".join("%s %s" % (r.name, ", ".join(
                 "%s %.2f / %.0f ms" % (n, c, q) for n, c, q in zip(names, r.cpu_each, r.runq_ms)))
                 for r, names in ((th, ("ttyhubd", "ttyhub-sshd")),
                                  (cs, ["master"] + ["child"] * 10), (so, ("socat",)))))
    for r in (th, cs, so):
        for p in r.problems:
            sec.note("PROBLEM (%s): %s" % (r.name, p))
    if blk >= TARGET_MS:
        sec.note("ttyhub MISSED the target: the guest blocked %.1f ms once." % blk)
    sec.plot("stall_throughput.png", "Guest output rate with 100 watchers (10 stopped)",
             "time (s)", "MB/s", {r.name: r.series[0] for r in (th, cs, so)})
    return sec


if __name__ == "__main__":
    benchlib.run_standalone(run)
