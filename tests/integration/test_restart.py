#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""QEMU is killed and started again on the same socket path while two users
are attached: both get a notice, ttyhubd reconnects by itself (back-off at
most 2 s) and both see the new boot's output without re-attaching.  Repeated
a few times; ttyhubd's fd count must not grow.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest as G  # noqa: E402
import hub  # noqa: E402
import runner  # noqa: E402


def restart_cycle(d, g, w, r, n):
    g.kill()
    for p in (w, r):
        p.expect(r"\[ttyhub\] console rs disconnected \(.*\); reconnecting", timeout=10)
    t0 = time.monotonic()
    g.start()
    for p in (w, r):
        p.expect(r"\[ttyhub\] console rs connected", timeout=10)
    took = time.monotonic() - t0
    # Back-off is at most 2 s: a reconnect later than that plus scheduling headroom means the
    # retry timer was lost.  A clock, so the plain build only; the sanitizer pass still needs
    # the reconnect to happen at all (the expect above).
    if not hub.SANITIZED:
        assert took < 4.0, "reconnect took %.1f s after QEMU came back" % took
    # The new boot's own output reaches both without re-attaching.
    for p in (w, r):
        p.expect(r"guest up", timeout=60)
    G.sync_shell(w)
    w.send("echo BOOT%d$((40+2))\r" % n)
    for p in (w, r):
        p.expect(r"(?m)^BOOT%d42\r?$" % n, timeout=30)
    print("  cycle %d: reconnected %.2f s after QEMU restarted" % (n, took), flush=True)


def main():
    res = runner.Runner()
    wd = hub.workdir("restart")
    g = G.Guest(wd, "rs")
    d = hub.Daemon(wd, "--console", "rs=" + g.serial_sock).start()
    w = r = None
    try:
        d.wait_for(lambda: (d.console("rs") or {}).get("state") == "connected",
                   what="console connected")
        w = G.Pty(d.cli_cmd("attach", "rs"))
        w.expect(r"attached to rs read-write")
        r = G.Pty(d.cli_cmd("attach", "rs", "--ro"))
        r.expect(r"attached to rs read-only")
        G.sync_shell(w)
        fds = d.fd_count()
        for n in range(1, 4):
            res.run("restart cycle %d" % n, restart_cycle, d, g, w, r, n)
        res.run("fd count stable", lambda: runner.require(
            d.fd_count() == fds, "%d fds, was %d" % (d.fd_count(), fds)))

        def state_while_down():
            g.kill()
            c = d.wait_for(lambda: (d.console("rs") or {}).get("state") == "waiting" and
                           d.console("rs"), what="state waiting")
            assert re.search(r"nobody listens|disconnected", c["status"]), c
            g.start()
            d.wait_for(lambda: (d.console("rs") or {}).get("state") == "connected",
                       what="connected again")
        res.run("list shows waiting while QEMU is down", state_while_down)
    finally:
        for p in (w, r):
            if p:
                p.close()
        d.stop()
        g.stop()
    res.finish(wd)


if __name__ == "__main__":
    main()
