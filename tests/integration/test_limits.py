#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Limits no peer can push ttyhubd past, against the real daemon:

* the fronts' connection limit (--max-clients) does not apply to local admins: with
  every front slot held by a front user (a non-root user named by --front-user), root's
  `ttyhub list` still works, and the front user's next connection is refused;
* serial breaks are rate-limited per console (a burst, then one a second): breaks sent
  back to back to a QEMU known through --qmp are refused with
  "break to NAME refused: too many breaks, try again in N s", also from `ttyhub break`;
  a break from a front client that does not write to the console is refused;
* local peers are shown as "local admin" in hello, notices and `who`; only local admins
  get their user name and pid (`login`, `pid`) in `who`;
* out of file descriptors (ttyhubd under a low RLIMIT_NOFILE), the listener does not
  spin: ttyhubd's CPU time stays low while connections wait, it logs it once, and it
  serves again once they close.
"""

import json
import os
import pwd
import re
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402

QEMU = "/usr/bin/qemu-system-x86_64"
FRONT_USER = "nobody"
PRINCIPAL = None  # {"key": "TYPE BASE64", "from": ADDR}: a key of ttyhubd's access file (t_qmp)
TOO_MANY = re.compile(r"break to (\S+) refused: too many breaks, try again in (\d+) s")


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)


def open_for_others(wd, sock):
    """Let a non-root front user reach the daemon's socket (mode 0660, root's group)."""
    os.chmod(wd, 0o711)
    os.chmod(sock, 0o666)


FRONT_CLIENT = r"""
import json, socket, struct, sys
path, n = sys.argv[1], int(sys.argv[2])
held = []
for i in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    p = json.dumps({"type": "hello", "version": 1, "client": "front-test"}).encode()
    try:
        s.sendall(b"C" + struct.pack(">I", len(p)) + p)
    except OSError:
        pass  # a refused peer is sent an error and closed at once: read it below
    buf = b""
    while len(buf) < 5 or len(buf) < 5 + struct.unpack(">I", buf[1:5])[0]:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            break
        buf += chunk
    msg = json.loads(buf[5:5 + struct.unpack(">I", buf[1:5])[0]]) if len(buf) >= 5 else {}
    print(json.dumps(msg), flush=True)
    held.append(s)
sys.stdin.read()  # hold the connections until the test closes our stdin
"""


def front_clients(sock, n):
    """n broker connections held by FRONT_USER; returns (process, the n hello answers)."""
    p = subprocess.Popen(["setpriv", "--reuid=" + FRONT_USER, "--regid=nogroup",
                          "--clear-groups", "/usr/bin/python3", "-c", FRONT_CLIENT, sock,
                          str(n)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    answers = []
    for _ in range(n):
        line = p.stdout.readline()
        if not line:
            raise AssertionError("front client failed: %s" % p.stderr.read().decode())
        answers.append(json.loads(line))
    return p, answers


def t_admin_reserve():
    wd = hub.workdir("limits-admin")
    d = hub.Daemon(wd, "--front-user", FRONT_USER, "--max-clients", "3",
                   "--console", "t=" + os.path.join(wd, "t.sock")).start()
    p = q = None
    try:
        open_for_others(wd, d.socket)
        p, answers = front_clients(d.socket, 3)
        assert all(a.get("type") == "hello" for a in answers), answers
        # Every front slot is taken: one more front connection is refused ...
        q, answers = front_clients(d.socket, 1)
        assert answers[0].get("type") == "error" and answers[0].get("code") == "busy", answers
        assert "too many clients" in answers[0].get("message", ""), answers
        # ... but root is a local admin, with slots of its own.
        for _ in range(3):
            r = d.cli("list")
            assert r.returncode == 0 and b"t " in r.stdout, r
        held = [hub.BrokerClient(d.socket) for _ in range(5)]  # more than --max-clients
        for c in held:
            c.close()
        assert re.search(r"refused broker connection from uid \d+ pid \d+: 3 front", d.log()), \
            d.log()
    finally:
        for x in (p, q):
            if x:
                x.stdin.close()
                x.wait(10)
        d.stop()


class Qemu:
    """A QEMU stopped before it runs anything (-S): QMP and two serial chardevs."""

    def __init__(self, wd):
        self.qmp = os.path.join(wd, "vm-qmp.sock")
        self.socks = [os.path.join(wd, "vm-serial%d.sock" % i) for i in range(2)]
        cmd = [QEMU, "-accel", "tcg", "-S", "-name", "vm", "-uuid", str(uuid.uuid4()),
               "-m", "32", "-nodefaults", "-no-user-config", "-display", "none",
               "-qmp", "unix:%s,server=on,wait=off" % self.qmp]
        for i, s in enumerate(self.socks):
            cmd += ["-chardev", "socket,id=charserial%d,path=%s,server=on,wait=off" % (i, s),
                    "-serial", "chardev:charserial%d" % i]
        self.log = open(os.path.join(wd, "qemu.log"), "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log)
        deadline = time.monotonic() + 20
        while not all(os.path.exists(x) for x in [self.qmp] + self.socks):
            assert self.proc.poll() is None and time.monotonic() < deadline, "QEMU did not start"
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


def answers(c, n, timeout=20):
    """The next n answers to break requests (break-sent or error), notices skipped."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        assert time.monotonic() < deadline, "only %r" % out
        m = c.next()
        if m["type"] in ("break-sent", "error"):
            out.append(m)
    return out


def t_breaks(d):
    names = d.wait_for(lambda: sorted(c["name"] for c in d.list()["consoles"]
                                      if c["state"] == "connected") or None,
                       timeout=20, what="the QMP consoles")
    assert names == ["vm:serial0", "vm:serial1"], names

    # A burst from one admin connection, back to back: the first few go through, the
    # rest are refused with the time to wait; other consoles are not affected.
    c = hub.BrokerClient(d.socket)
    for _ in range(8):
        c.send({"type": "break", "console": "vm:serial0"})
    got = answers(c, 8)
    sent = [m for m in got if m["type"] == "break-sent"]
    refused = [m for m in got if m["type"] == "error"]
    assert 1 <= len(sent) <= 4 and len(refused) >= 4, got
    for m in refused:
        assert m["code"] == "busy", m
        mm = TOO_MANY.fullmatch(m["message"])
        assert mm and mm.group(1) == "vm:serial0" and 1 <= int(mm.group(2)) <= 5, m

    # The CLI says so and fails (within the burst, a second break in a row is refused).
    for _ in range(10):
        r = d.cli("break", "vm:serial0")
        if r.returncode != 0:
            break
    assert r.returncode == 1, r
    assert TOO_MANY.search(r.stderr.decode()), r.stderr
    assert r.stderr.startswith(b"ttyhub: break to vm:serial0 refused"), r.stderr

    # The budget refills: after the time it named, a break goes through again.
    wait = int(TOO_MANY.search(r.stderr.decode()).group(2))
    time.sleep(wait + 0.5)
    r = d.cli("break", "vm:serial0")
    assert r.returncode == 0 and b"break sent to vm:serial0" in r.stdout, r
    c.close()
    assert "too many breaks" in d.log(), d.log()[-2000:]


def t_break_needs_the_writer(d):
    # A front client (root is also --front-user here) speaking for an SSH principal:
    # watching read-only, or not attached to that console, is not enough for a break.
    w = hub.BrokerClient(d.socket, hello=False)
    w.send({"type": "hello", "version": 1, "client": "front-test", "principal": PRINCIPAL})
    w.expect_type("hello")
    w.send({"type": "break", "console": "vm:serial1"})
    m = w.expect_type("error")
    assert m["code"] == "denied" and "only the console's writer" in m["message"], m
    w.send({"type": "attach", "console": "vm:serial1", "mode": "ro"})
    w.expect_type("attached")
    w.send({"type": "break"})
    m = w.expect_type("error")
    assert m["code"] == "denied" and "break to vm:serial1 refused" in m["message"], m
    # As the writer it may.
    w.send({"type": "take", "force": False})
    w.expect_type("state")
    w.send({"type": "break"})
    m = answers(w, 1)[0]
    assert m["type"] == "break-sent", m
    w.close()
    # A local admin needs no attachment (ttyhub break NAME).
    r = d.cli("break", "vm:serial1")
    assert r.returncode == 0, r


def t_local_admin_labels(d):
    a = hub.BrokerClient(d.socket, hello=False)
    a.send({"type": "hello", "version": 1, "client": "test"})
    assert a.expect_type("hello")["you"] == "local admin"
    a.send({"type": "attach", "console": "vm:serial1", "mode": "force", "replay": 0})
    a.expect_type("attached")
    b = hub.BrokerClient(d.socket)
    b.send({"type": "attach", "console": "vm:serial1", "mode": "ro", "replay": 0})
    att = b.expect_type("attached")
    assert att["writer"] == "local admin", att
    n = a.expect_type("notice")
    while "read-only" not in n["text"]:  # after the notice of its own attach
        n = a.expect_type("notice")
    assert n["text"] == "local admin attached read-only (2 attached)", n
    assert str(os.getpid()) not in n["text"] and "root" not in n["text"], n
    # Local admins see who they are; the user label stays "local admin".
    a.send({"type": "who"})
    who = a.expect_type("who")
    assert {e["user"] for e in who["clients"]} == {"local admin"}, who
    me = pwd.getpwuid(os.geteuid()).pw_name
    for e in who["clients"]:
        assert e["login"] == me and e["pid"] == os.getpid(), who
    r = d.cli("who", "vm:serial1", "--json")
    assert r.returncode == 0, r
    assert all(e.get("pid") == os.getpid() for e in json.loads(r.stdout)["clients"]
               if e["role"] == "writer"), r.stdout
    r = d.cli("who", "vm:serial1")
    assert re.search(rb"^writer +local admin \(%s, pid %d\)$" % (me.encode(), os.getpid()),
                     r.stdout, re.M), r.stdout
    r = d.cli("list")
    assert re.search(rb"^vm:serial1 .* local admin$", r.stdout, re.M), r.stdout
    # A front gets labels only: no user names or pids of local peers.
    f = hub.BrokerClient(d.socket, hello=False)
    f.send({"type": "hello", "version": 1, "client": "front-test", "principal": PRINCIPAL})
    f.expect_type("hello")
    f.send({"type": "who", "console": "vm:serial1"})
    who = f.expect_type("who")
    assert who["clients"] and all(set(e) == {"id", "user", "role", "since"}
                                  for e in who["clients"]), who
    f.send({"type": "list", "console": "vm:serial1"})
    lst = f.expect_type("list")
    assert lst["consoles"][0]["writer"] == "local admin", lst
    # The log keeps who it was.
    d.wait_for(lambda: re.search(r"%s \(local, pid %d\)" % (me, os.getpid()), d.log()) or
               re.search(r"serial break sent to vm:serial1 by %s \(local, pid \d+\)" % me,
                         d.log()), what="user and pid in the log")
    for x in (a, b, f):
        x.close()


def t_qmp():
    wd = hub.workdir("limits-qmp")
    q = Qemu(wd)
    d = hub.Daemon(wd, "--qmp", q.qmp, "--front-user", "root")
    # The principal's key may write and break: what is checked here is the writer rule.
    global PRINCIPAL
    _, pub = sshhub.make_key(wd, "alice")
    d.write_access(['consoles="vm*:rw",break ' + pub])
    PRINCIPAL = {"key": " ".join(pub.split()[:2]), "from": "127.0.0.1"}
    d.start()
    res = runner.Runner()
    try:
        res.run("breaks are rate-limited per console, with a clear error", t_breaks, d)
        res.run("a front's break needs the writer; a local admin's does not",
                t_break_needs_the_writer, d)
        res.run("local peers are shown as 'local admin'; user and pid to admins only",
                t_local_admin_labels, d)
    finally:
        d.stop()
        q.stop()
    assert res.failed == 0, "%d checks failed" % res.failed


def t_emfile_no_spin():
    wd = hub.workdir("limits-emfile")
    d = hub.Daemon(wd, "--console", "t=" + os.path.join(wd, "t.sock"),
                   wrap=["prlimit", "--nofile=48:48", "--"]).start()
    held = []
    try:
        # Fill the fd table: connections beyond it wait in the listen backlog.
        for _ in range(100):
            s = __import__("socket").socket(__import__("socket").AF_UNIX)
            s.connect(d.socket)
            held.append(s)
        d.wait_for(lambda: "out of file descriptors" in d.log(), what="EMFILE seen")
        t0 = cpu_ticks(d.pid())
        time.sleep(3)
        used = cpu_ticks(d.pid()) - t0
        hz = os.sysconf("SC_CLK_TCK")
        # Spinning would use the whole 3 s (3 * hz ticks); a 100 ms retry costs next to
        # nothing.  Generous: a loaded machine and ASan make each retry slower.
        if not hub.SANITIZED:
            assert used < hz, "ttyhubd used %d ticks (%d/s) in 3 s while out of fds" % (used, hz)
        assert d.log().count("pausing the listener") == 1, d.log()[-3000:]
        assert d.alive()
        for s in held:
            s.close()
        held = []
        d.wait_for(lambda: d.cli("list").returncode == 0, timeout=20, what="serving again")
        assert "accepting broker connections again" in d.log(), d.log()[-3000:]
    finally:
        for s in held:
            s.close()
        d.stop()


def main():
    res = runner.Runner()
    if os.geteuid() != 0:
        print("SKIP: needs root (a second user for the front, setpriv)")
        sys.exit(0)
    res.run("fronts cannot lock local admins out (--max-clients is the fronts')",
            t_admin_reserve)
    res.run("breaks, rights and labels against QEMU through --qmp", t_qmp)
    res.run("out of file descriptors: no spinning, serves again", t_emfile_no_spin)
    res.finish(hub.workdir("limits"))


if __name__ == "__main__":
    main()
