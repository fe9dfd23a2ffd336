#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Two `ttyhub attach` sessions, each on its own pty, share one console of a
real QEMU guest: the writer's command runs and both see its output; the
read-only session's keystrokes never reach the guest; Ctrl-E c f moves the
writer role with notices on both sides.  Done on the 16550 (ttyS0, named by
the VM name) and on the virtio console (hvc0, named VM:console1).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest as G  # noqa: E402
import hub  # noqa: E402
import runner  # noqa: E402

FORCE = b"\x05cf"
DETACH = b"\x05c."


def answer(n):
    """Output line of `echo TAG$((...))X`, never its echo."""
    return rb"(?m)^" + n + rb"\r*$"  # CRs: a notice between CR and LF starts a new line


def share(d, console):
    w = G.Pty(d.cli_cmd("attach", console))
    w.expect(r"\[ttyhub\] attached to \S+ read-write")
    G.sync_shell(w)

    r = G.Pty(d.cli_cmd("attach", console, "--ro"))
    r.expect(r"\[ttyhub\] attached to \S+ read-only \(2 attached\); "
             r"local admin writes")
    w.expect(r"\[ttyhub\] local admin attached read-only")

    # The writer's command runs; both see the answer.
    w.send("echo $((6*7))\r")
    w.expect(answer(b"42"), timeout=20)
    r.expect(answer(b"42"), timeout=20)

    # The read-only user types: it is told, and nothing reaches the guest.
    r.send("echo RO$((1+1))X\r")
    r.expect(r"read-only: your input is discarded")
    w.send("echo W$((2+2))X\r")
    w.expect(answer(b"W4X"), timeout=20)
    r.expect(answer(b"W4X"), timeout=20)
    assert b"RO2X" not in w.transcript and b"RO2X" not in r.transcript, \
        "read-only input reached the guest"
    assert b"echo RO" not in w.transcript, "read-only keystrokes were echoed by the guest"

    # Force: the watcher takes the writer role; both are told.
    r.send(FORCE)
    r.expect(r"\[ttyhub\] local admin took write access from local admin")
    w.expect(r"\[ttyhub\] local admin took write access from local admin")
    r.send("echo F$((3+3))X\r")
    r.expect(answer(b"F6X"), timeout=20)
    w.expect(answer(b"F6X"), timeout=20)
    # The previous writer is now read-only.
    w.send("echo OLD$((4+4))X\r")
    w.expect(r"read-only: your input is discarded")
    r.send("echo Z$((5+5))X\r")
    r.expect(answer(b"Z10X"), timeout=20)
    w.expect(answer(b"Z10X"), timeout=20)
    assert b"OLD8X" not in r.transcript and b"OLD8X" not in w.transcript

    # Who, from the escape menu: one writer, one watcher.
    w.send(b"\x05cw")
    w.expect(r"ROLE +USER")
    roles = sorted(w.expect(rb"(writer|watcher) +local admin").group(1) for _ in range(2))
    assert roles == [b"watcher", b"writer"], roles

    # Detach with the escape; the other side hears about it, and nobody writes now.
    r.send(DETACH)
    r.expect(r"\[ttyhub\] detached: detached on request")
    assert r.wait(10) == 0
    w.expect(r"\(the writer\) detached; nobody writes now")
    w.send(DETACH)
    assert w.wait(10) == 0


def main():
    res = runner.Runner()
    wd = hub.workdir("share")
    g = G.Guest(wd, "vm", virtio_console=True)
    xmldir = os.path.join(wd, "xml")
    os.mkdir(xmldir)
    with open(os.path.join(xmldir, "vm.xml"), "w") as f:
        f.write(g.domain_xml("domain"))
    d = hub.Daemon(wd, "--domain-xml", xmldir).start()
    try:
        d.wait_for(lambda: (d.console("vm:serial0") or {}).get("state") == "connected",
                   what="serial0 connected")
        names = [c["name"] for c in d.list()["consoles"]]
        res.run("consoles from domain XML", lambda: runner.require(
            names == ["vm:serial0", "vm:console1"], names))
        res.run("share ttyS0 (by VM name)", share, d, "vm")
        res.run("share hvc0 (VM:ALIAS)", share, d, "vm:console1")
        res.run("daemon still running", lambda: runner.require(d.alive(), d.log()))
    finally:
        d.stop()
        g.stop()
    res.finish(wd)


if __name__ == "__main__":
    main()
