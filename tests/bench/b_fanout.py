# SPDX-License-Identifier: MIT
"""Fan-out (issue 7, item 2): N = 1, 10, 100, 500 readers of one console.

ttyhub: tests/fake-guest (1,024-byte numbered lines) -> ttyhubd -> ttyhub-sshd, read by N SSH
sessions (`fg+ro@`, aes128-gcm) that one `sshload read` process holds (libssh client API,
non-blocking, one epoll loop): 500 `ssh` processes on 2 cores would measure the clients
more than the server.  conserver: the same guest on a `uds` console of a private conserver
(Debian conserver-server), read by N `console -s` spies (conserver's own client, plain TCP),
whose stdout pipes go to one `sshload read --fd` process.  Both kinds of reader count the
bytes and check the line numbers.  The guest is stopped (SIGSTOP) while the readers attach.

For each N, two windows per system with the same readers:
* paced guest at RATE[N] bytes/s (8 MB/s for one reader, 50 MB/s in all from 10 readers on):
  readers that keep up must get every line; any line missing (announced or not), a reader
  with less than 90% of the guest's lines in the window or more than LAG_S seconds behind
  the guest at its end fails the target;
* then an unpaced guest: aggregate delivered MB/s, slowest and median reader, CPU of each
  daemon (CPU seconds per second over the window; conserver: all its processes).
The unpaced guest replaces the paced one on the same socket; ttyhubd and conserver reconnect
by themselves and the readers stay attached.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402
import watchkit  # noqa: E402

TITLE = "Fan-out: N readers of one console"
ORDER = 20
LINE = 1024
# Paced guest rate (bytes/s per console, so per reader): 8 MB/s for one reader, then
# 50 MB/s in all (about 4,300 times a 115200-baud serial line at 500 readers).
RATE = {1: 8_000_000, 10: 5_000_000, 100: 500_000, 500: 100_000}
LAG_S = 3.0   # a reader more than this far behind the paced guest does not keep up


def _window(load, pids, warm, dur, guest):
    """Measure one window: per-stream deltas plus CPU per process group (cores), the guest's
    output and each reader's lag behind the guest (lines) at the end."""
    time.sleep(warm)
    ga = guest.stats()
    a = load.mark()
    ca = {k: benchlib.cpu_of(v) for k, v in pids.items()}
    time.sleep(dur)
    b = load.mark()
    gb = guest.stats()
    cb = {k: benchlib.cpu_of(v) for k, v in pids.items()}
    w = benchlib.window(a, b)
    w["guest_lines"] = gb["lines_written"] - ga["lines_written"]
    w["guest_mbps"] = (gb["bytes_written"] - ga["bytes_written"]) / (
        gb["elapsed_s"] - ga["elapsed_s"]) / 1e6
    w["lag_lines"] = max(gb["lines_written"] - 1 - x for x in b["last_seq"])
    w["cpu_of"] = {k: (cb[k] - ca[k]) / w["seconds"] for k in pids}
    w["client_cpu"] = w["cpu"] / w["seconds"]
    w["open"] = b["open"]
    w["errors"] = b["errors"]
    return w


def _summary(w, n):
    mbps = [x / w["seconds"] / 1e6 for x in w["bytes"]]
    return dict(agg=sum(mbps), min=min(mbps), med=benchlib.median(mbps), cpu=w["cpu_of"],
                client=w["client_cpu"], lost_silent=sum(w["lost_silent"]),
                lost_announced=sum(w["lost_announced"]), bad=sum(w["bad"]),
                lines_min=min(w["lines"]), open=w["open"], n=n, errors=w["errors"],
                guest=w["guest_mbps"], guest_lines=w["guest_lines"], lag_lines=w["lag_lines"])


def _swap_guest(ctx, guest, rate):
    """Replace GUEST by a new fake-guest on the same socket (paced at RATE)."""
    guest.stop()
    return benchlib.FakeGuest(ctx, guest.sock, rate=rate, line_length=LINE).start()


def _wait_flow(load, n, timeout=20):
    """Until every stream has received something new."""
    a = load.mark()
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(0.3)
        b = load.mark()
        if all(y > x for x, y in zip(a["bytes"], b["bytes"])):
            return
        if time.monotonic() > deadline:
            stuck = sum(1 for x, y in zip(a["bytes"], b["bytes"]) if y <= x)
            raise AssertionError("%d of %d readers get nothing (errors: %s)"
                                 % (stuck, n, b["errors"]))


def _slack(rate):
    """Lines a reader that keeps up may be behind the paced guest: LAG_S seconds' worth."""
    return max(64, rate * LAG_S / LINE)


def _wait_caught_up(load, guest, rate, n, timeout=20):
    """Until every reader is less than _slack() lines behind the paced guest; returns the
    number of readers still further behind after TIMEOUT seconds (0: all caught up)."""
    slack = _slack(rate)
    deadline = time.monotonic() + timeout
    while True:
        lines = guest.stats()["lines_written"]
        snap = load.mark()
        late = sum(1 for s in snap["last_seq"] if not 0 <= lines - 1 - s <= slack)
        if not late or time.monotonic() > deadline:
            return late
        time.sleep(0.3)


def _rss(pids):
    total = 0
    for p in pids:
        try:
            total += benchlib.rss_kib(p)
        except OSError:
            pass
    return total


def _run_ttyhub(ctx, wd, n, warm, dur, rate):
    guest = benchlib.FakeGuest(ctx, os.path.join(wd, "g.sock"), rate=rate,
                               line_length=LINE).start()
    hub = benchlib.Ttyhub(ctx, os.path.join(wd, "hub"), {"fg": guest.sock})
    pids = {k: [v] for k, v in hub.pids().items()}
    load = None
    try:
        load = benchlib.Load(ctx, ["--port", str(hub.port), "--user", "fg+ro", "--key", hub.key,
                                   "-n", str(n), "--parallel", "4"], line_length=LINE)
        c = load.wait_connected(600)
        if c["failed"]:
            raise AssertionError("ttyhub: %d of %d sessions failed" % (c["failed"], n))
        ctx.log("fan-out ttyhub N=%d: %d sessions in %.1f s" % (n, c["ok"], c["seconds"]))
        late = _wait_caught_up(load, guest, rate, n, 10 if ctx.quick else 20)
        if late:
            ctx.log("  %d of %d ttyhub readers are more than %g s behind the paced guest"
                    % (late, n, LAG_S))
        paced = _summary(_window(load, pids, warm, dur, guest), n)
        paced["rate"] = rate
        guest = _swap_guest(ctx, guest, 0)
        _wait_flow(load, n)
        full = _summary(_window(load, pids, warm, dur, guest), n)
        full["rss"] = _rss(sum(pids.values(), []))
    finally:
        if load:
            load.stop()
        hub.stop()
        guest.stop()
    return full, paced


def _run_conserver(ctx, wd, n, warm, dur, rate):
    guest = benchlib.FakeGuest(ctx, os.path.join(wd, "c.sock"), rate=rate,
                               line_length=LINE).start()
    cons = watchkit.Conserver(wd, [("fg", guest.sock)], benchlib.free_port()).start()
    spies, fds = [], []
    load = None
    log = open(os.path.join(wd, "spies.log"), "ab")
    try:
        t0 = time.monotonic()
        for _ in range(n):
            r, w = os.pipe()
            spies.append(benchlib.spawn(cons.spy_cmd("fg"), stdout=w, stderr=log))
            os.close(w)
            fds.append(r)
        args = []
        for r in fds:
            args += ["--fd", str(r)]
        load = benchlib.Load(ctx, args, pass_fds=fds, line_length=LINE)
        for r in fds:
            os.close(r)
        load.wait_connected(60)
        ctx.log("fan-out conserver N=%d: %d spies started in %.1f s"
                % (n, n, time.monotonic() - t0))
        late = _wait_caught_up(load, guest, rate, n, 10 if ctx.quick else 20)
        if late:
            ctx.log("  %d of %d conserver readers are more than %g s behind the paced guest"
                    % (late, n, LAG_S))
        paced = _summary(_window(load, {"conserver": cons.pids()}, warm, dur, guest), n)
        paced["rate"] = rate
        guest = _swap_guest(ctx, guest, 0)
        cons.bring_up()
        _wait_flow(load, n, timeout=60)
        pids = {"conserver": cons.pids()}
        full = _summary(_window(load, pids, warm, dur, guest), n)
        full["rss"] = _rss(cons.pids())
    finally:
        if load:
            load.stop()
        for p in spies:
            benchlib.kill(p, timeout=2)
        cons.stop()
        guest.stop()
        log.close()
    return full, paced


def run(ctx):
    sec = benchlib.Section(TITLE)
    ns = [1, 10, 100, 500]
    warm, dur = (0.5, 1.0) if ctx.quick else (1.0, 3.0)
    hub, cons = {}, {}

    for n in ns:
        hub[n] = _run_ttyhub(ctx, ctx.workdir("fan-hub%d" % n), n, warm, dur, RATE[n])
        f, p = hub[n]
        ctx.log("  ttyhub N=%d: %.0f MB/s aggregate, reader min %.2f / median %.2f MB/s, "
                "CPU %s; paced at %.2f MB/s: %d lost (%d silent), slowest got %d lines"
                % (n, f["agg"], f["min"], f["med"], f["cpu"], p["rate"] / 1e6,
                   p["lost_silent"] + p["lost_announced"], p["lost_silent"], p["lines_min"]))
        cons[n] = _run_conserver(ctx, ctx.workdir("fan-cons%d" % n), n, warm, dur, RATE[n])
        f, p = cons[n]
        ctx.log("  conserver N=%d: %.0f MB/s aggregate, reader min %.2f / median %.2f MB/s, "
                "CPU %s; paced: %d lost" % (n, f["agg"], f["min"], f["med"], f["cpu"],
                                            p["lost_silent"] + p["lost_announced"]))

    for n in ns:
        hf, hp = hub[n]
        cf, cp = cons[n]
        sec.row("aggregate, %d reader%s" % (n, "s" if n > 1 else ""), hf["agg"], cf["agg"],
                "conserver", "MB/s")
        sec.row("slowest reader, N=%d" % n, hf["min"], cf["min"], "conserver", "MB/s")
        sec.row("median reader, N=%d" % n, hf["med"], cf["med"], "conserver", "MB/s")
        hcpu = hf["cpu"]["ttyhubd"] + hf["cpu"]["ttyhub-sshd"]
        sec.row("server CPU, N=%d (ttyhubd %.2f + ttyhub-sshd %.2f)"
                % (n, hf["cpu"]["ttyhubd"], hf["cpu"]["ttyhub-sshd"]), hcpu,
                cf["cpu"]["conserver"], "conserver", "cores")
        lost = hp["lost_silent"] + hp["lost_announced"]
        keep_up = (hp["lines_min"] >= 0.9 * hp["guest_lines"] and
                   hp["lag_lines"] <= _slack(hp["rate"]))
        sec.row("lines lost at %.2f MB/s per reader, N=%d" % (hp["rate"] / 1e6, n), lost,
                cp["lost_silent"] + cp["lost_announced"], "conserver", "lines",
                target="0, every reader keeps up", ok=lost == 0 and keep_up and hp["open"] == n)
        sec.row("slowest reader's lag behind the paced guest, N=%d" % n,
                hp["lag_lines"] * LINE / hp["rate"], cp["lag_lines"] * LINE / cp["rate"],
                "conserver", "s")
        if not keep_up or hp["open"] != n:
            sec.note("N=%d paced: the slowest reader got %d of the guest's %d lines and ends "
                     "%d lines behind; %d of %d sessions open (%s)" % (
                         n, hp["lines_min"], hp["guest_lines"], hp["lag_lines"], hp["open"], n,
                         "; ".join(hp["errors"])))
    behind = [n for n in ns if hub[n][0]["agg"] < cons[n][0]["agg"]]
    if behind:
        sec.note("ttyhub delivers less than conserver (unpaced) at N=%s (%s) with %s the CPU; "
                 "conserver's spies read plain TCP (no encryption, no SSH framing)." % (
                     ", ".join(str(n) for n in behind),
                     ", ".join("%.2f×" % (hub[n][0]["agg"] / cons[n][0]["agg"]) for n in behind),
                     ", ".join("%.1f×" % (
                         (hub[n][0]["cpu"]["ttyhubd"] + hub[n][0]["cpu"]["ttyhub-sshd"]) /
                         max(cons[n][0]["cpu"]["conserver"], 1e-9)) for n in behind)))
    slow = [n for n in ns if hub[n][1]["lag_lines"] > _slack(RATE[n])]
    if slow:
        sec.note("ttyhub readers do not keep up with the paced guest at N=%s: the slowest ends "
                 "%s s behind (conserver: %s s)." % (
                     ", ".join(str(n) for n in slow),
                     ", ".join("%.1f" % (hub[n][1]["lag_lines"] * LINE / RATE[n]) for n in slow),
                     ", ".join("%.2f" % (cons[n][1]["lag_lines"] * LINE / RATE[n])
                               for n in slow)))
    silent = sum(hub[n][0]["lost_silent"] + hub[n][1]["lost_silent"] for n in ns)
    sec.row("lines lost without a notice, all ttyhub runs", silent, None, "", "lines",
            target="0", ok=silent == 0)

    sec.note("Unpaced: the guest writes as fast as the consumer (ttyhubd, conserver) takes it; "
             "window %g s after %g s of warm-up.  ttyhub readers that fall behind the 1 MiB "
             "ring skip ahead with a `[ttyhub] N bytes dropped` notice (by design); conserver "
             "readers instead slow everyone down (see the CPU and the guest stall section)."
             % (dur, warm))
    sec.note("Readers: ttyhub — one `sshload` process (libssh client API, aes128-gcm, "
             "`--parallel 4` connects, ttyhub-sshd's default limits); conserver — N `console "
             "-s` processes, their stdout piped into one `sshload read --fd`.  The clients run "
             "on the same 2 cores: the sshload process decrypting ttyhub's streams used %s "
             "cores at N=1/10/100/500 (unpaced)." % (
                 "/".join("%.2f" % hub[n][0]["client"] for n in ns)))
    sec.note("Guest output while unpaced (what the consumer let it write): ttyhub %s MB/s, "
             "conserver %s MB/s at N=%s.  Server RSS at the end of the unpaced window: ttyhub "
             "(ttyhubd + ttyhub-sshd) %s MiB, conserver (all processes) %s MiB." % (
                 "/".join("%.0f" % hub[n][0]["guest"] for n in ns),
                 "/".join("%.0f" % cons[n][0]["guest"] for n in ns),
                 "/".join(str(n) for n in ns),
                 "/".join("%.1f" % (hub[n][0]["rss"] / 1024) for n in ns),
                 "/".join("%.1f" % (cons[n][0]["rss"] / 1024) for n in ns)))
    sec.plot("fanout_aggregate.png", "Fan-out, unpaced guest: aggregate delivered",
             "readers", "MB/s", {"ttyhub (SSH, aes128-gcm)": [(n, hub[n][0]["agg"]) for n in ns],
                                  "conserver (plain TCP)": [(n, cons[n][0]["agg"]) for n in ns]},
             logx=True)
    sec.plot("fanout_reader.png", "Fan-out, unpaced guest: per reader", "readers", "MB/s",
             {"ttyhub slowest": [(n, hub[n][0]["min"]) for n in ns],
              "ttyhub median": [(n, hub[n][0]["med"]) for n in ns],
              "conserver slowest": [(n, cons[n][0]["min"]) for n in ns],
              "conserver median": [(n, cons[n][0]["med"]) for n in ns]}, logx=True, logy=True)
    sec.plot("fanout_cpu.png", "Fan-out, unpaced guest: CPU", "readers", "cores busy",
             {"ttyhubd": [(n, hub[n][0]["cpu"]["ttyhubd"]) for n in ns],
              "ttyhub-sshd": [(n, hub[n][0]["cpu"]["ttyhub-sshd"]) for n in ns],
              "conserver": [(n, cons[n][0]["cpu"]["conserver"]) for n in ns],
              "sshload (ttyhub's readers)": [(n, hub[n][0]["client"]) for n in ns]}, logx=True)
    return sec
