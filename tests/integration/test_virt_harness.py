#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Self-test of the private-libvirtd harness (virt.py): a real libvirtd runs a real guest.

Run (as root): /usr/bin/python3 tests/integration/test_virt_harness.py
Exit status 0 when every check passes; the last line is "N passed, M failed".

The checks run in order against one private libvirtd and one domain (ttyS0 + hvc0 on UNIX
sockets): daemon start, domain start, a shell on each console socket, the live XML's devices
and aliases, destroy + start, a libvirtd restart under a running guest with a console
connection held open, undefine, stop, and that nothing is left running and the host's libvirt
directories, accounts and mount table are as before.  A last check SIGKILLs a child process
that runs a Libvirtd and a guest and checks that the holder cleans up after it.  The work
directory is removed on success and kept (and libvirtd's logs printed) on failure.
"""

import hashlib
import os
import select
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import guest as G  # noqa: E402
import runner  # noqa: E402
from runner import check  # noqa: E402
import virt  # noqa: E402

ANSWER = r"^42\r?$"   # the output line "42", never the echo of "echo $((6*7))"

#: Host paths a system libvirtd would write to; the private one must leave them alone.
HOST_PATHS = ("/etc/libvirt", "/run/libvirt", "/var/lib/libvirt", "/var/log/libvirt",
              "/var/cache/libvirt", "/etc/passwd", "/etc/group", "/etc/shadow",
              "/etc/gshadow", "/run/libvirtd.pid")


class Ctx:
    workdir = ""
    lv = None           # the virt.Libvirtd
    name = ""           # the domain
    serial_sock = ""
    console_sock = ""
    serial = None       # SocketConsole on serial0
    hvc = None          # SocketConsole on console1
    host_before = None


ctx = Ctx()


def ask_42(con):
    con.send("echo $((6*7))\n")
    con.expect(ANSWER, timeout=20)
    con.expect(G.PROMPT, timeout=20)


def must_fail(fn, exc, what):
    """Assert fn() raises exc."""
    try:
        fn()
    except exc:
        return
    raise AssertionError(f"expected {exc.__name__}: {what}")


def alive(pid):
    return virt._alive(pid)


def snapshot(paths=HOST_PATHS):
    """(path, type, mode, owner, size, mtime, content hash) of everything under paths."""
    out = []

    def one(p):
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            out.append((p, "absent"))
            return
        kind = "dir" if os.path.isdir(p) and not os.path.islink(p) else \
            "link" if os.path.islink(p) else "file"
        extra = ""
        if kind == "link":
            extra = os.readlink(p)
        elif kind == "file":
            with open(p, "rb") as f:
                extra = hashlib.sha256(f.read()).hexdigest()
        out.append((p, kind, st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
                    extra))
        if kind == "dir":
            for e in sorted(os.listdir(p)):
                one(os.path.join(p, e))

    for p in paths:
        one(p)
    return out


def host_mounts():
    with open("/proc/self/mountinfo") as f:
        return f.read()


def cmdlines_with(needle):
    """Pids whose command line contains needle (bytes)."""
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open(f"/proc/{e}/cmdline", "rb") as f:
                    if needle in f.read() and alive(int(e)):
                        out.append(int(e))
            except OSError:
                pass
    return out


@check
def harness_rejects_bad_input():
    must_fail(lambda: virt.Libvirtd("/var/tmp/x"), ValueError, "prefix under /var")
    must_fail(lambda: virt.Libvirtd(ctx.workdir, prefix="/run/x"), ValueError, "prefix in /run")
    must_fail(lambda: virt.Libvirtd("/tmp/" + "x" * 100), ValueError, "socket path too long")
    lv = virt.Libvirtd(ctx.workdir)
    must_fail(lambda: lv.domain_xml("bad name", None, None), ValueError, "domain name")
    must_fail(lambda: lv.domain_xml("ok", "relative.sock", None), ValueError, "relative path")
    must_fail(lambda: lv.domain_xml("ok", "/tmp/" + "y" * 110, None), ValueError, "long path")
    must_fail(lambda: lv.conn(), RuntimeError, "conn() before start()")
    assert virt.missing() == [], virt.missing()


@check
def daemon_starts():
    ctx.lv = lv = virt.Libvirtd(ctx.workdir)
    t = time.monotonic()
    lv.start()
    print(f"  libvirtd start: {time.monotonic() - t:.2f} s (first API answer after "
          f"{lv.timings['api']:.2f} s, QEMU capabilities known after {lv.timings['ready']:.2f} s)")
    assert lv.running and alive(lv.pid)
    assert os.path.exists(lv.socket) and os.path.exists(lv.socket_ro)
    assert lv.socket.startswith(ctx.workdir + "/"), lv.socket
    # libvirtd runs in its own mount namespace; its overlays do not show on the host.
    assert lv.namespace and virt._mntns(lv.pid) == lv.namespace != virt._mntns(os.getpid())
    assert "ttyhub-virt" not in host_mounts()
    with open(f"/proc/{lv.pid}/mountinfo") as f:
        ns_mounts = f.read()
    for d in ("/etc", "/var", "/run"):
        assert f" {d} " in ns_mounts and "ttyhub-virt" in ns_mounts, ns_mounts[-2000:]
    conn = lv.conn()
    assert conn.getType() == "QEMU", conn.getType()
    assert conn.getURI() == lv.uri, conn.getURI()
    assert conn.listAllDomains() == []
    # The read-only socket answers and refuses changes.
    ro = virt.libvirt.openReadOnly(lv.uri_ro)
    try:
        assert ro.listAllDomains() == []
        must_fail(lambda: ro.defineXML(lv.domain_xml("rotest", None, None)),
                  virt.libvirt.libvirtError, "define on a read-only connection")
    finally:
        ro.close()
    # libvirtd wrote its state into the private layers, not the host.
    assert os.path.isdir(lv.private_path("/run/libvirt/qemu")), lv.private_path("/run/libvirt")
    assert not os.path.exists("/run/libvirt")


@check
def domain_starts():
    ctx.name = f"vt{os.getpid()}"
    ctx.serial_sock = os.path.join(ctx.workdir, f"{ctx.name}-serial0.sock")
    ctx.console_sock = os.path.join(ctx.workdir, f"{ctx.name}-console1.sock")
    t = time.monotonic()
    dom = ctx.lv.define_and_start(ctx.name, ctx.serial_sock, ctx.console_sock)
    print(f"  domain start (define + create): {time.monotonic() - t:.2f} s "
          f"(create {ctx.lv.last_domain_start:.2f} s)")
    # QEMU drops output while nobody is connected: connect right away.
    ctx.serial = G.SocketConsole(ctx.serial_sock)
    ctx.hvc = G.SocketConsole(ctx.console_sock)
    assert dom.isActive() and ctx.lv.is_active(ctx.name)
    state, _reason = dom.state()
    assert state == virt.libvirt.VIR_DOMAIN_RUNNING, state
    pid = ctx.lv.qemu_pid(ctx.name)
    assert pid and alive(pid), pid
    assert virt._mntns(pid) == ctx.lv.namespace
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert f"guest={ctx.name},debug-threads=on".encode() in argv, argv
    assert b"tcg" in argv and b"-kernel" in argv, argv
    # libvirt logged QEMU's command line in the private /var/log.
    with open(ctx.lv.qemu_log(ctx.name), "rb") as f:
        assert b"qemu-system-x86_64" in f.read()


@check
def serial_shell():
    G.sync_shell(ctx.serial, timeout=60)
    ask_42(ctx.serial)
    ctx.serial.send("tty\n")
    ctx.serial.expect(r"^/dev/ttyS0\r?$")
    ctx.serial.expect(G.PROMPT)
    must_fail(lambda: ctx.serial.expect("no such output", timeout=0.5), AssertionError,
              "absent output")


@check
def virtio_console_shell():
    G.sync_shell(ctx.hvc, timeout=30)
    ask_42(ctx.hvc)
    ctx.hvc.send("tty\n")
    ctx.hvc.expect(r"^/dev/hvc0\r?$")
    ctx.hvc.expect(G.PROMPT)
    ctx.hvc.send("echo ONLY$((1+1))HVC\n")
    ctx.hvc.expect("ONLY2HVC")
    ctx.serial.expect_absent("ONLY2HVC", duration=0.5)


@check
def live_xml_devices():
    root = ET.fromstring(ctx.lv.live_xml(ctx.name))
    assert root.get("type") == "qemu" and root.get("id"), root.attrib
    assert root.findtext("name") == ctx.name
    assert root.findtext("os/kernel") == G.assets()[0]
    devs = root.find("devices")
    serials = devs.findall("serial")
    assert len(serials) == 1, ET.tostring(devs)
    s = serials[0]
    assert s.get("type") == "unix"
    assert s.find("source").get("mode") == "bind"
    assert s.find("source").get("path") == ctx.serial_sock
    assert s.find("target").get("type") == "isa-serial"
    assert s.find("alias").get("name") == "serial0"
    consoles = [(c.get("type"), c.find("target").get("type"), c.find("alias").get("name"),
                 c.find("source").get("path")) for c in devs.findall("console")]
    assert consoles == [
        ("unix", "serial", "serial0", ctx.serial_sock),     # libvirt's twin of serial0
        ("unix", "virtio", "console1", ctx.console_sock),
    ], consoles
    for tag in ("channel", "parallel", "graphics", "video"):
        assert devs.find(tag) is None, f"unexpected <{tag}>"
    # The status file (what a --domain-xml broker reads) is visible from the host.
    status = os.path.join(ctx.lv.status_dir, ctx.name + ".xml")
    st = ET.parse(status).getroot()
    assert st.tag == "domstatus" and st.get("state") == "running", st.attrib
    assert st.find("domain/devices/serial/alias").get("name") == "serial0"


@check
def destroy_and_start_again():
    pid = ctx.lv.qemu_pid(ctx.name)
    assert ctx.lv.destroy(ctx.name) is True
    assert not ctx.lv.is_active(ctx.name)
    assert not alive(pid), f"QEMU {pid} still runs after destroy"
    ctx.serial.expect_eof(timeout=10)
    ctx.hvc.expect_eof(timeout=10)
    ctx.serial.close()
    ctx.hvc.close()
    assert ctx.lv.destroy(ctx.name) is False
    must_fail(lambda: G.SocketConsole(ctx.serial_sock, timeout=0.3), AssertionError,
              "connect to a destroyed domain's socket")
    t = time.monotonic()
    ctx.lv.start(ctx.name)
    ctx.serial = G.SocketConsole(ctx.serial_sock)
    ctx.hvc = G.SocketConsole(ctx.console_sock)
    print(f"  domain start again: {ctx.lv.last_domain_start:.2f} s")
    assert ctx.lv.is_active(ctx.name)
    new_pid = ctx.lv.qemu_pid(ctx.name)
    assert new_pid and new_pid != pid and alive(new_pid)
    G.sync_shell(ctx.serial, timeout=60)
    ask_42(ctx.serial)
    G.sync_shell(ctx.hvc, timeout=30)
    ask_42(ctx.hvc)
    print(f"  start again to both shells answering: {time.monotonic() - t:.2f} s")
    must_fail(lambda: ctx.lv.start("no-such-domain"), virt.libvirt.libvirtError,
              "start of an unknown domain")


@check
def libvirtd_restart_keeps_domain():
    lv = ctx.lv
    qemu = lv.qemu_pid(ctx.name)
    old_pid = lv.pid
    old_conn = virt.libvirt.open(lv.uri)
    assert old_conn.lookupByName(ctx.name).isActive()
    t = time.monotonic()
    lv.restart()
    print(f"  libvirtd restart: {time.monotonic() - t:.2f} s "
          f"(first API answer {lv.timings['api']:.2f} s after the new start)")
    assert not alive(old_pid) and lv.pid != old_pid and alive(lv.pid)
    assert virt._mntns(lv.pid) == lv.namespace
    must_fail(lambda: old_conn.getLibVersion(), virt.libvirt.libvirtError,
              "a connection to the old libvirtd")
    old_conn.close()
    # The new libvirtd took the running domain over; QEMU was not touched.
    assert lv.is_active(ctx.name)
    assert lv.qemu_pid(ctx.name) == qemu and alive(qemu)
    state, _ = lv.domain(ctx.name).state()
    assert state == virt.libvirt.VIR_DOMAIN_RUNNING, state
    root = ET.fromstring(lv.live_xml(ctx.name))
    assert [a.get("name") for a in root.findall("devices/console/alias")] == \
        ["serial0", "console1"]
    # The console connections held across the restart still work.
    ask_42(ctx.serial)
    ask_42(ctx.hvc)
    ro = virt.libvirt.openReadOnly(lv.uri_ro)
    try:
        assert [d.name() for d in ro.listAllDomains()] == [ctx.name]
    finally:
        ro.close()
    # libvirtd still controls it: a monitor round trip through the new daemon.
    dom = lv.domain(ctx.name)
    dom.suspend()
    assert dom.state()[0] == virt.libvirt.VIR_DOMAIN_PAUSED
    dom.resume()
    ask_42(ctx.serial)


@check
def undefine_running_domain():
    lv = ctx.lv
    lv.undefine(ctx.name)
    dom = lv.domain(ctx.name)          # still running, now transient
    assert dom.isActive() and not dom.isPersistent()
    assert os.path.exists(os.path.join(lv.status_dir, ctx.name + ".xml"))
    assert not os.path.exists(lv.private_path(f"/etc/libvirt/qemu/{ctx.name}.xml"))
    ask_42(ctx.serial)


@check
def stop_leaves_nothing():
    lv = ctx.lv
    qemu = lv.qemu_pid(ctx.name)
    daemon = lv.pid
    holder = lv._holder.pid
    ns = lv.namespace
    assert qemu and alive(qemu) and alive(daemon) and alive(holder)
    lv.stop()
    assert not lv.running and lv.namespace is None
    for what, pid in (("QEMU", qemu), ("libvirtd", daemon), ("holder", holder)):
        assert not alive(pid), f"{what} pid {pid} still alive"
    ctx.serial.expect_eof(timeout=10)
    ctx.hvc.expect_eof(timeout=10)
    assert lv.leftovers() == [], lv.leftovers()
    assert virt._pids_in_mntns(ns) == []
    assert cmdlines_with(f"guest={ctx.name},".encode()) == []
    assert cmdlines_with(lv.conf_path.encode()) == []
    assert "ttyhub-virt" not in host_mounts()
    lv.stop()                          # idempotent
    must_fail(lambda: lv.conn(), RuntimeError, "conn() after stop()")


@check
def host_untouched():
    # snapshot() notices a change (here: in a scratch directory).
    scratch = os.path.join(ctx.workdir, "scratch")
    os.makedirs(scratch)
    before = snapshot([scratch])
    with open(os.path.join(scratch, "f"), "w") as f:
        f.write("x")
    assert snapshot([scratch]) != before
    after = snapshot()
    assert after == ctx.host_before, (
        "host paths changed:\n" + "\n".join(
            str(x) for x in sorted(set(after) ^ set(ctx.host_before))))
    # ... while libvirtd really did write those paths, privately.
    up = ctx.lv.private_path
    assert os.path.isfile(up("/etc/libvirt/qemu.conf"))
    assert os.path.isdir(up("/var/lib/libvirt/qemu"))
    assert os.path.isfile(ctx.lv.qemu_log(ctx.name))


@check
def killed_harness_leaves_nothing():
    """SIGKILL a process that runs a Libvirtd + guest: the holder kills what it left."""
    wd = os.path.join(ctx.workdir, "orphan")
    os.makedirs(wd)
    name = f"orphan{os.getpid()}"
    code = (
        "import sys, time\n"
        f"sys.path.insert(0, {HERE!r})\n"
        "import virt\n"
        f"lv = virt.Libvirtd({wd!r})\n"
        "lv.start()\n"
        f"lv.define_and_start({name!r}, {wd + '/s.sock'!r}, None)\n"
        f"print(lv.namespace, lv.pid, lv._holder.pid, lv.qemu_pid({name!r}), flush=True)\n"
        "time.sleep(600)\n"
    )
    err_path = os.path.join(wd, "child.err")
    with open(err_path, "wb") as err:
        p = subprocess.Popen(["/usr/bin/python3", "-c", code], stdout=subprocess.PIPE,
                             stderr=err)
    try:
        out = b""
        deadline = time.monotonic() + 120
        while b"\n" not in out and time.monotonic() < deadline:
            r, _, _ = select.select([p.stdout], [], [], 0.5)
            if r:
                chunk = os.read(p.stdout.fileno(), 4096)
                if not chunk:
                    break
                out += chunk
        fields = out.decode().split()
        if len(fields) != 4:
            with open(err_path, "rb") as f:
                raise AssertionError(f"child said {out!r}; stderr:\n{f.read()[-3000:]!r}")
        ns, daemon, holder, qemu = fields[0], *map(int, fields[1:])
        assert all(alive(x) for x in (daemon, holder, qemu)), fields
    finally:
        p.kill()
        p.wait()
        p.stdout.close()
    deadline = time.monotonic() + 15
    # The holder lives outside the namespace and exits just after emptying it: wait for both.
    while ([x for x in virt._pids_in_mntns(ns) if alive(x)] or
           any(alive(x) for x in (daemon, holder, qemu))) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [x for x in virt._pids_in_mntns(ns) if alive(x)]
    assert left == [], f"left running after the harness died: {left}"
    for x in (daemon, holder, qemu):
        assert not alive(x), x
    assert cmdlines_with(f"guest={name},".encode()) == []
    assert "ttyhub-virt" not in host_mounts()


def main() -> None:
    ctx.workdir = tempfile.mkdtemp(prefix="ttyhub-virt-")
    ctx.host_before = snapshot()
    res = runner.Runner()
    res.on_failure = lambda: print(ctx.lv.logs()) if ctx.lv is not None else None
    try:
        res.run_checks()
    finally:
        for c in (ctx.serial, ctx.hvc):
            if c is not None:
                c.close()
        if ctx.lv is not None:
            ctx.lv.stop()
    res.finish(ctx.workdir)


if __name__ == "__main__":
    main()
