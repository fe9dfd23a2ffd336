#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A console on a pty chardev (<serial type='pty'>, as libvirt sets up by
default): ttyhubd opens the pty, takes libvirt's UUCP lock file
(LCK.._pts_N holding its pid) so `virsh console` knows the device is busy,
serves it like any other console, refuses a pty whose lock is held by
another live process, and picks it up once that lock goes away.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import domains  # noqa: E402
import guest as G  # noqa: E402
import hub  # noqa: E402
import runner  # noqa: E402


def main():
    res = runner.Runner()
    wd = hub.workdir("pty")
    g = G.Guest(wd, "ptyvm", serial=False,
                extra_args=("-chardev", "pty,id=charserial0", "-serial", "chardev:charserial0"))
    d = None
    try:
        m = None
        deadline = time.monotonic() + 10
        while not m and time.monotonic() < deadline:
            with open(g.log_path) as f:
                m = re.search(r"char device redirected to (/dev/pts/\d+)", f.read())
            time.sleep(0.05)
        assert m, g.log_tail()
        pty = m.group(1)
        lock = os.path.join(wd, "LCK.." + pty[len("/dev"):].replace("/", "_"))
        xmldir = os.path.join(wd, "xml")
        os.mkdir(xmldir)
        with open(os.path.join(xmldir, "ptyvm.xml"), "w") as f:
            f.write(domains.domain_xml("ptyvm", [
                domains.serial(pty, type="pty"),
                domains.console(pty, "serial", 0, alias="serial0", type="pty", tty=pty)],
                dom_type="qemu"))

        # Someone else (this test, alive) holds the lock: refused with the reason.
        with open(lock, "w") as f:
            f.write("%10d\n" % os.getpid())
        d = hub.Daemon(wd, "--domain-xml", xmldir).start()

        def refused_while_locked():
            c = d.wait_for(lambda: (d.console("ptyvm:serial0") or {}).get("state") == "error"
                           and d.console("ptyvm:serial0"), what="lock refusal")
            assert re.search(r"locked by process %d" % os.getpid(), c["status"]), c
            assert [x["name"] for x in d.list()["consoles"]] == ["ptyvm:serial0"]
        res.run("a pty locked by a live process is refused", refused_while_locked)

        def taken_when_released():
            os.unlink(lock)
            d.wait_for(lambda: (d.console("ptyvm:serial0") or {}).get("state") == "connected",
                       timeout=5, what="connected after unlock")
            with open(lock) as f:
                assert int(f.read().strip()) == d.pid(), "lock file does not hold ttyhubd's pid"
        res.run("opened once the lock is released, with ttyhubd's own lock", taken_when_released)

        def serves():
            p = G.Pty(d.cli_cmd("attach", "ptyvm"))
            try:
                p.expect(r"attached to ptyvm:serial0 read-write")
                G.sync_shell(p)
                p.send("echo $((6*7))\r")
                p.expect(rb"(?m)^42\r?$", timeout=20)
                p.send(b"\x05c.")
                assert p.wait(10) == 0
            finally:
                p.close()
        res.run("the pty console answers", serves)

        def lock_released_on_exit():
            d.stop()
            assert not os.path.exists(lock), "ttyhubd left its lock file behind"
        res.run("lock file removed when ttyhubd exits", lock_released_on_exit)
    finally:
        if d:
            d.stop()
        g.stop()
    res.finish(wd)


if __name__ == "__main__":
    main()
