#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""ttyhub demo (run it through scripts/demo, which builds first).

Boots two guests under QEMU: demo1 with a 16550 console (ttyS0) on a UNIX
socket, demo2 with ttyS0 and a virtio console (hvc0).  Their libvirt-style
domain XML goes into a directory that ttyhubd watches.  The guests start
paused and are resumed once ttyhubd holds their consoles, so the whole boot
is in the history and replays on attach.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
os.environ.setdefault("TTYHUB_BUILD", os.path.join(TOP, "build"))
import guest as G  # noqa: E402
import hub  # noqa: E402


def check(d):
    """Every console answers a command through `ttyhub attach`."""
    for console in ("demo1", "demo2", "demo2:console1"):
        p = G.Pty(d.cli_cmd("attach", console))
        try:
            p.expect(r"attached to \S+ read-write")
            G.sync_shell(p, timeout=60)
            p.send("echo $((6*7))\r")
            p.expect(rb"(?m)^42\r?$", timeout=20)
            p.send(b"\x05c.")
            assert p.wait(10) == 0
        finally:
            p.close()
        print("demo check: %s answers" % console, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="verify every console answers, then stop")
    ap.add_argument("--dir", default=os.environ.get("TTYHUB_DEMO_DIR", "/tmp/ttyhub-demo"))
    args = ap.parse_args()

    wd = args.dir
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(os.path.join(wd, "domains"))
    guests = [G.Guest(wd, "demo1", extra_args=("-S",), start=False),
              G.Guest(wd, "demo2", virtio_console=True, extra_args=("-S",), start=False)]
    for g in guests:
        with open(os.path.join(wd, "domains", g.name + ".xml"), "w") as f:
            f.write(g.domain_xml("domain"))
    d = hub.Daemon(wd, "--domain-xml", os.path.join(wd, "domains"))
    status = 0
    try:
        d.start()
        for g in guests:
            g.start()
        d.wait_for(lambda: all(c["state"] == "connected" for c in d.list()["consoles"]),
                   timeout=20, what="ttyhubd connected to every console")
        for g in guests:
            g.qmp({"execute": "cont"})
        ttyhub = os.path.relpath(hub.TTYHUB) if not os.path.relpath(
            hub.TTYHUB).startswith("..") else hub.TTYHUB
        print(d.cli("list").stdout.decode())
        if args.check:
            check(d)
            return 0
        print("""ttyhub demo is running: two QEMU guests, ttyhubd on {sock}

Attach to a console (in as many terminals as you like; the first one writes):

  {t} --broker {sock} attach demo1              # ttyS0 of demo1
  {t} --broker {sock} attach demo2              # ttyS0 of demo2
  {t} --broker {sock} attach demo2:console1     # hvc0 of demo2 (virtio console)
  {t} --broker {sock} attach demo1 --ro         # watch read-only
  {t} --broker {sock} attach demo1 --force      # take the writer role
  {t} --broker {sock} list | who demo1

Inside a console: Ctrl-E c ? for help, Ctrl-E c . to detach, Ctrl-E c f to take over.
(Tip: export TTYHUB_BROKER={sock} and drop --broker.)
SSH access arrives with ttyhub-sshd. Logs: {wd}. Press Ctrl-C here to stop the demo.
""".format(t=ttyhub, sock=d.socket, wd=wd), flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        print("\nstopping the demo", flush=True)
    except Exception as e:  # noqa: BLE001 - say what went wrong, then clean up
        print("demo failed: %s" % e, file=sys.stderr)
        status = 1
    finally:
        d.stop()
        for g in guests:
            g.stop()
    return status


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main())
