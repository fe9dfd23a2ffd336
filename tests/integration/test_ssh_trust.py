#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""ttyhub-sshd trust boundaries, end to end: fake guests (fake-guest, --input-log) held by
ttyhubd with a small --max-clients, ttyhub-sshd in front, the real OpenSSH client.

* a user name of a 128-byte console name plus "+ro" attaches read-only (never cut to the
  bare name, which would write); a user name over 256 bytes is refused with a message;
* SSH `list`, `list --json`, `who` and notices show consoles, not the host: no socket
  path, origin, status text, local user name or pid (a local admin is "local admin");
* a key without consoles= flooding channels with a non-UTF-8 exec (`who \\xff`) gets each
  closed with an error at once, and neither root's `ttyhub list` nor another key's SSH
  `list` is locked out; a key's sessions past --max-sessions-per-key are told so;
* a serial break from a watch-only key with `break` is refused like one without `break`;
* a forbidden console and a missing one answer alike (words and exit status), and no
  earlier than the pad after the request (CHAN_UNKNOWN_PAD_USEC), so that their timings,
  which differ by the work each costs, do not tell them apart;
* the menu closes after --menu-timeout; a group18-only client cannot connect; a host key
  readable by others is refused at startup.
"""

import json
import os
import re
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest as G  # noqa: E402
import hub  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402

LONG = "l" * 120 + "ongname1"  # 128 bytes: the longest console name of a user name
assert len(LONG) == 128
MAX_CLIENTS = 12
# CHAN_UNKNOWN_PAD_USEC (ssh-front/channel.h): a "no console named" answer waits this long.
UNKNOWN_PAD = 0.020

KEYS = {
    "alice": 'consoles="alpha:rw,beta:rw,%s:rw",break' % LONG,
    "bob": 'consoles="alpha:rw"',
    "watcher": 'consoles="alpha:ro",break',
    "nobody": None,
    "many": 'consoles="beta:ro"',
}


class Ctx:
    pass


ctx = Ctx()


def line(name):
    pub = ctx.keys[name][1]
    return pub if KEYS[name] is None else KEYS[name] + " " + pub


def key(name):
    return ctx.keys[name][0]


def ssh_pty(name, user, *cmd, front=None):
    p = G.Pty(sshhub.ssh_cmd(front or ctx.front, key(name), user, *cmd))
    p.name = "ssh[%s as %s]" % (name, user[:40])
    ctx.opened.append(p)
    return p


def exec_ssh(name, *cmd, front=None, timeout=60):
    return sshhub.run_ssh(front or ctx.front, key(name), "console", *cmd, timeout=timeout)


def text(b):
    return b.decode(errors="replace")


def input_log(console):
    try:
        with open(os.path.join(ctx.wd, console[:16] + ".input"), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def host_leaks(out):
    """Host details an SSH user must not see in OUT (text)."""
    leaks = []
    for needle in [ctx.wd, ".sock", "local, pid", "(local", "pid ", "origin", "\"path\"",
                   "\"status\"", "connected to"]:
        if needle in out:
            leaks.append(needle)
    if re.search(r"(?<![\w@-])root(?![\w@-])", out):
        leaks.append("root")
    return leaks


# ---------------------------------------------------------------- checks


def t_long_user_name_keeps_ro():
    p = ssh_pty("alice", LONG + "+ro")
    m = p.expect(r"\[ttyhub\] attached to (\S+) (read-write|read-only)", timeout=30)
    assert m.group(2) == b"read-only", "attached %s:\n%r" % (m.group(2), p.transcript[-600:])
    p.send("TRUNCMARK1\r")
    p.expect(r"read-only", timeout=20)
    time.sleep(1.0)
    assert b"TRUNCMARK1" not in input_log(LONG), "a +ro user name wrote to the console"
    p.close()
    # Over 256 bytes: refused with a message, never attached.
    p = ssh_pty("alice", LONG + "+ro" + "+replay=1" * 20)
    p.expect(r"user name too long", timeout=30)
    p.expect_eof(timeout=30)
    assert b"attached to" not in p.transcript, p.transcript[-600:]


def t_list_allow_list():
    # A local admin writes alpha: its label must not reach SSH users.
    admin = hub.BrokerClient(ctx.d.socket)
    ctx.opened.append(admin)
    admin.send({"type": "attach", "console": "alpha", "mode": "rw"})
    admin.expect_type("attached")
    r = exec_ssh("alice", "list")
    assert r.returncode == 0, r
    out = text(r.stdout)
    assert re.search(r"^alpha\s+connected", out, re.M), out
    assert "local admin" in out, out
    leaks = host_leaks(out)
    assert not leaks, "list shows %r:\n%s" % (leaks, out)

    r = exec_ssh("alice", "list", "--json")
    assert r.returncode == 0, r
    data = json.loads(r.stdout)
    allowed = {"name", "vm", "uuid", "alias", "device", "target", "state", "access",
               "watchers", "writer"}
    for c in data["consoles"]:
        extra = set(c) - allowed
        assert not extra, "list --json has %r: %r" % (extra, c)
    alpha = [c for c in data["consoles"] if c["name"] == "alpha"][0]
    assert alpha["writer"] == "local admin" and alpha["access"] == "rw", alpha
    leaks = host_leaks(text(r.stdout))
    assert not leaks, "list --json shows %r:\n%s" % (leaks, text(r.stdout))

    r = exec_ssh("alice", "who", "alpha")
    assert r.returncode == 0, r
    out = text(r.stdout)
    assert re.search(r"^writer\s+local admin", out, re.M), out
    assert not host_leaks(out), out

    # Notices: an SSH user attached while the local admin comes and goes.
    p = ssh_pty("bob", "alpha+ro")
    p.expect(r"attached to alpha read-only[^\r\n]*local admin writes", timeout=30)
    admin.close()
    p.expect(r"\[ttyhub\] local admin[^\r\n]* detached", timeout=30)
    # A local admin taking over from an SSH writer: announced to everyone.
    w = ssh_pty("alice", "alpha")
    w.expect(r"attached to alpha read-write", timeout=30)
    admin2 = hub.BrokerClient(ctx.d.socket)
    ctx.opened.append(admin2)
    admin2.send({"type": "attach", "console": "alpha", "mode": "force"})
    admin2.expect_type("attached")
    p.expect(r"\[ttyhub\] local admin[^\r\n]*took write access", timeout=30)
    admin2.close()
    p.expect(r"\[ttyhub\] local admin[^\r\n]* detached", timeout=30)
    leaks = host_leaks(text(p.transcript))
    assert not leaks, "notices show %r:\n%s" % (leaks, text(p.transcript[-1500:]))
    p.close()


def t_flood_does_not_lock_out():
    procs = []
    try:
        for _ in range(3 * MAX_CLIENTS):
            procs.append(subprocess.Popen(
                sshhub.ssh_cmd(ctx.front, key("nobody"), "console", b"who \xff", tty=False),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        # While the flood runs and after: root and another key get in.
        for _ in range(3):
            r = ctx.d.cli("list")
            assert r.returncode == 0, "ttyhub list: %r" % (r,)
            r = exec_ssh("bob", "list")
            assert r.returncode == 0 and b"alpha" in r.stdout, "bob's list: %r" % (r,)
        for p in procs:
            out, err = p.communicate(timeout=90)
            assert p.returncode not in (0, None), (p.returncode, out, err)
            said = out + err
            assert b"names must be UTF-8" in said or b"too many sessions" in said, said
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    # Nothing of the flood holds a broker connection now.
    r = ctx.d.cli("list")
    assert r.returncode == 0, r


def t_sessions_per_key():
    held = []
    for i in range(3):
        p = ssh_pty("many", "beta")
        p.expect(r"attached to beta read-only", timeout=30)
        held.append(p)
    p = ssh_pty("many", "beta")
    p.expect(r"too many sessions with your key \(at most 3\)", timeout=30)
    p.expect_eof(timeout=60)
    # Another key is not affected.
    r = exec_ssh("bob", "list")
    assert r.returncode == 0, r
    for h in held:
        h.close()


def t_break_needs_write():
    p = ssh_pty("watcher", "alpha")
    p.expect(r"attached to alpha read-only", timeout=30)
    p.send(b"\x05cb")
    p.expect(r"your key may not send a serial break", timeout=20)
    p.close()
    assert "serial break sent" not in ctx.d.log(), ctx.d.log()[-2000:]


def t_forbidden_like_missing():
    for cmd in (("attach", "beta"), ("who", "beta"), ("attach", "beta", "--force")):
        forbidden = exec_ssh("bob", *cmd)
        missing = exec_ssh("bob", *[("nosuch" if a == "beta" else a) for a in cmd])
        assert forbidden.returncode == missing.returncode != 0, (forbidden, missing)
        said = [r.stdout + r.stderr for r in (forbidden, missing)]
        assert b"no console named" in said[0], said
        assert said[0].replace(b"beta", b"X") == said[1].replace(b"nosuch", b"X"), said
    # "ssh beta@host" with a terminal: the same notice, then the menu (held back alike).
    for user in ("beta", "nosuch"):
        p = ssh_pty("bob", user)
        p.expect(r"no console named '%s'; choose one:" % user, timeout=30)
        p.expect(r"Select a console", timeout=30)
        p.send("q\r")
        p.expect_eof(timeout=30)


def mux_opts(user):
    """Options for a shared connection per user name: a command over it costs a channel,
    not a handshake, so its time is close to the front's answer time."""
    return ["ControlMaster=auto", "ControlPath=%s" % os.path.join(ctx.wd, "cm-" + user),
            "ControlPersist=120"]


def mux_exit(user):
    argv = sshhub.ssh_cmd(ctx.front, key("bob"), user, tty=False, options=mux_opts(user))
    subprocess.run(argv[:1] + ["-O", "exit"] + argv[1:], stdin=subprocess.DEVNULL,
                   capture_output=True, timeout=30)


def t_forbidden_like_missing_in_time():
    # Lower bounds only: each answer no earlier than the pad.  An upper bound (forbidden
    # as fast as missing) would flake on a loaded machine; the pad makes it hold anyway.
    cases = [("console", ("attach", "beta")), ("console", ("who", "beta")),
             ("console", ("attach", "beta", "--force")), ("beta", ())]
    try:
        took = {}
        for user, cmd in cases:
            forbidden = (user, cmd)
            missing = ("nosuch" if user == "beta" else user,
                       tuple("nosuch" if a == "beta" else a for a in cmd))
            for u in {forbidden[0], missing[0]}:
                # Opens the shared connection; its own time includes the handshake.
                sshhub.run_ssh(ctx.front, key("bob"), u, *(cmd if u == "console" else ()),
                               options=mux_opts(u), timeout=60)
            said = {}
            for _ in range(5):
                for what, (u, c) in (("forbidden", forbidden), ("missing", missing)):
                    t0 = time.monotonic()
                    r = sshhub.run_ssh(ctx.front, key("bob"), u, *c, options=mux_opts(u),
                                       timeout=60)
                    dt = time.monotonic() - t0
                    out = (r.stdout + r.stderr).replace(b"beta", b"X").replace(b"nosuch", b"X")
                    assert b"no console named" in out, (what, u, c, r)
                    said.setdefault(what, set()).add((r.returncode, out))
                    took.setdefault((u, c, what), []).append(dt)
                    assert dt >= UNKNOWN_PAD, "%s %s %s answered in %.1f ms" % (
                        what, u, " ".join(c), dt * 1000)
            assert said["forbidden"] == said["missing"] and len(said["forbidden"]) == 1, said
            for u in {forbidden[0], missing[0]}:
                mux_exit(u)
        # For the log: an answer that is not held back, over the same kind of connection.
        sshhub.run_ssh(ctx.front, key("bob"), "console", "list", options=mux_opts("console"))
        t0 = time.monotonic()
        r = sshhub.run_ssh(ctx.front, key("bob"), "console", "list", options=mux_opts("console"))
        print("    list: %.1f ms; no console named: %s" % (
            (time.monotonic() - t0) * 1000,
            ", ".join("%s %s %s min %.1f ms" % (u, " ".join(c), w, min(v) * 1000)
                      for (u, c, w), v in took.items())), flush=True)
        assert r.returncode == 0, r
    finally:
        for u in ("console", "beta", "nosuch"):
            mux_exit(u)


def t_menu_timeout():
    f = sshhub.SshFront(os.path.join(ctx.wd, "sshd-menu"), ctx.d.socket,
                        [line(n) for n in KEYS], extra_args=["--menu-timeout", "2"])
    try:
        p = ssh_pty("alice", "menu", front=f)
        p.expect(r"Select a console", timeout=30)
        p.expect(r"no console chosen in 2 seconds", timeout=60)
        p.expect_eof(timeout=60)
    finally:
        f.stop()


def t_no_group18():
    r = sshhub.run_ssh(ctx.front, key("bob"), "console", "list",
                       options=["KexAlgorithms=diffie-hellman-group18-sha512",
                                "LogLevel=INFO"])
    assert r.returncode != 0 and b"alpha" not in r.stdout, r
    assert re.search(rb"no matching key exchange|kex", r.stderr, re.I), r.stderr
    r = exec_ssh("bob", "list")
    assert r.returncode == 0, r


def t_host_key_mode():
    wd = os.path.join(ctx.wd, "badkey")
    os.makedirs(wd)
    hk = os.path.join(wd, "hostkey")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hk], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True)
    os.chmod(hk, 0o644)
    with open(os.path.join(wd, "access"), "w") as f:
        f.write(line("bob") + "\n")
    os.chmod(os.path.join(wd, "access"), 0o600)
    r = subprocess.run([sshhub.SSHD, "--listen", "127.0.0.1:%d" % sshhub.free_port(),
                        "--host-key", hk, "--access", os.path.join(wd, "access"),
                        "--broker", ctx.d.socket], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    err = text(r.stderr)
    assert r.returncode != 0, (r.returncode, err)
    assert "host key" in err and "0644" in err, err
    assert stat.S_IMODE(os.stat(hk).st_mode) == 0o644  # refused, not "fixed"


def t_alive():
    assert ctx.d.alive(), ctx.d.log()[-3000:]
    assert ctx.front.alive(), ctx.front.log()[-3000:]


CHECKS = [
    ("128-byte console name + '+ro' stays read-only", t_long_user_name_keeps_ro),
    ("list, list --json, who, notices: no host details", t_list_allow_list),
    ("non-UTF-8 exec flood locks nobody out", t_flood_does_not_lock_out),
    ("--max-sessions-per-key", t_sessions_per_key),
    ("break needs write access", t_break_needs_write),
    ("forbidden console looks missing", t_forbidden_like_missing),
    ("forbidden and missing consoles answer no earlier than the pad",
     t_forbidden_like_missing_in_time),
    ("--menu-timeout closes an idle menu", t_menu_timeout),
    ("group18-only client cannot connect", t_no_group18),
    ("host key readable by others is refused", t_host_key_mode),
    ("daemons alive", t_alive),
]


def close_opened():
    """After each check: close what it opened (ctx.opened), passed or failed."""
    for p in ctx.opened:
        try:
            p.close()
        except Exception:  # noqa: BLE001
            pass
    ctx.opened = []


def main():
    res = runner.Runner()
    if not os.access(sshhub.SSHD, os.X_OK):
        print("FAIL %s is missing (build it first)" % sshhub.SSHD, flush=True)
        sys.exit(1)
    wd = ctx.wd = hub.workdir("sshtrust")
    ctx.opened = []
    guests, args = [], []
    for name in ("alpha", "beta", LONG):
        sock = os.path.join(wd, name[:16] + ".sock")
        guests.append(subprocess.Popen(
            [hub.FAKE_GUEST, "--socket", sock, "--rate", "100",
             "--input-log", os.path.join(wd, name[:16] + ".input")],
            stdin=subprocess.DEVNULL))
        args += ["--console", "%s=%s" % (name, sock)]
    d = ctx.d = hub.Daemon(wd, "--front-user", "root", "--max-clients", str(MAX_CLIENTS),
                           *args).start()
    try:
        for name in ("alpha", "beta", LONG):
            d.wait_for(lambda n=name: (d.console(n) or {}).get("state") == "connected",
                       timeout=30, what=name[:16] + " connected")
        ctx.keys = {n: sshhub.make_key(wd, n) for n in KEYS}
        ctx.front = sshhub.SshFront(os.path.join(wd, "sshd"), d.socket,
                                    [line(n) for n in KEYS],
                                    extra_args=["--max-sessions-per-key", "3",
                                                "--max-per-source", "64"])
        res.on_failure = lambda: print(
            "--- ttyhub-sshd log tail ---\n%s\n--- ttyhubd log tail ---\n%s"
            % (ctx.front.log()[-2500:], d.log()[-1500:]), flush=True)
        res.after_each = close_opened
        res.run_checks(CHECKS)
    finally:
        d.stop()
        for g in guests:
            g.terminate()
            g.wait()
    res.finish(wd)


if __name__ == "__main__":
    main()
