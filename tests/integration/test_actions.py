#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Rescue actions (sysrq, nmi, reset, powerdown) on a real QEMU guest given as --qmp, and
on a plain --console socket (fake-guest) that cannot do them.

* `ttyhub sysrq vm h`: the break and the key reach the guest, which prints "sysrq: HELP";
  everyone attached (a CLI attach and a raw broker client) gets "local admin sent sysrq h",
  the console history (replay) and the console log hold the "[ttyhub] ..." line, and
  ttyhubd's log audits it with the requester;
* `ttyhub nmi vm`: the Linux guest logs the NMI ("Uhhuh. NMI received for unknown
  reason", printed at KERN_EMERG, so the guest's quiet loglevel shows it);
* `ttyhub reset vm --yes`: the guest boots again ("guest up" a second time) and both
  attached clients got "local admin reset the guest" (QEMU runs without -no-reboot here);
* `ttyhub powerdown vm --yes`: answered and announced (the guest has no ACPI daemon, so
  nothing more is visible);
* over SSH (exec commands): a key without `sysrq` is refused with exactly the denial an
  unknown action gets (the broker's text, only the action's name differs), and its
  keystroke-free request never reaches the guest; a key with `sysrq` gets the HELP;
* escape commands over SSH (a watcher with a pty): Ctrl-E c S h gets the HELP (the "h"
  never reaches the guest as a keystroke), Ctrl-E c R asks "reset vm:serial0? [y/N]" and
  "n" cancels it, Ctrl-E c P answered "y" powers down; in the CLI attach, Ctrl-E c N;
* actions share the console's break budget: five in a row get `busy` with when to retry;
* bad input: an unknown sysrq key (bad-request listing the valid keys), any action on the
  plain --console socket (not-available, saying its source cannot), an unknown action from
  a local admin; ttyhubd keeps serving (list, and a sysrq afterwards).
"""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest as G  # noqa: E402
import hub  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402

DENIED = "action %s is not available to your key"
KEYS = "0123456789abcdefghijklmnopqrstuvwxyz"


class RebootingGuest(G.Guest):
    """A guest that reboots on reset: the harness's -no-reboot would end QEMU instead."""

    def command(self):
        return [a for a in super().command() if a != "-no-reboot"]


class Ctx:
    pass


ctx = Ctx()


def answer(c, timeout=30):
    """The next answer (not a notice or state) of broker client c."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "no answer within %g s: %r" % (timeout, c.messages[-3:])
        c.sock.settimeout(left)
        m = c.next()
        if m["type"] not in ("notice", "state"):
            c.sock.settimeout(10)
            return m


def told(c, line, timeout=30):
    """Broker client c was told: the action's line came in its output, once, and no notice
    said it again (the history line is the announcement)."""
    c.read_data_until(line, timeout=timeout)
    assert c.data.count(line) == 1, c.data[-800:]
    text = line.decode()
    again = [m for m in c.messages
             if m["type"] == "notice" and m.get("text") and m["text"] in text]
    assert not again, again


def action(c, **req):
    c.send(dict(type="action", **req))
    return answer(c)


def cli_action(*args, run=None):
    """ttyhub ARGS (or run()) for an action that must go through: a `busy` (the console's
    budget of breaks and actions is spent, t_rate_limit) is retried when the broker says."""
    while True:
        r = run() if run else ctx.d.cli(*args)
        m = re.search(rb"too many breaks and actions, try again in (\d+) s",
                      r.stderr + r.stdout)
        if r.returncode == 0 or not m:
            return r
        time.sleep(int(m.group(1)))


def escape_action(pty, keys, done, answer=None):
    """Type an action's escape KEYS on PTY (and ANSWER to its y/N question) until the broker
    announces it (DONE, a regex), retrying a `busy` when the broker says."""
    while True:
        pty.send(keys)
        if answer is not None:
            pty.expect(rb"\? \[y/N\]", timeout=10)
            pty.send(answer)
        m = pty.expect(done + rb"|too many breaks and actions, try again in (\d+) s",
                       timeout=10)
        wait = m.group(m.re.groups)
        if not wait:
            return m
        time.sleep(int(wait))


def daemon_log():
    with open(ctx.d.log_path, "rb") as f:
        return f.read().decode(errors="replace")


def console_log():
    out = ""
    for name in os.listdir(ctx.logdir):
        with open(os.path.join(ctx.logdir, name), "rb") as f:
            out += f.read().decode(errors="replace")
    return out


@runner.check("ttyhub sysrq vm h: the guest prints sysrq: HELP; everyone attached is told")
def t_sysrq_cli():
    G.sync_shell(ctx.w)
    r = cli_action("sysrq", "vm", "h")
    assert r.returncode == 0 and b"sysrq h done on vm" in r.stdout, r
    ctx.w.expect(r"local admin sent sysrq h", timeout=10)
    ctx.w.expect(r"sysrq: HELP", timeout=20)
    told(ctx.b, b"[ttyhub] local admin sent sysrq h\r\n")


@runner.check("the action is in the history, the console log and ttyhubd's audit log")
def t_sysrq_recorded():
    c = hub.BrokerClient(ctx.d.socket)
    try:
        c.send({"type": "attach", "console": "vm", "mode": "ro", "replay": "all"})
        c.read_data_until(b"[ttyhub] local admin sent sysrq h")
    finally:
        c.close()
    ctx.d.wait_for(lambda: "local admin sent sysrq h" in console_log(),
                        what="the marker in the console log")
    assert re.search(r"sysrq h on vm:serial0 by \S+", daemon_log()), daemon_log()[-2000:]


@runner.check("ttyhub nmi vm: the Linux guest logs the NMI")
def t_nmi():
    r = cli_action("nmi", "vm")
    assert r.returncode == 0 and b"nmi done on vm" in r.stdout, r
    ctx.w.expect(r"sent an NMI to the guest", timeout=10)
    ctx.w.expect(r"Uhhuh\. NMI received", timeout=20)


@runner.check("an unknown sysrq key: a clear error listing the keys; the daemon serves on")
def t_bad_key():
    r = ctx.d.cli("sysrq", "vm", "!")
    assert r.returncode == 2 and KEYS.encode() in r.stderr, r
    c = hub.BrokerClient(ctx.d.socket)
    try:
        for key in ("!", "hh", "H", None):
            req = {"console": "vm", "action": "sysrq"}
            if key is not None:
                req["key"] = key
            m = action(c, **req)
            assert m["type"] == "error" and m["code"] == "bad-request", m
            assert KEYS in m["message"], m
        m = action(c, console="vm", action="frobnicate")
        assert m == {"type": "error", "code": "denied",
                     "message": DENIED % "frobnicate"}, m
        assert ctx.d.list()["consoles"], "ttyhubd stopped serving"
    finally:
        c.close()


@runner.check("an action on a plain --console socket: not-available, saying why")
def t_plain_console():
    for args in (("nmi", "plain"), ("reset", "plain", "--yes"), ("sysrq", "plain", "h"),
                 ("powerdown", "plain", "--yes")):
        r = ctx.d.cli(*args)
        assert r.returncode == 1, r
        assert (b"this console's source cannot send %s" % args[0].encode()) in r.stderr, r
    assert ctx.d.console("plain")["state"] == "connected"
    r = ctx.d.cli("output", "plain")
    assert r.returncode == 0, r


@runner.check("over SSH, a key without sysrq is refused like an unknown action")
def t_ssh_rights():
    # ttyhub-sshd's refusal is a "[ttyhub] ..." line on the channel, and exit status 1.
    r = sshhub.run_ssh(ctx.front, ctx.nokey, "console", "sysrq", "vm", "h")
    assert r.returncode == 1, r
    assert r.stdout == b"[ttyhub] " + (DENIED % "sysrq").encode() + b"\n", r
    # The same key asking for an action that does not exist (a raw front connection
    # speaking for it, as ttyhub-sshd does): the same denial, only the name differs.
    c = hub.BrokerClient(ctx.d.socket, hello=False)
    try:
        c.send({"type": "hello", "version": 1, "client": "test-front",
                "principal": {"key": " ".join(ctx.nopub.split()[:2]), "from": "127.0.0.1"}})
        c.expect_type("hello")
        unknown = action(c, console="vm", action="frobnicate")
        sysrq = action(c, console="vm", action="sysrq", key="h")
        assert unknown["code"] == sysrq["code"] == "denied", (unknown, sysrq)
        assert unknown["message"].replace("frobnicate", "X") == \
            sysrq["message"].replace("sysrq", "X"), (unknown, sysrq)
    finally:
        c.close()
    ctx.w.expect_absent(r"sysrq: HELP", duration=2)
    # The attempt is audited with the key.
    assert re.search(r"action sysrq on vm:serial0 by nosysrq@ttyhub-test \(ssh SHA256:\S+\).* "
                     r"denied", ctx.d.log()), ctx.d.log()[-2000:]
    r = cli_action(run=lambda: sshhub.run_ssh(ctx.front, ctx.sysrqkey, "console", "sysrq",
                                              "vm", "h"))
    assert r.returncode == 0 and b"sysrq h done on vm" in r.stdout, r
    ctx.w.expect(r"\(ssh SHA256:[^)]*\) sent sysrq h", timeout=10)
    ctx.w.expect(r"sysrq: HELP", timeout=20)
    # nmi and power are rights of their own: sysrq does not give them.
    r = sshhub.run_ssh(ctx.front, ctx.sysrqkey, "console", "reset", "vm")
    assert r.returncode == 1 and (DENIED % "reset").encode() in r.stdout, r


@runner.check("escape commands over SSH and in the CLI; reset and powerdown ask y/N")
def t_escapes():
    p = G.Pty(sshhub.ssh_cmd(ctx.front, ctx.allkey, "vm"))
    try:
        p.expect(r"attached to vm:serial0")
        escape_action(p, b"\x05cSh", rb"all( \(ssh SHA256:[^)]*\))? sent sysrq h")
        p.expect(r"sysrq: HELP", timeout=20)
        ctx.w.expect(r"all \(ssh SHA256:[^)]*\) sent sysrq h", timeout=10)
        p.send(b"\x05cR")
        p.expect(r"reset vm:serial0\? \[y/N\]", timeout=10)
        p.send(b"n")
        p.expect(r"reset cancelled", timeout=10)
        escape_action(p, b"\x05cP",
                      rb"all( \(ssh SHA256:[^)]*\))? pressed the guest's power button",
                      answer=b"y")
        ctx.w.expect(r"pressed the guest's power button", timeout=10)
        assert not re.search(r"ttyhubd: reset on vm", ctx.d.log()), \
            "the cancelled reset happened"
        p.send(b"\x05c.")
        assert p.wait(10) == 0
    finally:
        p.close()
    escape_action(ctx.w, b"\x05cN", rb"local admin sent an NMI to the guest")
    ctx.w.expect(r"Uhhuh\. NMI received", timeout=20)


@runner.check("actions are rate-limited per console with breaks: busy, with when to retry")
def t_rate_limit():
    c = hub.BrokerClient(ctx.d.socket)
    try:
        answers = [action(c, console="vm", action="sysrq", key="h") for _ in range(5)]
        busy = [m for m in answers if m["type"] == "error"]
        assert busy, answers
        assert all(m["type"] in ("action-done", "error") for m in answers), answers
        for m in busy:
            assert m["code"] == "busy", m
            assert re.fullmatch(r"sysrq on vm:serial0 refused: too many breaks and actions, "
                                r"try again in \d+ s", m["message"]), m
        assert ctx.d.list()["consoles"]
    finally:
        c.close()


@runner.check("ttyhub reset/powerdown on a terminal ask y/N; anything but y cancels")
def t_cli_confirm():
    before = ctx.d.log().count(" on vm:serial0 by ")
    for action_, answer in (("reset", b"\r"), ("powerdown", b"n\r")):
        p = G.Pty(ctx.d.cli_cmd(action_, "vm"))
        try:
            p.expect(r"%s vm\? \[y/N\] " % action_)
            p.send(answer)
            p.expect(r"ttyhub: %s cancelled" % action_)
            assert p.wait(10) == 1
        finally:
            p.close()
    assert ctx.d.log().count(" on vm:serial0 by ") == before, "a cancelled action happened"


@runner.check("ttyhub reset vm: the guest boots again; everyone attached got the notice")
def t_reset():
    G.sync_shell(ctx.w)
    r = cli_action("reset", "vm", "--yes")
    assert r.returncode == 0 and b"reset done on vm" in r.stdout, r
    ctx.w.expect(r"local admin reset the guest", timeout=10)
    ctx.w.expect(r"guest up", timeout=120)
    told(ctx.b, b"[ttyhub] local admin reset the guest\r\n")
    ctx.b.read_data_until(b"guest up", timeout=30)
    G.sync_shell(ctx.w, timeout=120)


@runner.check("ttyhub powerdown vm: answered and announced")
def t_powerdown():
    r = cli_action("powerdown", "vm", "--yes")
    assert r.returncode == 0 and b"powerdown done on vm" in r.stdout, r
    ctx.w.expect(r"local admin pressed the guest's power button", timeout=10)
    told(ctx.b, b"[ttyhub] local admin pressed the guest's power button (powerdown)\r\n")


@runner.check("after all that the daemon still serves: sysrq works again")
def t_still_serving():
    G.sync_shell(ctx.w, timeout=120)
    r = cli_action("sysrq", "vm", "h")
    assert r.returncode == 0, r
    ctx.w.expect(r"sysrq: HELP", timeout=20)


def main():
    res = runner.Runner()
    ctx.wd = wd = hub.workdir("actions")
    ctx.logdir = os.path.join(wd, "logs")
    os.mkdir(ctx.logdir)
    g = RebootingGuest(wd, "vm")
    plain = os.path.join(wd, "plain.sock")
    fg = subprocess.Popen([hub.FAKE_GUEST, "--socket", plain, "--rate", "10"])
    runner.wait_until(lambda: os.path.exists(plain), 10, "the fake guest's socket")
    ctx.d = hub.Daemon(wd, "--qmp", g.qmp_sock, "--console", "plain=" + plain,
                       "--front-user", "root", "--log-dir", ctx.logdir).start()
    ctx.nokey, ctx.nopub = sshhub.make_key(wd, "nosysrq")
    ctx.sysrqkey, sysrqpub = sshhub.make_key(wd, "sysrq")
    ctx.allkey, allpub = sshhub.make_key(wd, "all", comment="all")
    # Every right but sysrq, sysrq alone, and every right.
    ctx.front = sshhub.SshFront(wd, ctx.d.socket,
                                ['consoles="vm*:rw",break,nmi,power ' + ctx.nopub,
                                 'consoles="vm*:rw",sysrq ' + sysrqpub,
                                 'consoles="vm*:rw",sysrq,nmi,power ' + allpub])
    ctx.w = ctx.b = None
    try:
        ctx.d.wait_for(lambda: ctx.d.console("vm:serial0")["state"] == "connected", timeout=30,
                       what="the guest's console")
        ctx.w = G.Pty(ctx.d.cli_cmd("attach", "vm"))
        ctx.w.expect(r"attached to vm:serial0")
        ctx.w.expect(r"guest up", timeout=120)
        ctx.b = hub.BrokerClient(ctx.d.socket)
        ctx.b.send({"type": "attach", "console": "vm", "mode": "ro"})
        ctx.b.expect_type("attached")
        res.run_checks()
    finally:
        if ctx.w:
            ctx.w.close()
        if ctx.b:
            ctx.b.close()
        ctx.front.stop()
        ctx.d.stop()
        g.stop()
        fg.kill()
        fg.wait()
    res.finish(wd)


if __name__ == "__main__":
    main()
