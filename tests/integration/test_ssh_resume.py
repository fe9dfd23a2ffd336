#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""ttyhub-sshd across restarts, end to end: a real ttyhubd holding a synthetic guest
(fake-guest: numbered lines, --input-log), a real ttyhub-sshd and the real OpenSSH client.

* ttyhub-sshd restarts: a user attached over SSH is told, when ttyhub-sshd stops with
  SIGTERM, "[ttyhub] to continue where you left off: ssh -p PORT NAME+resume=EPOCH:OFFSET@HOST"
  (the port and address the client reached); with that user name a new ttyhub-sshd continues
  the console's output with no line (no byte) missing and none twice.
* ttyhubd restarts under the fake service manager (hub.Daemon(managed=True), d.restart())
  while an SSH user is attached: the SSH session stays open, the user sees exactly one line,
  "broker restarted, nothing lost", the output goes on byte for byte as above, and the user
  still writes: keystrokes typed during the gap, and after it, reach the guest.
* A detach the user asked for prints the hint too, also while the broker is away; a channel
  whose broker stays away 60 s ends saying so (with the hint); a malformed +resume= is refused
  in words.

The console bytes a client saw are its output with ttyhub's own lines taken out (see
sshhub.console_bytes()); the bytes of two sessions joined must be the guest's stream exactly.
"""

import os
import re
import shlex
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import pattern  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402

VM = "fg"
CONSOLE = "fg:serial0"
UUID = "f00dfeed-0000-4000-8000-00000000c0de"
LINE = 64          # fake-guest's line length (its default)
RATE = 64 * 200    # bytes/s: 200 lines a second
DETACH = b"\x05c."
HINT = re.compile(rb"\[ttyhub\] to continue where you left off: ssh (?:-p (\d+) )?"
                  rb"(\S+)\+resume=([0-9a-f]{16}):(\d+)@(\S+)\r?\n")


class Ctx:
    pass


ctx = Ctx()


class Client(sshhub.SshClient):
    """OpenSSH (no tty: ssh -T) as USER, its output collected by a thread."""

    def __init__(self, user, front=None, argv=None):
        front = front or ctx.front
        self.user = user or argv[-1]
        super().__init__(argv or sshhub.ssh_cmd(front, ctx.key, user, tty=False),
                         name="ssh as %s" % self.user)


def after_attached(c):
    """The client's output after its "attached to" line."""
    m = c.wait_for(rb"\[ttyhub\] attached to " + re.escape(CONSOLE.encode()) + rb"[^\n]*\n")
    return m.end()


def check_stream(data, what, min_lines=10):
    """DATA must be the guest's lines, in order, none missing, none twice, none cut."""
    r = pattern.check_lines(data, tag=VM, line_length=LINE)
    if r["gaps"] or r["reorders"] or r["corrupt"] or r["lines"] < min_lines:
        raise AssertionError("%s: %r\nfirst 600 bytes %r\nlast 600 bytes %r"
                             % (what, r, data[:600], data[-600:]))
    return r


def input_log():
    try:
        with open(ctx.input_log, "rb") as f:
            return f.read()
    except OSError:
        return b""


def wait_idle(timeout=20):
    """Nobody attached to the console (the previous check's sessions are gone)."""
    ctx.d.wait_for(lambda: (lambda c: c is not None and c["writer"] is None
                            and c["watchers"] == 0)(ctx.d.console(CONSOLE)),
                   timeout=timeout, what="nobody attached")


# ---------------------------------------------------------------- checks


def t_sshd_restart_hint_and_resume():
    """SIGTERM to ttyhub-sshd: the hint; a new ttyhub-sshd continues with no duplicate and no
    missing line."""
    wait_idle()
    old_port = ctx.front.port
    c = Client(VM + "+replay=5")
    try:
        start = after_attached(c)
        c.lines_after(start, 50)
        rc = ctx.front.stop()
        assert rc == 0, "ttyhub-sshd exited with %s on SIGTERM:\n%s" % (rc, ctx.front.log()[-2000:])
        m = c.wait_for(HINT, timeout=10, start=start)
        assert c.wait(20) != 0, "ssh exited 0 after the server stopped"
        out = c.data()
        assert re.search(rb"\[ttyhub\] ttyhub-sshd is stopping", out), out[-800:]
        port, name, _, _, host = m.groups()
        assert port is not None and int(port) == old_port, (port, old_port)
        assert host == b"127.0.0.1", host
        assert name == CONSOLE.encode(), name
        first = sshhub.console_bytes(out[start:m.start()], LINE)
    finally:
        c.close()
        if not ctx.front.alive():
            ctx.front.start()  # a new ttyhub-sshd (a new port)
    # The hint's own command line, as the user would paste it: only the port is the new
    # ttyhub-sshd's (a test cannot bind the old one again safely) and our options go first.
    argv = shlex.split(m.group(0)[m.group(0).index(b"ssh "):].decode())
    assert argv[:3] == ["ssh", "-p", port.decode()] and len(argv) == 4, argv
    argv = ["ssh"] + [a for o in sshhub.SSH_DEFAULT_OPTIONS for a in ("-o", o)] + \
        ["-i", ctx.key, "-T", "-p", str(ctx.front.port), argv[3]]
    c2 = Client(None, argv=argv)
    try:
        start2 = after_attached(c2)
        c2.lines_after(start2, 50)
        second = sshhub.console_bytes(c2.data()[start2:], LINE)
    finally:
        c2.close()
    check_stream(first + second, "the stream across the ttyhub-sshd restart", min_lines=100)
    # The second session started exactly where the hint said: no replay of whole lines
    # before it (a replay would repeat lines of the first, which check_stream refuses).


def t_broker_restart_keeps_session():
    """ttyhubd restarts under an attached SSH user: one line, the output goes on, and the
    user still writes (keystrokes of the gap included)."""
    wait_idle()
    c = Client(VM + "+replay=5")
    try:
        start = after_attached(c)
        assert b"read-write" in c.data()[:start], c.data()[:start]
        c.lines_after(start, 30)
        c.send(b"before-restart\n")
        runner.wait_until(lambda: b"before-restart" in input_log(), 20,
                          "keystrokes before the restart")
        mark = len(c.data())
        # Typed while no broker runs: held by ttyhub-sshd, sent after the re-attach.
        ctx.d.restart(sig=signal.SIGTERM, between=lambda: c.send(b"during-gap\n"))
        line = c.wait_for(rb"\[ttyhub\] broker restarted, nothing lost\r?\n", start=start)
        c.lines_after(line.end(), 30)
        c.send(b"after-restart\n")
        runner.wait_until(lambda: b"after-restart" in input_log(), 20,
                          "keystrokes after the restart")
        log = input_log()
        assert b"during-gap" in log, log[-300:]
        order = [log.index(w) for w in (b"before-restart", b"during-gap", b"after-restart")]
        assert order == sorted(order), log[-300:]
        assert c.proc.poll() is None, "the SSH session ended"
        out = c.data()
        # Exactly one line: no "console is gone", no announcement of our own return.
        notices = re.findall(rb"\[ttyhub\] [^\n]*", out[mark:])
        assert notices == [line.group(0).rstrip(b"\r\n")], notices
        check_stream(sshhub.console_bytes(out[start:], LINE),
                     "the stream across the broker restart",
                     min_lines=60)
    finally:
        c.close()


def t_detach_prints_hint():
    wait_idle()
    c = Client(VM + "+replay=0")
    try:
        start = after_attached(c)
        c.lines_after(start, 5)
        c.send(DETACH)
        m = c.wait_for(HINT, start=start)
        assert m.group(2) == CONSOLE.encode(), m.group(0)
        assert int(m.group(1)) == ctx.front.port, m.group(0)
        assert c.wait(20) == 0, "ssh exit status after a detach"
        assert b"[ttyhub] detached" in c.data(), c.data()[-500:]
    finally:
        c.close()


LOST = "the console broker went away; reconnecting"


def broker_gap(during):
    """Stop ttyhubd, run DURING() once ttyhub-sshd noticed (its channel is reconnecting),
    start ttyhubd again (as the harness can)."""
    before = ctx.front.log().count(LOST)

    def gap():
        runner.wait_until(lambda: ctx.front.log().count(LOST) > before, 20,
                   "ttyhub-sshd to notice the broker went away")
        during()

    ctx.d.restart(sig=signal.SIGTERM, between=gap)


def t_detach_during_gap():
    """The escape detach works while the broker is away: the hint, exit status 0."""
    wait_idle()
    c = Client(VM + "+replay=0")
    try:
        start = after_attached(c)
        c.lines_after(start, 5)

        def during():
            c.send(DETACH)
            m = c.wait_for(HINT, start=start, timeout=20)
            assert m.group(2) == CONSOLE.encode(), m.group(0)
            assert c.wait(20) == 0, "ssh exit status after a detach in the gap"

        broker_gap(during)
        assert b"[ttyhub] detached" in c.data(), c.data()[-500:]
    finally:
        c.close()


def t_gives_up_after_60s():
    """No broker for 60 s: the channel ends with a line saying so, and the hint."""
    wait_idle()
    c = Client(VM + "+replay=0")
    try:
        start = after_attached(c)
        c.lines_after(start, 5)

        def during():
            t0 = time.monotonic()
            c.wait_for(rb"\[ttyhub\] ttyhubd did not come back within 60 s; giving up\r?\n",
                       start=start, timeout=120)
            waited = time.monotonic() - t0
            assert waited > 50, "gave up after %.1f s" % waited
            c.wait_for(HINT, start=start, timeout=10)
            assert c.wait(20) == 1, "ssh exit status after giving up"

        broker_gap(during)
    finally:
        c.close()


def t_bad_resume_point():
    for bad in ("zz", "0123456789abcdef", "0000000000000000:1", "0123456789abcdef:-1"):
        r = sshhub.run_ssh(ctx.front, ctx.key, VM + "+resume=" + bad)
        out = r.stdout + r.stderr
        assert r.returncode == 1, (bad, r)
        assert b"bad resume point in the user name" in out, (bad, out)


def main():
    res = runner.Runner()
    ctx.wd = hub.workdir("ssh-resume")
    xmldir = os.path.join(ctx.wd, "xml")
    os.mkdir(xmldir)
    sock = os.path.join(ctx.wd, "fg.sock")
    ctx.input_log = os.path.join(ctx.wd, "fg.input")
    guest = subprocess.Popen([hub.FAKE_GUEST, "--socket", sock, "--rate", str(RATE), "--tag", VM,
                              "--input-log", ctx.input_log])
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.02)
        with open(os.path.join(xmldir, "fg.xml"), "w") as f:
            f.write(hub.domain_xml(name=VM, uuid=UUID, path=sock))
        ctx.d = hub.Daemon(ctx.wd, "--domain-xml", xmldir, "--front-user", "root",
                           managed=True).start()
        ctx.d.wait_for(lambda: (ctx.d.console(CONSOLE) or {}).get("state") == "connected",
                       what="the guest connected")
        ctx.key, pub = sshhub.make_key(ctx.wd, "alice")
        ctx.front = sshhub.SshFront(os.path.join(ctx.wd, "sshd"), ctx.d.socket,
                                    ['consoles="fg*:rw" ' + pub])
        for name, fn in [(n, f) for n, f in globals().items() if n.startswith("t_")]:
            res.run(name[2:].replace("_", " "), fn)
    finally:
        if getattr(ctx, "d", None):
            ctx.d.stop()
        guest.send_signal(signal.SIGTERM)
        guest.wait()
    res.finish(ctx.wd)


if __name__ == "__main__":
    main()
