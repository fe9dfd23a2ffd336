# SPDX-License-Identifier: MIT
"""Single reader throughput over SSH (issue 7, item 1).

One reader of one console whose synthetic guest (tests/fake-guest, unpaced, 1,024-byte
numbered lines) writes as fast as its socket takes it, three ways:
* ttyhub: fake-guest -> ttyhubd -> ttyhub-sshd -> `ssh -T -c aes128-gcm@openssh.com fg+ro@`;
* the ovirt-vmconsole way: a private OpenSSH sshd whose ForceCommand is
  `socat -b 65536 -u UNIX-CONNECT:SOCK -`, read with the same ssh client and cipher;
* the ceiling: `socat -u UNIX-CONNECT:SOCK -` reading the guest socket directly.
Also, for the profile, ttyhub's local CLI (`ttyhub attach --ro`, no SSH).

Each reader's stdout is a pipe read by `sshload read --fd`, which counts the bytes and checks
the line numbers; the figure is the bytes delivered during a fixed window (after a warm-up),
median of the repetitions, which interleave the paths.  The guest ttyhubd holds is stopped
(SIGSTOP) while a peer is measured, so only one path runs at a time.  CPU is the CPU time of
the serving processes over the window (ttyhubd + ttyhub-sshd; sshd's session processes +
socat) per GB delivered.

The unpaced guest is not like for like: ttyhubd drains it at full speed (a broker must never
block its guest), while socat under sshd reads only as fast as ssh sends, which throttles
that guest.  So ttyhub also reads a second console whose guest is paced at the rate
OpenSSH+socat delivered: does it deliver all of it, and at what CPU per GB?

Targets: ttyhub >= OpenSSH+socat, and within 2x of the direct socket.
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402

TITLE = "Single reader throughput over SSH"
ORDER = 10
LINE = 1024


def _measure(ctx, argv, server_pids, warm, dur, log):
    """Run ARGV (a reader writing the console to stdout) into sshload; returns a dict."""
    r, w = os.pipe()
    # stdin: a pipe kept open (end of input would detach the CLI)
    reader = benchlib.spawn(argv, stdin=subprocess.PIPE, stdout=w, stderr=log)
    os.close(w)
    load = benchlib.Load(ctx, ["--fd", str(r)], pass_fds=[r], line_length=LINE)
    os.close(r)
    try:
        load.wait_connected(10)
        deadline = time.monotonic() + 10
        while load.mark()["bytes_total"] == 0:
            if time.monotonic() > deadline or reader.poll() is not None:
                raise AssertionError("%s delivered nothing" % argv[0])
            time.sleep(0.05)
        time.sleep(warm)
        pids = server_pids()
        a, ca, cc = load.mark(), benchlib.cpu_of(pids), benchlib.cpu_of([reader.pid])
        time.sleep(dur)
        b, cb, cd = load.mark(), benchlib.cpu_of(pids), benchlib.cpu_of([reader.pid])
    finally:
        load.stop()
        benchlib.kill(reader)
        reader.stdin.close()
    win = benchlib.window(a, b)
    got = sum(win["bytes"])
    return dict(mbps=got / win["seconds"] / 1e6, bytes=got, seconds=win["seconds"],
                server_cpu=(cb - ca) / win["seconds"], client_cpu=(cd - cc) / win["seconds"],
                cpu_per_gb=(cb - ca) / (got / 1e9) if got else None,
                lost_silent=sum(win["lost_silent"]), lost_announced=sum(win["lost_announced"]),
                lines=sum(win["lines"]))


def run(ctx):
    sec = benchlib.Section(TITLE)
    reps = 1 if ctx.quick else 3
    warm, dur = (0.5, 2.0) if ctx.quick else (1.0, 4.0)
    wd = ctx.workdir("tput")
    log = open(os.path.join(wd, "readers.log"), "ab")

    g_hub = benchlib.FakeGuest(ctx, os.path.join(wd, "hub.sock"), line_length=LINE).start()
    # "fp": the same guest paced at OpenSSH+socat's measured rate, started after those runs
    # (ttyhubd connects when the socket appears).
    paced_sock = os.path.join(wd, "paced.sock")
    hub = benchlib.Ttyhub(ctx, os.path.join(wd, "hub"), {"fg": g_hub.sock, "fp": paced_sock})
    g_peer = benchlib.FakeGuest(ctx, os.path.join(wd, "peer.sock"), line_length=LINE).start()
    ossh = benchlib.OpenSsh(os.path.join(wd, "openssh"), sock=g_peer.sock)
    hub_pids = list(hub.pids().values())

    paths = {
        "direct socat": (["socat", "-b", "65536", "-u", "UNIX-CONNECT:" + g_peer.sock, "-"],
                         lambda: []),
        "OpenSSH+socat": (benchlib.ssh_argv(ossh.port, ossh.key, "root"),
                          ossh.session_pids),
        "ttyhub": (benchlib.ssh_argv(hub.port, hub.key, "fg+ro"), lambda: hub_pids),
        "ttyhub CLI": ([benchlib.exe(ctx, "cli", "ttyhub"), "--broker", hub.daemon.socket,
                        "attach", "fg", "--ro"], lambda: [hub.daemon.pid()]),
    }
    res = {name: [] for name in paths}
    try:
        for rep in range(reps):
            for name, (argv, pids) in paths.items():
                on_hub = name.startswith("ttyhub")
                (g_hub.resume if on_hub else g_hub.pause)()
                ctx.log("throughput: %s, run %d/%d" % (name, rep + 1, reps))
                m = _measure(ctx, argv, pids, warm, dur, log)
                ctx.log("  %.0f MB/s, server CPU %.2f, client CPU %.2f, lost %d silent / %d "
                        "announced lines" % (m["mbps"], m["server_cpu"], m["client_cpu"],
                                             m["lost_silent"], m["lost_announced"]))
                res[name].append(m)
    finally:
        g_hub.resume()

    def med(name, key):
        vals = [m[key] for m in res[name] if m[key] is not None]
        return benchlib.median(vals) if vals else None

    # Like for like: the guest paced at what OpenSSH+socat delivered, so that neither path's
    # guest runs ahead of its reader; does ttyhub deliver all of it?
    paced_rate = med("OpenSSH+socat", "mbps")
    paced = []
    g_paced = None
    if paced_rate:
        g_hub.pause()
        g_paced = benchlib.FakeGuest(ctx, paced_sock, rate=paced_rate * 1e6,
                                     line_length=LINE).start()
        try:
            for rep in range(reps):
                ctx.log("throughput: ttyhub, guest paced at %.0f MB/s, run %d/%d"
                        % (paced_rate, rep + 1, reps))
                m = _measure(ctx, benchlib.ssh_argv(hub.port, hub.key, "fp+ro"),
                             lambda: hub_pids, warm, dur, log)
                ctx.log("  %.0f MB/s, server CPU %.2f, lost %d silent / %d announced lines"
                        % (m["mbps"], m["server_cpu"], m["lost_silent"], m["lost_announced"]))
                paced.append(m)
        finally:
            g_hub.resume()
    log.close()

    hub_mbps, ossh_mbps = med("ttyhub", "mbps"), med("OpenSSH+socat", "mbps")
    direct_mbps, cli_mbps = med("direct socat", "mbps"), med("ttyhub CLI", "mbps")
    r = sec.row("1 reader over SSH (aes128-gcm)", hub_mbps, ossh_mbps, "OpenSSH+socat", "MB/s",
                target=">= 1.0× OpenSSH+socat")
    sec.rows[-1]["ok"] = r is not None and r >= 1.0
    r = sec.row("1 reader over SSH vs the direct socket", hub_mbps, direct_mbps, "direct socat",
                "MB/s", target=">= 0.5× direct (within 2×)")
    sec.rows[-1]["ok"] = r is not None and r >= 0.5
    if paced:
        p_mbps = benchlib.median([m["mbps"] for m in paced])
        p_lost = sum(m["lost_announced"] + m["lost_silent"] for m in paced)
        sec.row("1 reader over SSH, guest paced at OpenSSH+socat's %.0f MB/s" % paced_rate,
                p_mbps, paced_rate, "OpenSSH+socat", "MB/s")
        sec.row("lines lost at that pace (ttyhub reader, all runs)", p_lost, None, "", "lines")
        sec.row("server CPU per GB at that pace (lower is better)",
                benchlib.median([m["cpu_per_gb"] for m in paced if m["cpu_per_gb"]]),
                med("OpenSSH+socat", "cpu_per_gb"), "OpenSSH+socat", "CPU s/GB")
        sec.note("Paced runs: a second console whose guest is paced (token bucket, 10 ms burst) "
                 "at the median rate OpenSSH+socat delivered; the unpaced guest is stopped "
                 "meanwhile.  Every run: %s MB/s, %d lines lost."
                 % ("/".join("%.0f" % m["mbps"] for m in paced), p_lost))
    sec.row("1 local reader, ttyhub CLI (no SSH)", cli_mbps, direct_mbps, "direct socat", "MB/s")
    sec.row("server CPU per GB delivered over SSH (lower is better)", med("ttyhub", "cpu_per_gb"),
            med("OpenSSH+socat", "cpu_per_gb"), "OpenSSH+socat", "CPU s/GB")
    silent = sum(m["lost_silent"] for n in ("ttyhub", "ttyhub CLI") for m in res[n])
    sec.row("lines lost without a notice (ttyhub readers)", silent, None, "", "lines",
            target="0", ok=silent == 0)

    sec.note("Guest: tests/fake-guest unpaced, %d-byte numbered lines; window %g s after a %g s "
             "warm-up, median of %d runs (paths interleaved)." % (LINE, dur, warm, reps))
    sec.note("Both SSH paths: OpenSSH's `ssh` client, `-c %s`, ed25519 keys, no tty; the "
             "console goes to a pipe read by sshload, which checks the line numbers."
             % benchlib.CIPHER)
    sec.note("The guest writes faster than any reader takes it, so ttyhub's reader falls behind "
             "its ring and is told what it lost (`[ttyhub] N bytes dropped`), by design; "
             "lines lost silently (without that notice) would be a bug.")
    cells = []
    for name in paths:
        cells.append("%s %s MB/s (server CPU %s, client CPU %s)" % (
            name, "/".join("%.0f" % m["mbps"] for m in res[name]),
            "%.2f" % med(name, "server_cpu"), "%.2f" % med(name, "client_cpu")))
    sec.note("Every run: " + "; ".join(cells) + ".  CPU figures are cores busy (CPU s per s).")
    if direct_mbps and ossh_mbps and cli_mbps:
        sec.note("For scale: OpenSSH+socat reaches %.2f× the direct socket, ttyhub's broker "
                 "alone (local CLI, no SSH) %.2f×; over SSH the encryption and the SSH "
                 "framing, not the broker, set the pace." % (ossh_mbps / direct_mbps,
                                                              cli_mbps / direct_mbps))
    if hub_mbps is not None and ossh_mbps and hub_mbps < ossh_mbps:
        sec.note("ttyhub is slower than OpenSSH+socat here (%.0f vs %.0f MB/s) and uses more "
                 "server CPU per GB." % (hub_mbps, ossh_mbps))
    sec.plot("throughput.png", "One reader, unpaced guest", "path", "MB/s delivered",
             {"MB/s": [(name, med(name, "mbps")) for name in paths]}, kind="bar")
    hub.stop()
    ossh.stop()
    g_hub.stop()
    g_peer.stop()
    if g_paced:
        g_paced.stop()
    return sec
