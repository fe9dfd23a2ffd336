#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""ttyhubd against a real libvirtd (private prefix, see virt.py), without
virsh and without restarting ttyhubd: a domain with a <serial type='unix'>
and a virtio <console type='unix'> is defined and started -> its consoles
appear; a user attaches and runs a command; the domain is destroyed -> the
user is told; started again -> the console works again; libvirtd restarts
-> ttyhubd reconnects and follows events again.  Serial break: refused on a
read-only connection with a reason, delivered through the QEMU monitor with
--libvirt-qemu-monitor (the guest prints "sysrq: HELP").  Rescue actions: on the
read-only connection sysrq is refused naming --libvirt-qemu-monitor and nmi, reset
naming --libvirt-power; with both options, `ttyhub sysrq` gets the HELP, `ttyhub nmi`
makes the guest log the NMI (virDomainInjectNMI) and `ttyhub reset` resets it
(virDomainReset; the test domain's <on_reboot>destroy</on_reboot> then ends it).
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest as G  # noqa: E402
import hub  # noqa: E402
import runner  # noqa: E402
import virt  # noqa: E402


def connected(d, name):
    return (d.console(name) or {}).get("state") == "connected"


def action(d, *args):
    """ttyhub ARGS for a rescue action that must go through: actions share the console's
    break budget (3 in a row, then one a second), so a busy is retried when ttyhubd says."""
    while True:
        r = d.cli(*args)
        m = re.search(rb"too many breaks and actions, try again in (\d+) s", r.stderr)
        if r.returncode == 0 or not m:
            return r
        time.sleep(int(m.group(1)))


def shell_42(d, console):
    p = G.Pty(d.cli_cmd("attach", console))
    p.expect(r"attached to \S+ read-write \(VM running")
    G.sync_shell(p, timeout=60)
    p.send("echo $((6*7))\r")
    p.expect(rb"(?m)^42\r?$", timeout=20)
    return p


def main():
    res = runner.Runner()
    wd = hub.workdir("lv")
    serial = os.path.join(wd, "lvm-serial0.sock")
    console = os.path.join(wd, "lvm-console1.sock")
    lv = virt.Libvirtd(wd).start()
    d = hub.Daemon(wd, "--libvirt", lv.uri_ro).start()
    p = None
    try:
        def appears():
            assert d.list()["consoles"] == [], "consoles before any domain runs"
            lv.define_and_start("lvm", serial, console)
            d.wait_for(lambda: connected(d, "lvm:serial0") and connected(d, "lvm:console1"),
                       timeout=20, what="consoles of the started domain")
            names = [c["name"] for c in d.list()["consoles"]]
            assert names == ["lvm:serial0", "lvm:console1"], names  # console twin listed once
        res.run("started domain's consoles appear (no restart, no virsh)", appears)

        def attach_and_run():
            nonlocal p
            p = shell_42(d, "lvm")
            q = shell_42(d, "lvm:console1")
            q.send(b"\x05c.")
            assert q.wait(10) == 0
        res.run("attach by VM name and by alias; commands run", attach_and_run)

        def destroyed():
            lv.destroy("lvm")
            p.expect(r"console lvm:serial0 is gone: domain lvm stopped \(destroyed\)", timeout=20)
            assert p.wait(10) == 1
            d.wait_for(lambda: d.list()["consoles"] == [], what="consoles removed")
        res.run("destroyed: the attached user is told", destroyed)

        def started_again():
            nonlocal p
            lv.start_domain("lvm")
            d.wait_for(lambda: connected(d, "lvm:serial0"), timeout=20, what="back")
            p = shell_42(d, "lvm")
        res.run("started again: the console works again", started_again)

        def libvirtd_restart():
            lv.restart()
            d.wait_for(lambda: "connected to " + lv.uri_ro in d.log().split(
                "lost the connection")[-1], timeout=30, what="ttyhubd reconnected")
            assert "lost the connection to" in d.log()
            # The attached user was not disturbed, and events flow again.
            p.send("echo AFTER$((1+1))X\r")
            p.expect(rb"(?m)^AFTER2X\r?$", timeout=20)
            lv.destroy("lvm")
            p.expect(r"domain lvm stopped", timeout=20)
            p.wait(10)
            lv.start_domain("lvm")
            d.wait_for(lambda: connected(d, "lvm:serial0"), timeout=20, what="back again")
        res.run("libvirtd restarted: ttyhubd recovers", libvirtd_restart)

        def break_refused_read_only():
            r = d.cli("break", "lvm")
            assert r.returncode == 1, r
            assert b"--libvirt-qemu-monitor" in r.stderr and b"tainted" in r.stderr, r.stderr
        res.run("break on a read-only connection: refused with the reason",
                break_refused_read_only)

        def actions_refused_read_only():
            r = d.cli("sysrq", "lvm", "h")
            assert r.returncode == 1 and b"--libvirt-qemu-monitor" in r.stderr, r
            for args in (("nmi", "lvm"), ("reset", "lvm", "--yes")):
                r = d.cli(*args)
                assert r.returncode == 1, r
                assert (b"%s needs --libvirt-power (a read-write libvirt connection)"
                        % args[0].encode()) in r.stderr, r
        res.run("rescue actions on a read-only connection: refused naming the option",
                actions_refused_read_only)
    finally:
        if p:
            p.close()
        d.stop()

    # Break through the QEMU monitor needs a read-write connection and the opt-in.
    d2 = hub.Daemon(wd, "--libvirt", lv.uri, "--libvirt-qemu-monitor", "--libvirt-power",
                    name="ttyhubd-rw").start()
    try:
        def break_via_monitor():
            d2.wait_for(lambda: connected(d2, "lvm:serial0"), timeout=20, what="rw consoles")
            w = shell_42(d2, "lvm")
            try:
                w.send("echo 1 > /proc/sys/kernel/sysrq\r")
                G.sync_shell(w)
                w.send(b"\x05cb")
                w.expect(r"sent a serial break", timeout=20)
                w.send("h")
                w.expect(r"sysrq: HELP", timeout=10)
            finally:
                w.close()
        res.run("break through virDomainQemuMonitorCommand reaches the guest", break_via_monitor)

        def actions_via_libvirt():
            w = shell_42(d2, "lvm")
            try:
                r = action(d2, "sysrq", "lvm", "h")
                assert r.returncode == 0, r
                w.expect(r"sysrq: HELP", timeout=20)
                r = action(d2, "nmi", "lvm")
                assert r.returncode == 0, r
                w.expect(r"Uhhuh\. NMI received", timeout=20)
                r = action(d2, "reset", "lvm", "--yes")
                assert r.returncode == 0, r
                w.expect(r"local admin reset the guest", timeout=20)
                # The test domain has <on_reboot>destroy</on_reboot>: libvirt ends it.
                w.expect(r"domain lvm stopped", timeout=60)
            finally:
                w.close()
        res.run("sysrq, nmi and reset on a libvirt domain (--libvirt-power)",
                actions_via_libvirt)
    finally:
        d2.stop()
        lv.stop()
    res.finish(wd)


if __name__ == "__main__":
    main()
