#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A QEMU started without libvirt, given to ttyhubd only as --qmp PATH:
its UNIX-socket chardevs are found through query-chardev and served as
consoles named after -name; attach shows the VM's run state; a serial break
(Ctrl-E c b, and `ttyhub break`) reaches the guest — proven by SysRq: the
break followed by 'h' makes the Linux guest print "sysrq: HELP"; guest
reset, pause and resume appear in the console history; and after QEMU is
killed and started again, QMP and the consoles come back by themselves.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest as G  # noqa: E402
import hub  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402

BREAK = b"\x05cb"


def main():
    res = runner.Runner()
    wd = hub.workdir("qmp")
    g = G.Guest(wd, "vm", virtio_console=True)
    d = hub.Daemon(wd, "--qmp", g.qmp_sock, "--front-user", "root").start()
    w = None
    try:
        def discovered():
            names = d.wait_for(lambda: [c["name"] for c in d.list()["consoles"]] or None,
                               what="consoles from query-chardev")
            assert names == ["vm:serial0", "vm:console1"], names
            c = d.console("vm:serial0")
            assert c["path"] == g.serial_sock and c["primary"], c
            d.wait_for(lambda: all(x["state"] == "connected" for x in d.list()["consoles"]),
                       what="both connected")
        res.run("consoles discovered through query-chardev", discovered)

        w = G.Pty(d.cli_cmd("attach", "vm"))

        def attach_status():
            w.expect(r"attached to vm:serial0 read-write \(VM running, 1 attached\)")
            G.sync_shell(w)
            w.send("echo $((6*7))\r")
            w.expect(rb"(?m)^42\r?$", timeout=20)
        res.run("attach shows the run state; the console answers", attach_status)

        def break_escape():
            w.send("echo 1 > /proc/sys/kernel/sysrq\r")
            G.sync_shell(w)
            w.send(BREAK)
            w.expect(r"sent a serial break", timeout=10)
            w.send("h")
            w.expect(r"sysrq: HELP", timeout=10)
        res.run("Ctrl-E c b: the break reaches the guest (SysRq help)", break_escape)

        def break_cli():
            G.sync_shell(w)
            r = d.cli("break", "vm")
            assert r.returncode == 0 and b"break sent to vm" in r.stdout, r
            w.send("h")
            w.expect(r"sysrq: HELP", timeout=10)
        res.run("ttyhub break NAME reaches the guest", break_cli)

        def virtio_port_state():
            c = d.console("vm:console1")
            assert c.get("guest_open") is True, c  # the guest runs a shell on hvc0
        res.run("frontend-open of the virtio console is reported", virtio_port_state)

        def events_in_history():
            g.qmp({"execute": "stop"})
            w.expect(r"\[ttyhub\] guest paused", timeout=10)
            assert d.wait_for(lambda: d.console("vm:serial0").get("vm_state") == "paused",
                              what="paused state")
            g.qmp({"execute": "cont"})
            w.expect(r"\[ttyhub\] guest resumed", timeout=10)
            # The harness runs QEMU with -no-reboot: a reset is reported as a shutdown
            # (and QEMU exits, which the next check recovers from).
            g.qmp({"execute": "system_reset"})
            w.expect(r"\[ttyhub\] guest (reset|shut down) \(host-qmp-system-reset\)",
                     timeout=10)
        res.run("pause, resume and reset appear in the history", events_in_history)

        def qemu_restart():
            g.kill()  # if the reset above has not ended it already
            w.expect(r"disconnected", timeout=10)
            g.start()
            w.expect(r"console vm:serial0 connected", timeout=10)
            w.expect(r"guest up", timeout=60)
            d.wait_for(lambda: d.console("vm:serial0").get("vm_state") == "running",
                       timeout=10, what="QMP back")
            G.sync_shell(w)
            r = d.cli("break", "vm")
            assert r.returncode == 0, r
        res.run("QEMU restarted: consoles and QMP come back", qemu_restart)

        def break_needs_the_key_right():
            # Over SSH, a serial break needs the key's `break` option.
            nokey, nopub = sshhub.make_key(wd, "nobreak")
            bkey, bpub = sshhub.make_key(wd, "breaker")
            front = sshhub.SshFront(wd, d.socket, ['consoles="vm*:rw" ' + nopub,
                                                   'consoles="vm*:rw",break ' + bpub])
            try:
                w.send(b"\x05c.")  # leave the console to the SSH users
                assert w.wait(10) == 0
                p = G.Pty(sshhub.ssh_cmd(front, nokey, "vm"))
                p.expect(r"attached to vm:serial0 read-write")
                G.sync_shell(p)
                p.send(b"\x05cb")
                p.expect(r"your key may not send a serial break")
                p.send("h")
                p.expect_absent(r"sysrq", duration=2)
                p.send(b"\x05c.")
                p.wait(10)
                q = G.Pty(sshhub.ssh_cmd(front, bkey, "vm"))
                q.expect(r"attached to vm:serial0 read-write")
                G.sync_shell(q)
                q.send(b"\x05cb")
                q.expect(r"sent a serial break")
                q.send("h")
                q.expect(r"sysrq: HELP", timeout=10)
                q.send(b"\x05c.")
                q.wait(10)
            finally:
                front.stop()
        res.run("over SSH, break needs the key's break option", break_needs_the_key_right)
    finally:
        if w:
            w.close()
        d.stop()
        g.stop()
    res.finish(wd)


if __name__ == "__main__":
    main()
