#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Terminal-escape injection: guest output, VM and console names, SSH user names, key
comments and client names full of escape sequences and C1 controls never reach anyone's
terminal or a log raw, except the live stream of an attached terminal, which is raw by
design (docs/protocol.md).

The guests are chardev sockets served from this script.  "evil" emits a corpus of OSC
(0, 2, 52 clipboard), DCS (DECRQSS and others), APC/PM/SOS, CSI (colour, clear, 21t, 6n),
8-bit C1 (0x9b, 0x9d, 0x90 ... 0x9c) raw and as UTF-8 (U+009B, U+009D, U+0090), C0 controls,
DEL, NEL, overlong encodings and a lone ESC, between visible words.  Console names carry
escapes and C1 through every way of naming a console:
  --console NAME=PATH      "cl" ESC ]0;T BEL "i" U+009B and a raw 0x9b
  a configuration file     "cf" ESC [1m "X" U+009B and a raw 0x90
  domain XML <name>        "vm" U+009B "[31m" U+0085 "z" &#x9d; (legal XML 1.0 characters) with
                           alias "ua-q" U+009B "q"
  domain XML <name>        with &#x1b; (not a legal XML character) in a file of its own
  a domain XML file named like libvirt's NAME.xml for a VM named "lv" U+009B "[1m"
The SSH key of "alice" has the comment "al" ESC ]0;KEY BEL "ice" U+009B; a raw broker client
says hello with such a client name; SSH users log in with user names holding ESC sequences,
U+009B, and bytes that are not UTF-8 (paramiko sends any bytes; OpenSSH refuses control
characters itself but sends U+009B).

What the code does, and what is asserted:
* names are rendered escaped, as log_escape() writes them ("\\x1b", "\\xc2\\x9b", "\\x9b"):
  exactly those names are listed and can be attached by that escaped spelling; a domain file
  whose <name> holds &#x1b; is refused with a clear error naming the file and line while
  every other console is served;
* a user name that is no console opens the console menu, like "console" (it is never echoed)
  and is escaped in the audit line;
* nothing raw in: replay (ttyhub attach --replay all, Ctrl-E c r, broker replay request,
  SSH attach with +replay=all), ttyhub list / list --json / who, SSH list / list --json /
  who, the SSH menu and banner, notices to other users (CLI, SSH, broker), ttyhub-sshd's and
  ttyhubd's logs, the console log's file names and markers.  "Raw" means: a C0 control
  other than TAB/CR/LF, DEL, a C1 control (U+0080..U+009F) or bytes that are not UTF-8;
  replay also loses the payloads of OSC/DCS/APC/PM/SOS ("pwn-..." never shows);
* the live stream of a client attached while the guest writes is byte-identical to what the
  guest wrote (the test sees raw bytes when they are there).
"""

import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest as G  # noqa: E402
import hub  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402

import paramiko  # noqa: E402  (python3-paramiko)

EVIL = (
    b"before "
    b"\x1b]0;pwn-title\x07" b"\x1b]2;pwn-title2\x1b\\" b"\x1b]52;c;cHduLWNsaXA=\x07"
    b"\x1bP$q m\x1b\\" b"\x1bP1;1|pwn-dcs\x1b\\" b"\x1b_pwn-apc\x1b\\" b"\x1b^pwn-pm\x1b\\"
    b"\x1bXpwn-sos\x1b\\"
    b"\x1b[31m\x1b[2J\x1b[21t\x1b[6n\x1b[?1049h"
    b"\x9b31m" b"\x9d0;pwn-c1osc\x07" b"\x90pwn-c1dcs\x9c"
    b"\xc2\x9b2J" b"\xc2\x9d0;pwn-uosc\x07" b"\xc2\x90pwn-udcs\xc2\x9c"
    b"\x00\x01\x05\x08\x7f\x0b\x0c\x0e\x1a\x1c" b"\x85\xc2\x85" b"\xc0\x9b\xe0\x80\x9b"
    b"\x1bc\x1b7\x1b8\x1b(0" b" middle lone\x1b\xc3\xa9\n"
    b"caf\xc3\xa9 after\r\n"
)

CL_NAME = b"cl\x1b]0;T\x07i\xc2\x9b\x9b"         # --console
CF_NAME = b"cf\x1b[1mX\xc2\x9b\x90"              # configuration file
VM_NAME = "vm\u009b[31m\u0085z"                  # domain XML (raw UTF-8 C1) + &#x9d;
VM_ALIAS = "ua-q\u009bq"
LV_NAME = "lv\u009b[1m"                          # libvirt-style file name NAME.xml
KEY_COMMENT = "al\x1b]0;KEY\x07ice\u009b"
CLIENT_NAME = "cli\x1b]0;HELLO\x07\u009bent"


def escaped(raw):
    """A name as ttyhubd renders it (log_escape: printable ASCII and printable UTF-8 as
    they are, every other byte and the backslash as \\xNN)."""
    out = ""
    i = 0
    while i < len(raw):
        b = raw[i]
        if 0x20 <= b < 0x7f and b != 0x5c:
            out += chr(b)
            i += 1
            continue
        n = 2 if 0xc2 <= b <= 0xdf else 3 if 0xe0 <= b <= 0xef else 4 if 0xf0 <= b <= 0xf4 else 0
        if n:
            try:
                ch = raw[i:i + n].decode("utf-8")
                if len(ch) == 1 and ord(ch) > 0x9f:
                    out += ch
                    i += n
                    continue
            except UnicodeDecodeError:
                pass
        out += "\\x%02x" % b
        i += 1
    return out


BAD = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\xc2[\x80-\x9f]")


def violations(b):
    """Where b holds something raw: C0 other than TAB/CR/LF, DEL, C1, or invalid UTF-8."""
    out = []
    for m in BAD.finditer(b):
        out.append((m.start(), b[max(0, m.start() - 40):m.end() + 20]))
    pos = 0
    while pos < len(b):
        try:
            b[pos:].decode("utf-8")
            break
        except UnicodeDecodeError as e:
            at = pos + e.start
            out.append((at, b[max(0, at - 40):at + 20]))
            pos = at + 1
    return sorted(out)[:8]


def assert_clean(what, b):
    v = violations(b)
    assert not v, "%s holds raw control bytes at %s" % (
        what, "; ".join("%d: %r" % x for x in v))


class Ctx:
    pass


ctx = Ctx()


class EvilGuest:
    """A chardev socket served from here (one client at a time, like QEMU): sends `first`
    when a client connects, and burst() sends more on demand."""

    def __init__(self, path, first):
        self.first = first
        self.conn = None
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(path)
        self.listener.listen(1)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.conn = c
                c.sendall(self.first)
            try:
                while c.recv(4096):
                    pass
            except OSError:
                pass

    def burst(self, data):
        with self.lock:
            self.conn.sendall(data)

    def close(self):
        self.listener.close()


def cli_ok(*args):
    r = ctx.d.cli(*args)
    assert r.returncode == 0, (args, r)
    return r.stdout


def attach_capture(console, *args, wait=0.5):
    """`ttyhub attach CONSOLE --ro ...` with pipes; stdin closed after wait s (detach)."""
    p = subprocess.Popen(ctx.d.cli_cmd("attach", console, "--ro", *args),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(wait)
    p.stdin.close()
    out = p.stdout.read()
    assert p.wait(10) == 0, out
    return out


def ssh_session(user, key=None, want=None, timeout=15, command=None):
    """paramiko session with a pty as USER (str or bytes): a shell, or the exec COMMAND;
    returns (transport, channel, output so far)."""
    t = paramiko.Transport(("127.0.0.1", ctx.front.port))
    t.start_client(timeout=20)
    t.auth_publickey(user, ctx.pkeys[key or "alice"])
    ch = t.open_session(timeout=20)
    ch.get_pty(term="xterm", width=120, height=40)
    if command:
        ch.exec_command(command)
    else:
        ch.invoke_shell()
    out = read_until(ch, want, timeout) if want else b""
    return t, ch, out


def read_until(ch, want, timeout=15, quiet=None):
    """Read from a paramiko channel until regex want shows (or, with want None, until
    nothing came for `quiet` s); returns the bytes."""
    out = b""
    deadline = time.monotonic() + timeout
    ch.settimeout(0.2)
    last = time.monotonic()
    while time.monotonic() < deadline:
        try:
            data = ch.recv(65536)
        except socket.timeout:
            data = None
        if data == b"":
            break
        if data:
            out += data
            last = time.monotonic()
        if want is not None and re.search(want, out):
            return out
        if want is None and quiet is not None and time.monotonic() - last >= quiet:
            return out
    if want is not None:
        raise AssertionError("%r not seen within %g s: %r" % (want, timeout, out[-1500:]))
    return out


def exec_ssh(*cmd, key="bob"):
    r = sshhub.run_ssh(ctx.front, ctx.keys[key][0], "console", *cmd)
    assert r.returncode == 0, r
    return r.stdout + r.stderr


# ---------------------------------------------------------------- names


def t_names_escaped():
    data = ctx.d.list()
    names = sorted(c["name"] for c in data["consoles"])
    # (The <name> in vm.xml ends in &#x9d;: U+009D.)
    want = sorted(["evil", escaped(CL_NAME), escaped(CF_NAME),
                   escaped((VM_NAME + "\u009d").encode()) + ":" + escaped(VM_ALIAS.encode()),
                   escaped(LV_NAME.encode()) + ":serial0"])
    print("  listed: %r" % names, flush=True)
    assert names == want, "names %r, expected %r" % (names, want)
    for c in data["consoles"]:
        assert c["state"] == "connected", c
    # The file with &#x1b; in <name>: a clear error with file and line; nothing else lost.
    errs = [e for e in data["errors"] if e["origin"].endswith("esc.xml")]
    assert len(errs) == 1 and re.search(r"line \d+: .*invalid xmlChar value 27",
                                        errs[0]["message"]), data["errors"]
    # An escaped name is the name: it can be attached by that spelling.
    out = attach_capture(escaped(CL_NAME), "--replay", "all")
    assert b"hello from cl" in out, out
    assert_clean("attach by escaped name", out)


# ---------------------------------------------------------------- replay


def check_replay(what, out, need_words=True):
    assert_clean(what, out)
    assert b"pwn" not in out, "%s: a control string's payload survived: %r" % (what, out[-800:])
    if need_words:
        assert b"before" in out and b"after" in out and "café".encode() in out, \
            "%s: the visible text is missing: %r" % (what, out[-800:])


def t_live_stream_raw():
    """By design the live stream is raw: the same bytes the guest wrote."""
    c = hub.BrokerClient(ctx.d.socket)
    c.send({"type": "attach", "console": "evil", "mode": "ro", "replay": 0})
    c.expect_type("attached")
    ctx.guests["evil"].burst(EVIL)
    c.read_data_until(b"after\r\n", timeout=10)
    assert c.data == EVIL, "live stream changed: %r" % c.data
    assert len(violations(c.data)) >= 5, "the checker does not see raw bytes"
    c.close()


def t_replay_cli():
    out = attach_capture("evil", "--replay", "all")
    check_replay("ttyhub attach --replay all", out)


def t_replay_broker():
    c = hub.BrokerClient(ctx.d.socket)
    c.send({"type": "attach", "console": "evil", "mode": "ro", "replay": "all"})
    c.expect_type("attached")
    c.read_data_until(b"after", timeout=5)
    check_replay("broker attach replay all", c.data)
    n = len(c.data)
    c.send({"type": "replay", "lines": "all"})
    deadline = time.monotonic() + 5
    while c.data[n:].count(b"after") < 2 and time.monotonic() < deadline:
        c.sock.settimeout(0.5)
        try:
            c.pump()
        except socket.timeout:
            pass
    check_replay("broker replay request", c.data[n:])
    c.close()


def t_replay_escape_cli():
    p = G.Pty(ctx.d.cli_cmd("attach", "evil", "--ro", "--replay", "0"))
    try:
        p.expect(r"attached to evil read-only")
        p.send(b"\x05cr")
        p.expect(r"after")
        p.read_for(0.5)
        p.send(b"\x05c.")
        p.wait(10)
        check_replay("ttyhub attach, Ctrl-E c r", p.transcript)
    finally:
        p.close()


def t_replay_ssh():
    t, ch, out = ssh_session("evil+ro+replay=all", want=rb"after")
    try:
        out += read_until(ch, None, timeout=3, quiet=0.5)
        check_replay("SSH attach +replay=all", out)
        ch.send(b"\x05cr")
        more = read_until(ch, rb"after[^\n]*\n(.|\n)*after", timeout=10)
        check_replay("SSH Ctrl-E c r", more)
    finally:
        t.close()


# ---------------------------------------------------------------- lists, notices, menu


def t_cli_lists():
    for args in (("list",), ("list", "--json"), ("who", "evil")):
        assert_clean("ttyhub " + " ".join(args), cli_ok(*args))


def t_notices():
    """Users named with escapes come and go and take over; watchers are told, cleanly."""
    con = escaped(CL_NAME)
    w_cli = G.Pty(ctx.d.cli_cmd("attach", con, "--ro", "--replay", "0"))
    w_ssh = None
    evil = None
    try:
        w_cli.expect(r"attached to \S+ read-only")
        w_b = hub.BrokerClient(ctx.d.socket)
        w_b.send({"type": "attach", "console": con, "mode": "ro", "replay": 0})
        w_b.expect_type("attached")
        # (Such a name is no SSH user name: "attach NAME" it is, or the menu.)
        tw, w_ssh, sout = ssh_session("console", key="bob", command="attach %s --ro" % con,
                                      want=rb"attached to \S+ read-only")
        # alice (a key comment full of escapes) attaches read-write over SSH ...
        ta, a, aout = ssh_session("console", key="alice", command="attach " + con,
                                  want=rb"attached to \S+ read-write")
        sout += read_until(w_ssh, rb"al\S* [^\r\n]*attached read-write", timeout=10)
        # ... and a local client with an escape-laden client name forces.
        evil = hub.BrokerClient(ctx.d.socket, hello=False)
        evil.send({"type": "hello", "version": 1, "client": CLIENT_NAME})
        evil.expect_type("hello")
        evil.send({"type": "attach", "console": con, "mode": "force", "replay": 0})
        evil.expect_type("attached")
        who_cli = cli_ok("who", con)
        who_ssh = exec_ssh("who", con)
        evil.send({"type": "detach"})
        evil.expect_type("detached")
        aout += read_until(a, rb"took write access", timeout=10)
        ta.close()
        # The writer's detach goes to every watcher; alice's, now a watcher, to the writer
        # only (there is none).
        sout += read_until(w_ssh, rb"took write access(.|\n)*\(the writer\) detached",
                           timeout=10)
        w_cli.read_for(1.0)
        notices = []
        w_b.sock.settimeout(0.5)
        try:
            while True:
                m = w_b.pump()
                if m and m["type"] == "notice":
                    notices.append(m["text"])
        except socket.timeout:
            pass
        print("  a notice as seen over SSH: %r"
              % re.search(rb"\[ttyhub\][^\r\n]*took write access[^\r\n]*", sout).group(0),
              flush=True)
        assert any("took write access" in n for n in notices), notices
        for what, b in (("CLI watcher", w_cli.transcript), ("SSH watcher", sout),
                        ("SSH writer (alice)", aout)):
            assert_clean(what, b)
            assert b"took write access" in b, (what, b)
        # Others see a local client as "local admin": its (escape-laden) client name is for
        # the logs only; the SSH principal's comment is shown, escaped.
        for what, b in (("ttyhub who", who_cli), ("SSH who", who_ssh)):
            assert_clean(what, b)
            assert b"al\\x" in b and b"local admin" in b, (what, b)
            assert b"cli\\x" not in b, (what, b)
        for n in notices:
            assert_clean("broker notice", n.encode())
        tw.close()
        w_b.close()
    finally:
        w_cli.close()
        if evil:
            evil.close()


def t_ssh_lists_and_menu():
    for cmd in (("list",), ("list", "--json"), ("who", "evil")):
        assert_clean("SSH " + " ".join(cmd), exec_ssh(*cmd))
    t, ch, out = ssh_session("console", want=rb"Select a console")
    try:
        assert_clean("SSH menu", out)
        # Listed escaped; the menu escapes the (escaped) name once more for display.
        shown = escaped(CL_NAME).encode()
        assert shown in out or escaped(shown).encode() in out, out
        banner = t.get_banner()
        assert_clean("SSH banner", banner or b"")
        assert_clean("SSH server version", t.remote_version.encode())
    finally:
        t.close()


def t_user_names():
    """User names that are no console name open the menu; they are never echoed raw."""
    names = ["evil\x1b]0;U\x07", "evil+\x1b[31m", "console\u009b", "\u009b\u009d",
             b"ev\x9b\xff", b"\x1b]0;x\x07\xc2"]
    problems = []
    for user in names:
        t, ch, out = ssh_session(user, want=None)
        try:
            out += read_until(ch, None, timeout=10, quiet=1.0)
        finally:
            t.close()
        v = violations(out)
        if v:
            problems.append("user %r: raw bytes in the session: %r" % (user, v))
        if b"Select a console" not in out:
            problems.append("user %r: no console menu but %r" % (user, out[-300:]))
    # OpenSSH refuses control characters in user names itself; U+009B it sends.
    r = sshhub.run_ssh(ctx.front, ctx.keys["alice"][0], "console\u009b", "list")
    if r.returncode != 0 or violations(r.stdout + r.stderr):
        problems.append("OpenSSH as console+U+009B: %r" % r)
    log = ctx.front.log()
    for audit in ("user=evil\\x1b]0;U\\x07 ", "user=console\\xc2\\x9b ",
                  "user=ev\\x9b\\xff "):
        if audit not in log:
            problems.append("no audit line with %s" % audit)
    assert not problems, "\n".join(problems)


def t_logs():
    for name, text in (("ttyhub-sshd log", ctx.front.log_path), ("ttyhubd log", ctx.d.log_path)):
        with open(text, "rb") as f:
            assert_clean(name, f.read())
    marked = 0
    for fn in os.listdir(os.fsencode(ctx.logdir)):
        assert_clean("console log file name %r" % fn, fn)
        with open(os.path.join(os.fsencode(ctx.logdir), fn), "rb") as f:
            markers = re.findall(rb"(?m)^\[ttyhub\] [^\n]*", f.read())
        marked += bool(markers)  # only consoles someone attached to have markers
        for m in markers:
            assert_clean("console log marker", m)
    assert marked >= 2, "attach markers in only %d console logs" % marked


def t_alive():
    assert ctx.d.alive(), ctx.d.log()[-3000:]
    assert ctx.front.alive(), ctx.front.log()[-3000:]


def main():
    res = runner.Runner()
    t_start = time.monotonic()
    wd = ctx.wd = hub.workdir("inj")
    xmldir = os.path.join(wd, "xml")
    os.mkdir(xmldir)
    ctx.logdir = os.path.join(wd, "logs")
    os.mkdir(ctx.logdir)
    ctx.guests = {}
    for n, first in (("evil", EVIL), ("cl", b"hello from cl\n"), ("cf", b"hello from cf\n"),
                     ("vm", b"hello from vm\n"), ("lv", b"hello from lv\n"),
                     ("esc", b"hello from esc\n")):
        ctx.guests[n] = EvilGuest(os.path.join(wd, n + ".sock"), first)
    with open(os.path.join(xmldir, "vm.xml"), "w", encoding="utf-8") as f:
        f.write(hub.domain_xml(
            name=VM_NAME + "&#x9d;", uuid="11111111-2222-3333-4444-000000000001",
            path=os.path.join(wd, "vm.sock"), alias=VM_ALIAS))
    with open(os.path.join(xmldir, "esc.xml"), "w", encoding="utf-8") as f:
        f.write(hub.domain_xml(
            name="esc&#x1b;]0;pwn&#x7;", uuid="11111111-2222-3333-4444-000000000002",
            path=os.path.join(wd, "esc.sock"), alias="serial0"))
    with open(os.path.join(xmldir, LV_NAME + ".xml"), "w", encoding="utf-8") as f:
        f.write(hub.domain_xml(
            name=LV_NAME, uuid="11111111-2222-3333-4444-000000000003",
            path=os.path.join(wd, "lv.sock"), alias="serial0"))
    conf = os.path.join(wd, "ttyhubd.conf")
    with open(conf, "wb") as f:
        f.write(b"console = " + CF_NAME + b"=" + os.fsencode(wd) + b"/cf.sock\n")
    ctx.d = hub.Daemon(wd, "--domain-xml", xmldir, "--config", conf,
                       "--console", "evil=" + os.path.join(wd, "evil.sock"),
                       b"--console", CL_NAME + b"=" + os.fsencode(wd) + b"/cl.sock",
                       "--log-dir", ctx.logdir, "--front-user", "root")
    ctx.d.start()
    try:
        ctx.d.wait_for(lambda: len([c for c in ctx.d.list()["consoles"]
                                    if c["state"] == "connected"]) == 5,
                       what="5 consoles connected")
        ctx.keys = {"alice": sshhub.make_key(wd, "alice", comment=KEY_COMMENT),
                    "bob": sshhub.make_key(wd, "bob")}
        ctx.pkeys = {n: paramiko.Ed25519Key.from_private_key_file(k[0])
                     for n, k in ctx.keys.items()}
        ctx.front = sshhub.SshFront(os.path.join(wd, "sshd"), ctx.d.socket,
                                    ['consoles="*:rw" ' + ctx.keys[n][1] for n in ctx.keys])
        for name, fn in [(n, f) for n, f in globals().items() if n.startswith("t_")]:
            res.run(name[2:].replace("_", " "), fn)
    finally:
        ctx.d.stop()
        for g in ctx.guests.values():
            g.close()
    print("figure: test_injection run time = %.1f s" % (time.monotonic() - t_start), flush=True)
    res.finish(wd)


if __name__ == "__main__":
    main()
