#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Self-test of the real-guest harness (guest.py): does a real guest boot and answer?

Run: /usr/bin/python3 tests/integration/test_guest_harness.py
Exit status 0 when every check passes; the last line is "N passed, M failed".

The checks run in order against one guest (ttyS0 + hvc0): boot, a shell on each console,
QMP, libvirt-shaped XML, a SIGKILL + restart on the same socket paths, a clean stop, and the
Pty helper.  Each check also proves the harness can fail (expect() on absent output raises).
The work directory is removed on success and kept (and printed) on failure.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest as G  # noqa: E402
import runner  # noqa: E402
from runner import check  # noqa: E402

ANSWER = r"^42\r?$"   # the output line "42", never the echo of "echo $((6*7))"


class Ctx:
    workdir = ""
    g = None            # the Guest
    serial = None       # SocketConsole on serial0
    hvc = None          # SocketConsole on console1
    t_start = 0.0


ctx = Ctx()


def ask_42(con):
    """Ask the shell behind con for 6*7 and check the answer line."""
    con.send("echo $((6*7))\n")
    con.expect(ANSWER, timeout=20)
    con.expect(G.PROMPT, timeout=20)


def must_fail(fn, what):
    """Assert fn() raises AssertionError (the harness's failure path works)."""
    try:
        fn()
    except AssertionError:
        return
    raise AssertionError(f"expected AssertionError: {what}")


@check
def assets_build_and_cache():
    t = time.monotonic()
    kernel, initrd = G.assets()
    assert os.path.getsize(kernel) > 1_000_000, kernel
    assert os.path.getsize(initrd) > 100_000, initrd
    assert G.assets() == (kernel, initrd)
    res = subprocess.run(["bash", str(G.BUILD_GUEST)], capture_output=True, check=True)
    lines = res.stdout.decode().splitlines()
    assert lines == [kernel, initrd], f"build-guest.sh stdout: {lines!r}"
    with open(initrd, "rb") as f:
        assert f.read(6) == b"070701", "initrd is not a newc cpio"
    print(f"  assets ready in {time.monotonic() - t:.2f} s: {kernel}, {initrd}")


@check
def boot_serial_shell():
    ctx.t_start = time.monotonic()
    ctx.g = G.Guest(ctx.workdir, "selftest", virtio_console=True)
    # QEMU drops output while no client is connected: connect at once.
    ctx.serial = G.SocketConsole(ctx.g.serial_sock)
    ctx.hvc = G.SocketConsole(ctx.g.console_sock)
    assert ctx.g.pid and ctx.g.running
    for s in (ctx.g.serial_sock, ctx.g.console_sock, ctx.g.qmp_sock):
        assert os.path.exists(s), s
    try:
        ctx.serial.expect("guest up", timeout=60)
        marker = time.monotonic() - ctx.t_start
        print(f"  'guest up' on ttyS0 after {marker:.2f} s")
    except AssertionError:
        print("  'guest up' not seen (missed while connecting); poking for a prompt")
        ctx.serial.skip()
    G.sync_shell(ctx.serial, timeout=60)
    print(f"  boot time (start to serial shell answering): "
          f"{time.monotonic() - ctx.t_start:.2f} s")
    ask_42(ctx.serial)
    ctx.serial.send("tty\n")
    ctx.serial.expect(r"^/dev/ttyS0\r?$")
    ctx.serial.expect(G.PROMPT)
    must_fail(lambda: ctx.serial.expect("no such output", timeout=0.5), "absent output")


@check
def virtio_console_shell():
    try:
        ctx.hvc.expect("hvc0 up", timeout=20)
    except AssertionError:
        print("  'hvc0 up' not seen; poking for a prompt")
        ctx.hvc.skip()
    G.sync_shell(ctx.hvc, timeout=30)
    ask_42(ctx.hvc)
    ctx.hvc.send("tty\n")
    ctx.hvc.expect(r"^/dev/hvc0\r?$")
    ctx.hvc.expect(G.PROMPT)
    # The hvc0 shell has job control: ^C interrupts the foreground job.
    ctx.hvc.send("sleep 60; echo NOT$((1+1))INT\n")
    ctx.hvc.read_for(1.5)
    ctx.hvc.send("\x03")
    ctx.hvc.expect(G.PROMPT, timeout=10)
    ctx.hvc.expect_absent("NOT2INT", duration=0.2)
    # What is typed on one console does not show up on the other.
    ctx.hvc.send("echo ONLY$((1+1))HVC\n")
    ctx.hvc.expect("ONLY2HVC")
    ctx.serial.expect_absent("ONLY2HVC", duration=0.5)


@check
def qmp_helper():
    st = ctx.g.qmp({"execute": "query-status"})
    assert st.get("return", {}).get("status") == "running", st
    chardevs = ctx.g.qmp({"execute": "query-chardev"})["return"]
    byid = {c["label"]: c["filename"] for c in chardevs}
    assert ctx.g.serial_sock in byid.get("charserial0", ""), byid
    assert ctx.g.console_sock in byid.get("charconsole1", ""), byid
    err = ctx.g.qmp({"execute": "no-such-command"})
    assert "error" in err, err
    # A serial break reaches the guest: sysrq help appears.
    ctx.serial.send("echo 1 > /proc/sys/kernel/sysrq\n")
    ctx.serial.expect(G.PROMPT)
    r = ctx.g.qmp({"execute": "chardev-send-break", "arguments": {"id": "charserial0"}})
    assert r.get("return") == {}, r
    ctx.serial.send("h")
    ctx.serial.expect("sysrq: HELP", timeout=10)
    G.sync_shell(ctx.serial, timeout=20)


@check
def domain_xml_shapes():
    g = ctx.g
    root = ET.fromstring(g.domain_xml())
    assert root.tag == "domain" and root.get("type") in ("qemu", "kvm"), root.attrib
    assert root.findtext("name") == "selftest"
    assert re.fullmatch(r"[0-9a-f-]{36}", root.findtext("uuid"))
    serials = root.findall("devices/serial")
    assert len(serials) == 1
    s = serials[0]
    assert s.get("type") == "unix"
    assert s.find("source").attrib == {"mode": "bind", "path": g.serial_sock}
    assert s.find("target").get("type") == "isa-serial" and s.find("target").get("port") == "0"
    assert s.find("alias").get("name") == "serial0"
    consoles = root.findall("devices/console")
    assert [(c.find("target").get("type"), c.find("target").get("port"),
             c.find("alias").get("name"), c.find("source").get("path")) for c in consoles] == [
        ("serial", "0", "serial0", g.serial_sock),
        ("virtio", "1", "console1", g.console_sock),
    ], ET.tostring(root)

    st = ET.fromstring(g.domain_xml("domstatus"))
    assert st.tag == "domstatus" and st.get("pid") == str(g.pid), st.attrib
    assert st.find("domain/name").text == "selftest"
    assert st.find("monitor").get("path") == g.qmp_sock

    inactive = ET.fromstring(g.domain_xml("define"))
    assert inactive.get("id") is None and not inactive.findall(".//alias")
    assert inactive.findtext("os/kernel") == g.kernel

    twin = G.Guest(ctx.workdir, "selftest", start=False)
    assert twin.uuid == g.uuid and twin.pid is None
    other = G.Guest(ctx.workdir, "other", serial=True, virtio_console=False, start=False)
    assert other.uuid != g.uuid and other.console_sock is None
    ox = ET.fromstring(other.domain_xml())
    assert len(ox.findall("devices/console")) == 1
    try:
        g.domain_xml("bogus")
        raise AssertionError("domain_xml accepted kind 'bogus'")
    except ValueError:
        pass


@check
def kill_and_restart():
    old_pid = ctx.g.pid
    t = time.monotonic()
    rc = ctx.g.kill()
    assert rc == -signal.SIGKILL, rc
    assert not ctx.g.running and ctx.g.pid is None
    ctx.serial.expect_eof(timeout=5)
    ctx.hvc.expect_eof(timeout=5)
    # A crashed QEMU leaves its socket files; nobody listens on them.
    assert os.path.exists(ctx.g.serial_sock)
    must_fail(lambda: G.SocketConsole(ctx.g.serial_sock, timeout=0.3), "connect to dead QEMU")
    ctx.serial.close()
    ctx.hvc.close()

    ctx.g.start()
    assert ctx.g.pid and ctx.g.pid != old_pid
    ctx.serial = G.SocketConsole(ctx.g.serial_sock)
    G.sync_shell(ctx.serial, timeout=60)
    ask_42(ctx.serial)
    print(f"  restart to serial shell answering: {time.monotonic() - t:.2f} s")
    ctx.serial.close()
    t = time.monotonic()
    ctx.g.restart()
    ctx.hvc = G.SocketConsole(ctx.g.console_sock)
    G.sync_shell(ctx.hvc, timeout=60)
    ask_42(ctx.hvc)
    ctx.hvc.close()
    print(f"  restart() to hvc0 shell answering: {time.monotonic() - t:.2f} s")


@check
def stop_cleans_up():
    pid = ctx.g.pid
    ctx.g.stop()
    assert not ctx.g.running
    try:
        os.kill(pid, 0)
        raise AssertionError(f"QEMU pid {pid} still exists")
    except ProcessLookupError:
        pass
    for s in (ctx.g.serial_sock, ctx.g.console_sock, ctx.g.qmp_sock):
        assert not os.path.exists(s), s
    assert "terminating on signal 15" in ctx.g.log_tail(), ctx.g.log_tail()


@check
def pty_helper():
    with G.Pty(["/bin/sh", "-c", "stty size; tty; read x; echo got:$x; exit 3"],
               rows=31, cols=97) as p:
        p.expect(rb"31 97")
        p.expect(r"/dev/pts/\d+")
        p.send("hello\r")
        p.expect("got:hello")
        assert p.wait(10) == 3
        p.expect_eof(5)
        must_fail(lambda: p.expect("never printed", timeout=1), "pty output after exit")
    with G.Pty(["/bin/sleep", "60"]) as p:
        p.kill(signal.SIGTERM)
        assert p.wait(5) == -signal.SIGTERM


def main() -> None:
    ctx.workdir = tempfile.mkdtemp(prefix="ttyhub-guest-")
    res = runner.Runner()
    try:
        res.run_checks()
    finally:
        for c in (ctx.serial, ctx.hvc):
            if c is not None:
                c.close()
        if ctx.g is not None:
            ctx.g.stop()
    res.finish(ctx.workdir)


if __name__ == "__main__":
    main()
