# SPDX-License-Identifier: MIT
"""1,000 concurrent SSH watchers (issue 7, item 5, second half): memory per watcher of
ttyhub-sshd and of ttyhubd, separately.

One console (tests/fake-guest, 100-byte lines, paced at 2,000 bytes/s) served by ttyhubd and
ttyhub-sshd with their default limits.  Watchers (`vm+ro@`, aes128-gcm) are held by
`sshload read` processes (libssh client API), added in steps up to 1,000:
* idle console (the guest stopped with SIGSTOP): RSS of each daemon after every step; the
  figure per watcher is the slope between the first step and 1,000 watchers (one-time costs
  such as the first session's crypto setup are left out), and the plain average over 0 ->
  1,000 is shown too;
* then a slow trickle (the guest resumed, then stopped for good): every watcher must
  receive every line without loss, and RSS is read again;
* then every watcher leaves, and RSS is read once more (what is not given back).
Peer: OpenSSH the ovirt-vmconsole way (a private sshd, ForceCommand socat reading the
console socket), with fewer sessions: the proportional set size (PSS: shared pages divided
among their users) of every process a session adds (privileged monitor, session sshd,
socat), per session.  Its guest takes any number of clients (`sshload guest --multi`).

Target: under 256 KiB per watcher for ttyhub-sshd and for ttyhubd.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402

TITLE = "1,000 SSH watchers: memory per watcher"  # 500 with --quick
ORDER = 60
TARGET_KIB = 256
LINE = 100
RATE = 2000


def _rss(pid):
    return benchlib.rss_kib(pid)


def run(ctx):
    sec = benchlib.Section(TITLE)
    steps = [250, 250] if ctx.quick else [250, 250, 250, 250]   # quick: 500 watchers
    n_ossh = 20 if ctx.quick else 50
    settle = 1.0 if ctx.quick else 2.0
    trickle_s = 3.0 if ctx.quick else 5.0
    wd = ctx.workdir("scale")

    guest = benchlib.FakeGuest(ctx, os.path.join(wd, "g.sock"), rate=RATE,
                               line_length=LINE).start()
    hub = benchlib.Ttyhub(ctx, os.path.join(wd, "hub"), {"vm": guest.sock})
    dpid, spid = hub.daemon.pid(), hub.front.pid
    time.sleep(1.0)
    guest.pause()
    time.sleep(0.5)
    points = [(0, _rss(dpid), _rss(spid))]
    loads = []
    step_times = []
    total = 0
    try:
        for k in steps:
            cpu0 = (benchlib.cpu_of([dpid]), benchlib.cpu_of([spid]),
                    benchlib.cpu_of([ld.proc.pid for ld in loads]))
            load = benchlib.Load(ctx, ["--port", str(hub.port), "--user", "vm+ro", "--key",
                                       hub.key, "-n", str(k), "--parallel", "4"],
                                 line_length=LINE)
            loads.append(load)
            c = load.wait_connected(600)
            if c["failed"]:
                raise AssertionError("%d of %d sessions failed" % (c["failed"], k))
            step_times.append((total, total + k, c["seconds"],
                               benchlib.cpu_of([dpid]) - cpu0[0],
                               benchlib.cpu_of([spid]) - cpu0[1],
                               benchlib.cpu_of([ld.proc.pid for ld in loads[:-1]]) - cpu0[2]))
            total += k
            time.sleep(settle)
            points.append((total, _rss(dpid), _rss(spid)))
            ctx.log("sshscale: %d watchers (+%d in %.1f s): ttyhubd %d KiB, ttyhub-sshd %d KiB"
                    % (total, k, c["seconds"], points[-1][1], points[-1][2]))
        idle = points[-1]
        a = [ld.mark() for ld in loads]
        guest.resume()
        time.sleep(trickle_s)
        trickle = (total, _rss(dpid), _rss(spid))
        final = guest.stop()     # its last statistics: how many lines it wrote in all
        if not final:
            raise AssertionError("fake-guest left no statistics")
        last = final["lines_written"] - 1
        ctx.log("sshscale: trickle: ttyhubd %d KiB, ttyhub-sshd %d KiB" % trickle[1:])
        # every watcher must get every line up to the guest's last one
        t0 = time.monotonic()
        while True:
            b = [ld.mark() for ld in loads]
            behind = sum(1 for snap in b for seq in snap["last_seq"] if seq != last)
            if not behind or time.monotonic() - t0 > 30:
                break
            time.sleep(0.5)
        catch_up = time.monotonic() - t0
        wins = [benchlib.window(x, y) for x, y in zip(a, b)]
        lines = [n for w in wins for n in w["lines"]]
        lost = sum(sum(w["lost_silent"]) + sum(w["lost_announced"]) for w in wins)
        still_open = sum(y["open"] for y in b)
    finally:
        for ld in loads:
            ld.stop()
    time.sleep(settle)
    after = (0, _rss(dpid), _rss(spid))
    hub.stop()
    guest.stop()

    # the peer: OpenSSH + socat, PSS per session
    og = benchlib.EchoGuest(ctx, os.path.join(wd, "ossh.sock"), multi=True).start()
    ossh = benchlib.OpenSsh(os.path.join(wd, "openssh"), sock=og.sock)
    load = benchlib.Load(ctx, ["--port", str(ossh.port), "--user", "root", "--key", ossh.key,
                               "-n", str(n_ossh), "--parallel", "4", "--no-check"])
    try:
        c = load.wait_connected(600)
        if c["failed"]:
            raise AssertionError("OpenSSH: %d of %d sessions failed" % (c["failed"], n_ossh))
        time.sleep(settle)
        procs = ossh.session_pids()
        pss = benchlib.mem_of(procs, benchlib.pss_kib)
        rss = benchlib.mem_of(procs)
    finally:
        load.stop()
        ossh.stop()
        og.stop()
    ossh_pss = pss / n_ossh

    first = points[1]
    slope_d = (idle[1] - first[1]) / (idle[0] - first[0])
    slope_s = (idle[2] - first[2]) / (idle[0] - first[0])
    avg_d = (idle[1] - points[0][1]) / idle[0]
    avg_s = (idle[2] - points[0][2]) / idle[0]
    sec.row("RSS per watcher, ttyhub-sshd, idle console", slope_s, None, "", "KiB",
            target="< %d KiB" % TARGET_KIB, ok=slope_s < TARGET_KIB)
    sec.row("RSS per watcher, ttyhubd, idle console", slope_d, None, "", "KiB",
            target="< %d KiB" % TARGET_KIB, ok=slope_d < TARGET_KIB)
    tr_s = (trickle[2] - points[0][2]) / total
    tr_d = (trickle[1] - points[0][1]) / total
    sec.row("RSS per watcher, ttyhub-sshd, trickle (average from 0)", tr_s, None, "", "KiB",
            target="< %d KiB" % TARGET_KIB, ok=tr_s < TARGET_KIB)
    sec.row("RSS per watcher, ttyhubd, trickle (average from 0)", tr_d, None, "", "KiB",
            target="< %d KiB" % TARGET_KIB, ok=tr_d < TARGET_KIB)
    sec.row("memory per SSH watcher, both daemons (trickle)", tr_s + tr_d, ossh_pss,
            "OpenSSH+socat (PSS)", "KiB")
    sec.row("%d watchers: trickle lines lost" % total, lost, None, "", "lines",
            target="0, every watcher gets every line",
            ok=lost == 0 and still_open == total and behind == 0)
    sec.note("Idle RSS after each step (watchers: ttyhubd / ttyhub-sshd KiB): " + ", ".join(
        "%d: %d / %d" % p for p in points) + "; average per watcher from 0: ttyhubd %.0f, "
        "ttyhub-sshd %.0f KiB." % (avg_d, avg_s))
    sec.note("Trickle (%d bytes/s, %d-byte lines) for %g s, then the guest stopped: each "
             "watcher got %d to %d lines; %d watchers had not reached the guest's last line "
             "%.1f s later; %d of %d sessions open.  After all watchers left: ttyhubd %d KiB, "
             "ttyhub-sshd %d KiB (started at %d / %d)." % (
                 RATE, LINE, trickle_s, min(lines), max(lines), behind, catch_up, still_open,
                 total, after[1], after[2], points[0][1], points[0][2]))
    sec.note("Time to add each step of watchers (every attach is announced to everyone already "
             "attached), with the CPU seconds ttyhubd / ttyhub-sshd / the clients already "
             "connected used meanwhile: " + ", ".join(
                 "%d -> %d: %.1f s (%.1f / %.1f / %.1f)" % x for x in step_times) + ".")
    sec.note("OpenSSH+socat: %d sessions, %d processes added, PSS %.0f KiB and RSS %.0f KiB "
             "per session (RSS counts shared libraries once per process)."
             % (n_ossh, len(procs), ossh_pss, rss / n_ossh))
    sec.plot("sshscale.png", "Idle SSH watchers: resident memory", "watchers", "RSS (MiB)",
             {"ttyhubd": [(p[0], p[1] / 1024) for p in points],
              "ttyhub-sshd": [(p[0], p[2] / 1024) for p in points]})
    return sec
