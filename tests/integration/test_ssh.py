#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""ttyhub-sshd end to end: a real QEMU guest ("vm": ttyS0 = vm:serial0, hvc0 = vm:console1)
held by ttyhubd (--domain-xml, --front-user root), ttyhub-sshd in front of it, and real SSH
clients (OpenSSH on a pty, dropbear's dbclient, paramiko) as users meet them:

* sharing: a writer, a +ro watcher and a plain user (a watcher, since someone writes) all
  see the writer's output; watchers' keystrokes never reach the guest; +force moves the
  writer role with "[ttyhub] ... took write access from ..." to everyone;
* VM:ALIAS user names, the escape (Ctrl-E c . detaches with exit 0, Ctrl-E c ? helps), the
  console menu, and the exec commands list [--json], who NAME, attach NAME --ro;
* rights from the access file: unknown keys and passwords are refused, a key without
  consoles= sees nothing, a watch-only key cannot write or force and cannot tell a console it
  may not use from one that does not exist; a malformed line is reported with its number
  and skipped; SIGHUP revokes a removed key's live session;
* systemd socket activation; dbclient and paramiko interoperate;
* a stopped client slows nobody and costs no memory; 200 idle TCP connections do not lock
  users out, unauthenticated connections are capped and timed out; ssh-audit finds no
  failure.

Each check cleans up its sessions and first waits until nobody is attached, so one failure
does not cascade.  Output markers are unique per check because watchers get a replay of
the last lines on attach.
"""

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest as G  # noqa: E402
import hub  # noqa: E402
import net  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402

DETACH = b"\x05c."
HELP = b"\x05c?"
WHO = b"\x05cw"
# What a watcher is told when it types (the wording after "read-only:" varies).
RO_HINT = r"\[ttyhub\] read-only: "

# name -> consoles= option (None: no option); "dave" is made but never listed.
KEYS = {
    "alice": 'consoles="vm*:rw"',
    "bob": 'consoles="vm:serial0:ro"',
    "carol": None,
    "erin": 'consoles="vm*:rw"',
    "frank": 'consoles="vm*:rw"',
    "grace": 'consoles="vm*:rw"',
}


class Ctx:
    pass


ctx = Ctx()


def answer(text):
    """The output line of `echo ...` (never its echo, which holds the $((...))).  A notice
    that arrives between the guest's CR and LF starts on a new line: "TEXT\r\r\n[ttyhub] ...",
    so any number of CRs may end the line."""
    return rb"(?m)^" + re.escape(text.encode()) + rb"\r*$"


def line(name):
    """NAME's access file line."""
    pub = ctx.keys[name][1]
    return pub if KEYS[name] is None else KEYS[name] + " " + pub


def key(name):
    return ctx.keys[name][0]


def ssh(name, user, *remote_cmd, front=None):
    """OpenSSH with NAME's key as USER on a new pty."""
    p = G.Pty(sshhub.ssh_cmd(front or ctx.front, key(name), user, *remote_cmd))
    p.name = "ssh[%s as %s%s]" % (name, user, " " + " ".join(remote_cmd) if remote_cmd else "")
    return p


def attach(name, user, role=None, front=None):
    """ssh as USER and wait for ttyhub's "attached to ..." notice (role: read-write/-only)."""
    p = ssh(name, user, front=front)
    try:
        m = p.expect(r"\[ttyhub\] attached to (\S+) (read-write|read-only)", timeout=20)
        if role is not None and m.group(2).decode() != role:
            raise AssertionError("%s: attached %s, expected %s:\n%r"
                                 % (p.name, m.group(2).decode(), role, p.transcript[-600:]))
    except BaseException:
        p.close()
        raise
    return p


def exec_ssh(name, *cmd, front=None, user="console"):
    """`ssh -T ... CMD` with NAME's key; returns CompletedProcess."""
    return sshhub.run_ssh(front or ctx.front, key(name), user, *cmd)


def idle(consoles=("vm:serial0", "vm:console1"), timeout=10):
    """Wait until nobody is attached to these consoles.

    A session that stays attached after its client is gone is a ttyhub-sshd bug; so that it
    does not fail every later check too, the main front is then restarted (which ends its
    sessions) before the failure is raised.
    """
    if isinstance(consoles, str):
        consoles = (consoles,)
    deadline = time.monotonic() + timeout
    while True:
        busy = {}
        for name in consoles:
            c = ctx.d.console(name)
            if c is None or c["writer"] is not None or c["watchers"] != 0:
                busy[name] = c
        if not busy:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    who = {name: text(ctx.d.cli("who", name).stdout) for name in busy}
    tcp = net.tcp_states(ctx.front.port)
    ctx.restarts += 1
    ctx.front.stop()
    ctx.front = sshhub.SshFront(os.path.join(ctx.wd, "sshd-%d" % ctx.restarts), ctx.d.socket,
                                [line(n) for n in KEYS])
    raise AssertionError("still attached %g s after their clients went away (ttyhub-sshd "
                         "restarted to end them):\n%sits TCP connections then: %r"
                         % (timeout, "".join("%s:\n%s" % kv for kv in who.items()), tcp))


def settle(p, quiet=1.0, limit=10.0):
    """Read until end of stream, or until nothing new came for QUIET s; return the output."""
    deadline = time.monotonic() + limit
    last = time.monotonic()
    while time.monotonic() < deadline and not p.eof:
        if p.read_for(0.1):
            last = time.monotonic()
        elif p.transcript and time.monotonic() - last >= quiet:
            break
    return p.transcript


def text(b):
    return b.decode(errors="replace")


def expect_rc(r, want, what):
    if r.returncode != want:
        raise AssertionError("%s: exit status %s, expected %s\nstdout: %r\nstderr: %r"
                             % (what, r.returncode, want, r.stdout[-1500:], r.stderr[-1500:]))


@contextlib.contextmanager
def sessions():
    """Collects Ptys (and other closables); closes them all on the way out (killing ssh
    clients, as a dropped connection would), then, unless the check failed, waits until
    ttyhubd has nobody attached: each check cleans up after itself."""
    opened = []
    try:
        yield opened
    finally:
        for p in opened:
            with contextlib.suppress(Exception):
                if isinstance(p, G.Pty) and p.proc.poll() is None:
                    p.kill(signal.SIGCONT)
                p.close()
    idle()


def list_names(name, front=None):
    r = exec_ssh(name, "list", "--json", front=front)
    expect_rc(r, 0, "list --json")
    data = json.loads(r.stdout)
    return sorted(c["name"] for c in data["consoles"])


# ---------------------------------------------------------------- sharing and escapes


def t_share():
    idle()
    with sessions() as s:
        w = attach("alice", "vm", "read-write")
        s.append(w)
        G.sync_shell(w)
        r = attach("erin", "vm+ro", "read-only")
        s.append(r)
        w.expect(r"\[ttyhub\] [^\r\n]*erin[^\r\n]* attached read-only")
        t = ssh("frank", "vm")
        s.append(t)
        t.expect(r"\[ttyhub\] attached to vm:serial0 read-only[^\r\n]*alice[^\r\n]* writes",
                 timeout=20)

        w.send("echo $((6*7))\r")
        for p in (w, r, t):
            p.expect(answer("42"), timeout=20)

        # Watchers type; they are told, and nothing reaches the guest.
        r.send("echo RO$((1+1))X\r")
        r.expect(RO_HINT)
        t.send("echo TH$((2+1))X\r")
        t.expect(RO_HINT)
        w.send("echo W$((2+2))X\r")
        for p in (w, r, t):
            p.expect(answer("W4X"), timeout=20)
        for p in (w, r, t):
            for bad in (b"RO2X", b"TH3X"):
                assert bad not in p.transcript, "%s saw %r: watcher input reached the guest" \
                    % (p.name, bad)
        assert b"echo RO" not in w.transcript and b"echo TH" not in w.transcript, \
            "the guest echoed a watcher's keystrokes"

        # A fourth user forces: the writer role moves, everyone is told.
        f = attach("grace", "vm+force", "read-write")
        s.append(f)
        for p in (w, r, t):
            m = p.expect(r"\[ttyhub\] ([^\r\n]*) took write access from ([^\r\n]*)")
            assert b"grace" in m.group(1) and b"alice" in m.group(2), m.group(0)
        f.send("echo F$((3+3))X\r")
        for p in (w, r, t, f):
            p.expect(answer("F6X"), timeout=20)
        w.send("echo OLD$((4+4))X\r")
        w.expect(RO_HINT)
        f.send("echo Z$((5+5))X\r")
        for p in (w, r, t, f):
            p.expect(answer("Z10X"), timeout=20)
        for p in (w, r, t, f):
            assert b"OLD8X" not in p.transcript, "the former writer still writes"


def t_console1():
    idle("vm:console1")
    with sessions() as s:
        p = attach("alice", "vm:console1", "read-write")
        s.append(p)
        assert b"attached to vm:console1 " in p.transcript, p.transcript[-500:]
        G.sync_shell(p)
        p.send("echo $((6*7))\r")
        p.expect(answer("42"), timeout=20)
        p.send(DETACH)
        rc = p.wait(10)
        assert rc == 0, "ssh exit status %s after detach" % rc


def t_detach():
    idle()
    with sessions() as s:
        p = attach("alice", "vm", "read-write")
        s.append(p)
        p.send(DETACH)
        p.expect(r"\[ttyhub\] detached")
        rc = p.wait(10)
        assert rc == 0, "ssh exit status %s after Ctrl-E c ." % rc


def t_escape_help():
    idle()
    with sessions() as s:
        p = attach("alice", "vm", "read-write")
        s.append(p)
        settle(p, quiet=0.5, limit=3)  # the replay
        p.skip()
        p.send(HELP)
        for cmd in [r"\.", "f", "a", "s", "w", "r", "b", r"\?"]:
            p.expect(r"Ctrl-E c %s " % cmd, timeout=3)  # at once, not with later output


def menu_entries(p):
    """Wait for the menu's prompt; return {console name: number} from the listing."""
    p.expect(rb"[:?>] ?\Z", timeout=20)
    settle(p, quiet=0.3, limit=2)
    entries = {}
    for m in re.finditer(rb"(?m)^[ \t]*\[?(\d+)[).\]:]?[ \t]+(\S+)", p.transcript):
        entries.setdefault(m.group(2).decode(), int(m.group(1)))
    return entries


def t_menu():
    idle("vm:console1")
    with sessions() as s:
        p = ssh("alice", "console")
        s.append(p)
        entries = menu_entries(p)
        assert "vm:serial0" in entries and "vm:console1" in entries, \
            "menu lacks consoles: %r\n%s" % (entries, text(p.transcript[-1000:]))
        p.send("%d\r" % entries["vm:console1"])
        p.expect(r"\[ttyhub\] attached to vm:console1 read-write", timeout=20)
        G.sync_shell(p)
        p.send("echo M$((40+2))X\r")
        p.expect(answer("M42X"), timeout=20)
        p.send(DETACH)
        assert p.wait(10) == 0


def t_menu_only_permitted():
    with sessions() as s:
        p = ssh("bob", "console")
        s.append(p)
        entries = menu_entries(p)
        assert "vm:serial0" in entries, (entries, text(p.transcript[-1000:]))
        assert b"console1" not in p.transcript, \
            "the menu shows a console the key may not use:\n" + text(p.transcript[-1000:])


# ---------------------------------------------------------------- exec requests


def t_exec_list():
    r = exec_ssh("alice", "list")
    expect_rc(r, 0, "list")
    out = text(r.stdout)
    assert re.search(r"^NAME\s+STATE", out, re.M), out
    for name in ("vm:serial0", "vm:console1"):
        assert re.search(r"^%s\s+connected" % re.escape(name), out, re.M), out


def t_exec_list_json():
    assert list_names("alice") == ["vm:console1", "vm:serial0"]
    assert list_names("bob") == ["vm:serial0"]


def t_exec_who():
    idle()
    with sessions() as s:
        s.append(attach("alice", "vm", "read-write"))
        s.append(attach("erin", "vm+ro", "read-only"))
        r = exec_ssh("frank", "who", "vm")
        expect_rc(r, 0, "who vm")
        out = text(r.stdout)
        assert re.search(r"^ROLE\s+USER", out, re.M), out
        assert re.search(r"^writer\s+alice@ttyhub-test", out, re.M), out
        assert re.search(r"^watcher\s+erin@ttyhub-test", out, re.M), out


def t_exec_attach_ro():
    idle()
    with sessions() as s:
        w = attach("erin", "vm", "read-write")
        s.append(w)
        G.sync_shell(w)
        p = ssh("alice", "console", "attach", "vm", "--ro")
        s.append(p)
        p.expect(r"\[ttyhub\] attached to vm:serial0 read-only", timeout=20)
        p.send("echo XR$((1+6))X\r")
        p.expect(RO_HINT)
        w.send("echo XW$((2+6))X\r")
        p.expect(answer("XW8X"), timeout=20)
        w.expect(answer("XW8X"), timeout=20)
        assert b"XR7X" not in w.transcript and b"XR7X" not in p.transcript


# ---------------------------------------------------------------- rights


def t_unknown_key_denied():
    r = exec_ssh("dave", "list")
    expect_rc(r, 255, "key not in the access file")
    assert b"Permission denied (publickey)" in r.stderr, r.stderr


def t_no_consoles_option():
    r = exec_ssh("carol", "list")
    expect_rc(r, 0, "list (key without consoles=)")
    assert b"vm" not in r.stdout, r.stdout
    assert list_names("carol") == []


def norm(b, name):
    return text(b).replace(name, "NAME")


def t_denied_like_missing_exec():
    a = exec_ssh("bob", "attach", "vm:console1")
    n = exec_ssh("bob", "attach", "nosuch")
    ta, tn = norm(a.stdout + a.stderr, "vm:console1"), norm(n.stdout + n.stderr, "nosuch")
    print("  denied: exit %s %r" % (a.returncode, ta.strip()), flush=True)
    assert n.returncode != 0 and tn.strip(), "attach nosuch: exit %s %r" % (n.returncode, tn)
    assert (a.returncode, ta) == (n.returncode, tn), \
        "a console the key may not use looks different from a missing one:\n%r\n%r" % (ta, tn)


def t_denied_like_missing_user():
    with sessions() as s:
        a = ssh("bob", "vm:console1")
        n = ssh("bob", "nosuch")
        s += [a, n]
        ta, tn = settle(a), settle(n)
        assert b"console1" not in tn, "the key sees vm:console1:\n" + text(tn)
        assert norm(ta, "vm:console1") == norm(tn, "nosuch"), \
            "user name of a console the key may not use looks different from a missing one:" \
            "\n%r\n%r" % (ta, tn)
        assert b"attached to" not in ta, text(ta)


def t_ro_key_attaches_read_only():
    idle()
    with sessions() as s:
        b = attach("bob", "vm", "read-only")
        s.append(b)
        b.send("echo RB$((1+2))X\r")
        b.expect(RO_HINT)
        # Nobody else writes, yet bob did not get the writer role: alice gets it.
        w = attach("alice", "vm", "read-write")
        s.append(w)
        G.sync_shell(w)
        w.send("echo RW$((3+4))X\r")
        w.expect(answer("RW7X"), timeout=20)
        b.expect(answer("RW7X"), timeout=20)
        for p in (w, b):
            assert b"RB3X" not in p.transcript, "watch-only key's input reached the guest"


def t_ro_key_cannot_force():
    idle()
    with sessions() as s:
        w = attach("alice", "vm", "read-write")
        s.append(w)
        w.skip()
        f = ssh("bob", "vm+force")
        s.append(f)
        out = settle(f, quiet=1.5)
        w.expect_absent(r"took write access", duration=0.5)
        c = ctx.d.console("vm:serial0")
        assert c["writer"] and "alice" in c["writer"], c
        assert not re.search(rb"attached to \S+ read-write", out), text(out)


def t_password_refused():
    opt = "PreferredAuthentications=password,keyboard-interactive"
    r = sshhub.run_ssh(ctx.front, None, "vm", "list", options=[opt])
    expect_rc(r, 255, "password/keyboard-interactive login")
    assert b"Permission denied (publickey)." in r.stderr, r.stderr
    # Without BatchMode ssh would prompt if the server offered any such method.
    with sessions() as s:
        p = G.Pty(sshhub.ssh_cmd(ctx.front, None, "vm", "list", tty=False,
                                 options=[opt, "BatchMode=no", "NumberOfPasswordPrompts=1"]))
        s.append(p)
        out = settle(p, quiet=3, limit=15)
        assert b"assword" not in out and b"Verification code" not in out, text(out)
        if p.proc.poll() is None:
            p.send("wrong\r")
        rc = p.wait(10)
        assert rc == 255 and b"Permission denied (publickey)." in p.transcript, \
            (rc, text(p.transcript))


# ---------------------------------------------------------------- access file handling


def front_for(subdir, lines, **kw):
    return sshhub.SshFront(os.path.join(ctx.wd, subdir), ctx.d.socket, lines, **kw)


def with_log(f, fn):
    try:
        fn()
    except Exception:
        print("--- %s log tail ---\n%s" % (f.workdir, f.log()[-2500:]), flush=True)
        raise
    finally:
        f.stop()


def t_bad_access_line():
    bad = 'consoles="x" ssh-ed25519 !!!notbase64'
    f = front_for("sshd-badline", [line("alice"), bad, line("bob")])

    def check():
        # ttyhubd reads the access file now, and reports the line.
        ctx.d.wait_for(lambda: re.search(r": line \d+: [^\n]*; line ignored", ctx.d.log()),
                       timeout=10, what="the bad access line reported")
        assert list_names("alice", front=f) == ["vm:console1", "vm:serial0"]
        assert list_names("bob", front=f) == ["vm:serial0"]
        assert f.alive()
    with_log(f, check)


def t_sighup_revokes():
    # ttyhubd holds one access file for every front of it, and the other fronts list
    # alice: the key removed here is dave's, which no other front lists.
    dave = KEYS["alice"] + " " + ctx.keys["dave"][1]
    f = front_for("sshd-hup", [dave, line("erin")])

    def check():
        idle()
        with sessions() as s:
            a = attach("dave", "vm", "read-write", front=f)
            s.append(a)
            e = attach("erin", "vm+ro", "read-only", front=f)
            s.append(e)
            a.expect(r"\[ttyhub\] [^\r\n]*erin[^\r\n]* attached read-only")
            a.skip()
            f.write_access([line("erin")])
            f.reload()
            a.expect(r"\[ttyhub\][^\r\n]*(revok|remov|no longer)", timeout=10)
            rc = a.wait(10)
            print("  revoked session ended, ssh exit status %s" % rc, flush=True)
            r = exec_ssh("dave", "list", front=f)
            expect_rc(r, 255, "removed key after SIGHUP")
            assert b"Permission denied (publickey)" in r.stderr, r.stderr
            # erin is unaffected: still attached, told that dave left, and answered.
            e.expect(r"dave[^\r\n]*detached", timeout=10)
            e.send(WHO)
            e.expect(r"watcher\s+erin", timeout=10)
            assert list_names("erin", front=f) == ["vm:console1", "vm:serial0"]
            assert f.alive()
    with_log(f, check)


def t_socket_activation():
    f = front_for("sshd-activate", [line("alice")], activate=True)

    def check():
        exe = os.readlink("/proc/%d/exe" % f.pid)
        assert exe.endswith("/ttyhub-sshd"), exe
        r = exec_ssh("alice", "list", front=f)
        expect_rc(r, 0, "list through a socket-activated ttyhub-sshd")
        assert re.search(rb"^vm:serial0\s", r.stdout, re.M), r.stdout
    with_log(f, check)


# ---------------------------------------------------------------- other clients


def t_dbclient():
    idle()
    with sessions() as s:
        w = attach("alice", "vm", "read-write")
        s.append(w)
        G.sync_shell(w)
        home = os.path.join(ctx.wd, "dbhome")
        os.makedirs(home, exist_ok=True)
        p = G.Pty(["dbclient", "-y", "-i", sshhub.dropbear_key(key("erin")),
                   "-p", str(ctx.front.port), "vm+ro@127.0.0.1"],
                  env=dict(os.environ, HOME=home))
        p.name = "dbclient"
        s.append(p)
        p.expect(r"\[ttyhub\] attached to vm:serial0 read-only", timeout=20)
        w.send("echo DB$((2+5))X\r")
        w.expect(answer("DB7X"), timeout=20)
        p.expect(answer("DB7X"), timeout=20)
        p.send(DETACH)
        rc = p.wait(10)
        assert rc == 0, "dbclient exit status %s after detach" % rc


PARAMIKO = r"""
import re, socket, sys, time
import paramiko
port, key, user, needle = sys.argv[1:5]
c = paramiko.SSHClient()
c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
c.connect("127.0.0.1", int(port), username=user, key_filename=key, look_for_keys=False,
          allow_agent=False, timeout=10, banner_timeout=10, auth_timeout=10)
ch = c.invoke_shell(term="xterm", width=80, height=24)
ch.settimeout(0.5)
buf, ready, deadline = b"", False, time.monotonic() + 40
while time.monotonic() < deadline:
    try:
        data = ch.recv(65536)
    except socket.timeout:
        data = None
    if data == b"":
        break
    buf += data or b""
    if not ready and re.search(rb"\[ttyhub\] attached to \S+ read-only", buf):
        ready = True
        print("READY", flush=True)
    if ready and re.search(rb"(?m)^" + needle.encode() + rb"\r*$", buf):
        print("SEEN", flush=True)
        c.close()
        sys.exit(0)
print("NOT SEEN; output tail: %r" % buf[-1500:], flush=True)
sys.exit(1)
"""


def t_paramiko():
    idle()
    with sessions() as s:
        w = attach("alice", "vm", "read-write")
        s.append(w)
        G.sync_shell(w)
        proc = subprocess.Popen(["/usr/bin/python3", "-c", PARAMIKO, str(ctx.front.port),
                                 key("frank"), "vm+ro", "PARA5X"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            out = b""
            deadline = time.monotonic() + 30
            while b"READY" not in out and time.monotonic() < deadline:
                r, _, _ = select.select([proc.stdout], [], [], 0.5)
                if r:
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    out += chunk
            assert b"READY" in out, "paramiko did not attach:\n" + text(out[-3000:])
            w.send("echo PARA$((2+3))X\r")
            w.expect(answer("PARA5X"), timeout=20)
            rest, _ = proc.communicate(timeout=30)
            out += rest
            assert proc.returncode == 0 and b"SEEN" in out, \
                "paramiko exit %s:\n%s" % (proc.returncode, text(out[-3000:]))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# ---------------------------------------------------------------- robustness


class Flow:
    """Follows a Pty through a flood of digits: counts bytes, keeps the text without digits
    and line ends (so that typed letters stand out) and collects "N bytes dropped" notices.
    Reads with read_for() and moves pos to the end, so expect() never rescans the flood."""

    DROPPED = re.compile(rb"\[ttyhub\] (\d+) bytes dropped")

    def __init__(self, p):
        self.p = p
        p.skip()
        self.bytes = 0
        self.letters = b""
        self.dropped = []
        self._tail = b""

    def pump(self, duration=0.02):
        data = self.p.read_for(duration)
        self.p.skip()
        if not data:
            return
        self.bytes += len(data)
        self.letters = (self.letters + data.translate(None, b"0123456789\r\n"))[-65536:]
        buf = self._tail + data
        for m in self.DROPPED.finditer(buf):
            if m.end() > len(self._tail):
                self.dropped.append(int(m.group(1)))
        self._tail = buf[-100:]


FLOOD_BYTES = 3_000_000


def t_stopped_watcher():
    """A writer floods the guest's ttyS0 (3 MB; ~0.15-0.45 MB/s under TCG) while one
    watcher's ssh is stopped: the writer's typed letters come back (guest tty echo) to the
    writer and the running watcher within seconds, the running watcher keeps up, and
    ttyhub-sshd's memory stays flat.  Afterwards the stopped watcher is resumed; what it
    finds is checked by t_stopped_watcher_resumes()."""
    ctx.slow_result = None
    idle()
    with sessions() as s:
        w = attach("alice", "vm", "read-write")
        s.append(w)
        G.sync_shell(w)
        fast = attach("frank", "vm+ro", "read-only")
        s.append(fast)
        slow = attach("erin", "vm+ro", "read-only")
        s.append(slow)
        time.sleep(0.5)
        base = ctx.front.rss_kib()
        rss = [base]
        os.kill(slow.pid, signal.SIGSTOP)
        flows = [Flow(w), Flow(fast)]
        t_start = time.monotonic()
        # The end marker has no digits: the flood filter leaves "FLOODEND" of its output
        # line only ("FLOOD$((+))END" of the echoed command).
        w.send("yes 0123456789 | head -c %d; echo FLOOD$((1+1))END\r" % FLOOD_BYTES)
        deadline = time.monotonic() + 20
        while flows[0].bytes < 50_000 or flows[1].bytes < 50_000:
            if time.monotonic() > deadline:
                raise AssertionError("no flood: writer got %d bytes, watcher %d"
                                     % (flows[0].bytes, flows[1].bytes))
            for fl in flows:
                fl.pump()
        lat = []
        i = 0
        while b"FLOODEND" not in flows[0].letters:
            if time.monotonic() - t_start > 120:
                raise AssertionError("the flood did not end within 120 s (writer got %d bytes)"
                                     % flows[0].bytes)
            marker = ("#mk%s%sz" % (chr(97 + i // 26), chr(97 + i % 26))).encode()
            i += 1
            t0 = time.monotonic()
            w.send(marker)
            seen = [None, None]
            while None in seen:
                if time.monotonic() - t0 > 10:
                    raise AssertionError("marker %r not back within 10 s (writer %s, watcher %s)"
                                         "; writer's text tail %r"
                                         % (marker, seen[0], seen[1], flows[0].letters[-300:]))
                for k, fl in enumerate(flows):
                    fl.pump()
                    if seen[k] is None and marker in fl.letters:
                        seen[k] = time.monotonic() - t0
                rss.append(ctx.front.rss_kib())
            if b"FLOODEND" not in flows[0].letters:
                lat.append(seen)  # measured while the flood ran
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                for fl in flows:
                    fl.pump()
                rss.append(ctx.front.rss_kib())
        end = time.monotonic() + 1.0
        while time.monotonic() < end or b"FLOODEND" not in flows[1].letters:
            if time.monotonic() - t_start > 130:
                break
            flows[1].pump()
        print("  flood: %.1f s; writer got %d bytes, running watcher %d; echo latency "
              "(writer, watcher) max %.2f s, %.2f s over %d markers; ttyhub-sshd RSS %d -> "
              "max %d KiB"
              % (time.monotonic() - t_start, flows[0].bytes, flows[1].bytes,
                 max((x[0] for x in lat), default=-1), max((x[1] for x in lat), default=-1),
                 len(lat), base, max(rss)), flush=True)
        assert len(lat) >= 3, "only %d markers during the flood" % len(lat)
        for k, (a, b) in enumerate(lat):
            assert a < 5 and b < 5, "marker %d came back after %.1f s (writer), %.1f s (watcher)" \
                % (k, a, b)
        assert b"FLOODEND" in flows[1].letters, "the running watcher did not see the end"
        assert flows[1].bytes >= 0.95 * flows[0].bytes, \
            "the running watcher lags: %d of the writer's %d bytes" % (flows[1].bytes,
                                                                       flows[0].bytes)
        for fl in flows:
            assert not fl.dropped, "%s: bytes dropped %r" % (fl.p.name, fl.dropped)
        # Under ASan the allocator's quarantine, not ttyhub, decides RSS: bound it only plain.
        if not hub.SANITIZED:
            assert max(rss) < base + 8 * 1024, \
                "ttyhub-sshd grew from %d to %d KiB" % (base, max(rss))

        # Run the typed comment line, resume the stopped watcher and follow it to the end.
        w.send("\r")
        os.kill(slow.pid, signal.SIGCONT)
        sl = Flow(slow)
        t0 = time.monotonic()
        while b"FLOODEND" not in sl.letters and time.monotonic() - t0 < 30 and not slow.eof:
            sl.pump(0.1)
            w.read_for(0.01)
            w.skip()
        ctx.slow_result = (sl.dropped, b"FLOODEND" in sl.letters, sl.bytes,
                           sl.letters[-300:], slow.proc.poll(), flows[0].bytes)
        G.sync_shell(w)
        assert ctx.front.alive()


def t_stopped_watcher_resumes():
    """The stopped watcher, resumed, was told what it lost and caught up with the end."""
    assert ctx.slow_result is not None, "not measured (the flood check failed)"
    dropped, end_seen, nbytes, tail, rc, flood = ctx.slow_result
    print("  resumed watcher: %d bytes of the writer's %d; %d dropped-bytes notices, %d bytes "
          "in all, largest %d" % (nbytes, flood, len(dropped), sum(dropped),
                                  max(dropped, default=0)), flush=True)
    assert rc is None, "its ssh exited with %s" % rc
    assert end_seen, "it never got the end of the flood; tail %r" % tail
    # Usually the flood outgrows every buffer on the way (ring, queues, the SSH window) and
    # the watcher is told what it lost; when it did fit, nothing may be missing instead.
    assert min(dropped, default=1) > 0, "a notice of 0 bytes dropped: %r" % dropped
    assert nbytes + sum(dropped) >= 0.95 * flood, \
        "it got %d bytes and was told of %d dropped, of %d: loss without a notice" \
        % (nbytes, sum(dropped), flood)


def t_stopped_watcher_few_notices():
    """One gap, one notice (a few at most): not one per guest write while it was stopped."""
    assert ctx.slow_result is not None, "not measured (the flood check failed)"
    dropped = ctx.slow_result[0]
    assert len(dropped) <= 10, \
        "%d '[ttyhub] N bytes dropped' notices (sizes %r ... %r): the broker reports each " \
        "small ring advance separately while the client cannot take data" \
        % (len(dropped), dropped[:8], dropped[-3:])


def tcp_held(port):
    """Established connections ttyhub-sshd has accepted on PORT: {peer address: count}."""
    held = {}
    for addr, _ in net.accepted_peers(port):
        held[addr] = held.get(addr, 0) + 1
    return held


def open_idle(port, sources, per_source):
    """Open per_source connections from each source address; they never send a byte."""
    socks = []
    failed = 0
    for src in sources:
        for _ in range(per_source):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.bind((src, 0))
                s.connect(("127.0.0.1", port))
                socks.append(s)
            except OSError:
                failed += 1
                s.close()
    return socks, failed


def closed_count(socks, wait=0.0):
    """How many of the sockets the server has closed (EOF or reset)."""
    n = 0
    for s in socks:
        s.setblocking(False)
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    n += 1
                    break
        except BlockingIOError:
            pass
        except OSError:
            n += 1
    return n


def timed_login(name):
    t0 = time.monotonic()
    r = exec_ssh(name, "list")
    dt = time.monotonic() - t0
    expect_rc(r, 0, "list")
    assert b"vm:serial0" in r.stdout, r.stdout
    return dt


def idle_flood(sources, per_source, per_source_cap):
    port = ctx.front.port
    base = timed_login("alice")
    socks, failed = open_idle(port, sources, per_source)
    try:
        time.sleep(1.0)
        # The flood's own addresses: the login just before may still be closing.
        held = {a: n for a, n in tcp_held(port).items() if a in sources}
        dt = timed_login("alice")
        closed = closed_count(socks)
        print("  %d idle connections from %d address(es) (%d failed to connect); "
              "ttyhub-sshd holds %d (max %d from one address); %d closed by it; "
              "login + list took %.2f s (%.2f s without the flood)"
              % (len(socks), len(sources), failed, sum(held.values()),
                 max(held.values(), default=0), closed, dt, base), flush=True)
        assert sum(held.values()) <= 64, "ttyhub-sshd holds %d unauthenticated connections: %r" \
            % (sum(held.values()), held)
        if per_source_cap:
            assert max(held.values(), default=0) <= per_source_cap, \
                "more than %d unauthenticated connections from one address: %r" \
                % (per_source_cap, held)
        assert dt < max(2.0, base + 1.0), "login took %.2f s under the flood" % dt
    finally:
        for s in socks:
            s.close()
    deadline = time.monotonic() + 10
    while sum(tcp_held(port).values()) > 0:
        assert time.monotonic() < deadline, "closed idle connections still held: %r" \
            % tcp_held(port)
        time.sleep(0.1)


def t_idle_connections_one_source():
    idle_flood(["127.0.0.1"], 200, 8)


def t_idle_connections_many_sources():
    idle_flood(["127.0.1.%d" % i for i in range(1, 26)], 8, None)


def t_login_grace():
    f = front_for("sshd-grace", [line("alice")], extra_args=["--login-grace", "3"])

    def check():
        with sessions() as s:
            # An authenticated session outlives the grace time.
            p = attach("alice", "vm:console1+ro", "read-only", front=f)
            s.append(p)
            socks, failed = open_idle(f.port, ["127.0.0.1"], 4)
            s += socks
            assert not failed, "%d connections failed" % failed
            t0 = time.monotonic()
            ended = {}
            while len(ended) < len(socks) and time.monotonic() - t0 < 8:
                r, _, _ = select.select([x for x in socks if x not in ended], [], [], 0.2)
                for x in r:
                    try:
                        if x.recv(65536):
                            continue
                    except OSError:
                        pass
                    ended[x] = time.monotonic() - t0
            times = sorted(ended.values())
            print("  idle connections closed after %s s"
                  % ", ".join("%.1f" % t for t in times), flush=True)
            assert len(times) == len(socks), "%d of %d idle connections still open after 8 s" \
                % (len(socks) - len(times), len(socks))
            assert 2.0 <= times[0] and times[-1] <= 5.0, times
            assert not p.eof and p.proc.poll() is None, \
                "authenticated session ended:\n" + text(p.transcript[-800:])
            p.send(WHO)
            p.expect(r"watcher\s+alice", timeout=10)
    with_log(f, check)


def t_ssh_audit():
    r = subprocess.run(["ssh-audit", "-n", "-p", str(ctx.front.port), "127.0.0.1"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    out = text(r.stdout)
    fails = [ln.strip() for ln in out.splitlines() if re.search(r"[\[(]fail[\])]", ln)]
    warns = [ln.strip() for ln in out.splitlines() if re.search(r"[\[(]warn[\])]", ln)]
    print("  ssh-audit exit %d (0 good, 2 warnings, 3 failures): %d fail, %d warn"
          % (r.returncode, len(fails), len(warns)), flush=True)
    for ln in fails + warns:
        print("    " + ln, flush=True)
    assert r.returncode in (0, 2) and not fails, \
        "ssh-audit exit %d\n%s\n%s" % (r.returncode, out[-3000:], text(r.stderr[-1000:]))


def t_alive():
    assert ctx.d.alive(), ctx.d.log()[-3000:]
    assert ctx.front.alive(), ctx.front.log()[-3000:]


CHECKS = [
    ("three users share vm, +ro input discarded, +force takes over", t_share),
    ("VM:ALIAS reaches hvc0", t_console1),
    ("Ctrl-E c . detaches, ssh exits 0", t_detach),
    ("Ctrl-E c ? prints the escape help", t_escape_help),
    ("console menu: pick by number", t_menu),
    ("console menu: only consoles the key may use", t_menu_only_permitted),
    ("exec list", t_exec_list),
    ("exec list --json: only permitted consoles", t_exec_list_json),
    ("exec who", t_exec_who),
    ("exec attach --ro", t_exec_attach_ro),
    ("key not in the access file is denied", t_unknown_key_denied),
    ("key without consoles= sees nothing", t_no_consoles_option),
    ("forbidden console looks missing (exec attach)", t_denied_like_missing_exec),
    ("forbidden console looks missing (user name)", t_denied_like_missing_user),
    ("watch-only key attaches read-only without +ro", t_ro_key_attaches_read_only),
    ("watch-only key cannot force", t_ro_key_cannot_force),
    ("no password or keyboard-interactive", t_password_refused),
    ("malformed access line reported, others load", t_bad_access_line),
    ("SIGHUP revokes a removed key's session", t_sighup_revokes),
    ("socket activation", t_socket_activation),
    ("dbclient interoperates", t_dbclient),
    ("paramiko interoperates", t_paramiko),
    ("stopped watcher slows nobody, costs no memory", t_stopped_watcher),
    ("stopped watcher, resumed, is told of dropped bytes", t_stopped_watcher_resumes),
    ("stopped watcher gets few dropped-bytes notices", t_stopped_watcher_few_notices),
    ("200 idle connections from one address", t_idle_connections_one_source),
    ("200 idle connections from 25 addresses", t_idle_connections_many_sources),
    ("--login-grace closes idle connections", t_login_grace),
    ("ssh-audit finds no failure", t_ssh_audit),
    ("daemons alive", t_alive),
]


def main():
    res = runner.Runner()
    if not os.access(sshhub.SSHD, os.X_OK):
        print("FAIL %s is missing (build it first)" % sshhub.SSHD, flush=True)
        sys.exit(1)
    wd = ctx.wd = hub.workdir("ssh")
    ctx.restarts = 0
    g = G.Guest(wd, "vm", virtio_console=True)
    xmldir = os.path.join(wd, "xml")
    os.mkdir(xmldir)
    with open(os.path.join(xmldir, "vm.xml"), "w") as f:
        f.write(g.domain_xml("domain"))
    d = ctx.d = hub.Daemon(wd, "--domain-xml", xmldir, "--front-user", "root").start()
    try:
        ctx.keys = {n: sshhub.make_key(wd, n) for n in list(KEYS) + ["dave"]}
        # A stopped ssh is reaped after 3 unanswered keepalives (45 s by default); the
        # stopped-watcher flood can take that long on a loaded machine, so allow 3 minutes.
        ctx.front = sshhub.SshFront(os.path.join(wd, "sshd"), d.socket,
                                    [line(n) for n in KEYS], extra_args=("--keepalive", "60"))
        for c in ("vm:serial0", "vm:console1"):
            d.wait_for(lambda c=c: (d.console(c) or {}).get("state") == "connected",
                       timeout=30, what=c + " connected")

        res.on_failure = lambda: print(
            "--- ttyhub-sshd log tail ---\n%s\n--- ttyhubd log tail ---\n%s"
            % (ctx.front.log()[-2500:], d.log()[-1500:]), flush=True)
        # $TTYHUB_CHECKS (or $TTYHUB_SSH_CHECKS), e.g. "t_share,t_menu", runs only those.
        res.run_checks(CHECKS)
    finally:
        d.stop()
        g.stop()
    res.finish(wd)


if __name__ == "__main__":
    main()
