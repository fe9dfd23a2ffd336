#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The ttyhub CLI and ttyhubd's command line, as an operator meets them:
list (table and --json), who, break (not available until QMP), replay on
attach (N lines, all, 0, sanitised), the escape help, the terminal restored
after detach and after SIGTERM, and clear errors with exit status 2 for bad
options, unreadable sources and a socket already in use.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest as G  # noqa: E402
import hub  # noqa: E402
import pattern  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402


class Ctx:
    pass


ctx = Ctx()


def t_list_table():
    r = ctx.d.cli("list")
    assert r.returncode == 0, r
    out = r.stdout.decode()
    assert re.search(r"^NAME +STATE +BACKEND", out, re.M), out
    assert re.search(r"^fg +connected +unix .* connected to ", out, re.M), out
    assert re.search(r"^gone +waiting +unix .* waiting for .*gone\.sock to appear", out, re.M), out


def t_list_json():
    data = ctx.d.list()
    names = {c["name"]: c for c in data["consoles"]}
    assert set(names) == {"fg", "gone", "hist", "evil"}, names
    assert names["fg"]["state"] == "connected" and names["fg"]["backend"] == "unix"
    assert names["fg"]["path"] == ctx.sock
    assert data["errors"] == []


def t_list_of_many_consoles():
    """1,200 consoles: more than one frame holds.  ttyhubd sends the list in pieces
    ("more": true on all but the last), in list order (here: by name, one console per VM);
    the CLI and the SSH front join them."""
    n = 1200
    wd = os.path.join(ctx.wd, "many")
    os.mkdir(wd)
    names = ["vm%04d-s%d" % (i // 2, i % 2) for i in range(n)]
    args = []
    for i, name in enumerate(reversed(names)):  # defined out of order on purpose
        args += ["--console", "%s=%s/missing-%04d.sock" % (name, wd, i)]
    d = hub.Daemon(wd, *args, "--front-user", "root").start()
    try:
        b = hub.BrokerClient(d.socket)
        b.send({"type": "list"})
        pieces = [b.expect_type("list")]
        while pieces[-1].get("more"):
            pieces.append(b.expect_type("list"))
        b.close()
        got = [c["name"] for p in pieces for c in p["consoles"]]
        assert len(pieces) > 1, "one piece of %d consoles" % len(got)
        assert got == sorted(names), "pieces do not hold every console once, in order"
        print("figure: list of %d consoles came in %d pieces" % (n, len(pieces)))

        listed = [c["name"] for c in d.list()["consoles"]]
        assert listed == sorted(names), (len(listed), listed[:3])
        r = d.cli("list")
        assert r.returncode == 0, r.stderr
        rows = [line.split()[0] for line in r.stdout.decode().splitlines()[1:]]
        assert rows == sorted(names), (len(rows), rows[:3])

        key, pub = sshhub.make_key(wd, "many")
        front = sshhub.SshFront(os.path.join(wd, "sshd"), d.socket,
                                ['consoles="vm0*:ro" ' + pub])
        try:
            r = sshhub.run_ssh(front, key, "console", "list", "--json")
            assert r.returncode == 0, r
            ssh_listed = [c["name"] for c in json.loads(r.stdout)["consoles"]]
            # vm0000..vm0599: vm0* matches all 1,200.
            assert ssh_listed == sorted(names), (len(ssh_listed), ssh_listed[:3])
            r = sshhub.run_ssh(front, key, "console", "list")
            assert r.returncode == 0, r
            rows = [line.split()[0] for line in r.stdout.decode().splitlines()[1:]]
            assert rows == sorted(names), (len(rows), rows[:3])
        finally:
            front.stop()
    finally:
        d.stop()


def t_who_and_writer_in_list():
    w = subprocess.Popen(ctx.d.cli_cmd("attach", "fg"), stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ctx.d.wait_for(lambda: ctx.d.console("fg")["writer"], what="writer in list")
        r = ctx.d.cli("who", "fg")
        assert r.returncode == 0, r
        # Local admins see who a local writer is; everyone sees only "local admin".
        assert re.search(rb"^writer +local admin \(root, pid %d\)" % w.pid, r.stdout,
                         re.M), r.stdout
        listing = ctx.d.cli("list").stdout
        assert re.search(rb"^fg .*local admin", listing, re.M), listing
        assert b"pid %d" % w.pid not in listing, listing
    finally:
        w.stdin.close()
        w.wait(10)
    r = ctx.d.cli("who", "fg")
    assert b"(nobody attached)" in r.stdout, r.stdout


def t_break_needs_a_control_channel():
    r = ctx.d.cli("break", "fg")
    assert r.returncode == 1
    assert re.search(rb"serial break is not available for fg: .*no QEMU control channel",
                     r.stderr), r.stderr


def attach_capture(console, *args):
    """Attach read-only with a pipe as stdin; detach at once by closing stdin."""
    p = subprocess.Popen(ctx.d.cli_cmd("attach", console, "--ro", *args), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(0.3)
    p.stdin.close()
    out = p.stdout.read()
    assert p.wait(10) == 0, out
    return out


def t_replay():
    """'hist' wrote exactly 100 lines (0..99) and went away; its ring keeps them."""
    def seqs(out):
        chk = pattern.check_lines(out)
        return (chk["first"], chk["last"], chk["lines"]) if chk["lines"] else None
    assert seqs(attach_capture("hist", "--replay", "3")) == (97, 99, 3)
    assert seqs(attach_capture("hist", "--replay", "all")) == (0, 99, 100)
    assert seqs(attach_capture("hist", "--replay", "0")) is None
    assert seqs(attach_capture("hist")) == (90, 99, 10)  # the default is 10 lines
    out = attach_capture("hist")
    assert b"console is waiting" in out, out  # and it says why nothing new comes
    r = ctx.d.cli("attach", "fg", "--replay", "lots")
    assert r.returncode == 2 and b"--replay lots" in r.stderr, r


def t_replay_is_sanitised():
    """Replayed guest output loses its escape sequences; the live stream does not."""
    c = hub.BrokerClient(ctx.d.socket)
    c.send({"type": "attach", "console": "evil", "mode": "ro", "replay": "all"})
    c.expect_type("attached")
    c.read_data_until(b"after", timeout=5)
    assert b"\x1b" not in c.data and b"\x07" not in c.data and b"\x9b" not in c.data, c.data
    assert b"before" in c.data and b"after" in c.data and b"title" not in c.data, c.data
    c.close()
    ctx.live.read_data_until(b"after", timeout=5)
    assert ctx.live.data == b"before\x1b]0;title\x07\x1b[31m\x9b2Jafter\n", ctx.live.data


def t_escape_help_and_terminal_restore():
    shell = "stty -a | tr -s ' ' | grep -o -- '-\\?icanon'; %s; echo EXIT=$?; " \
            "stty -a | grep -o -- '-\\?icanon'; sleep 30" % " ".join(ctx.d.cli_cmd("attach", "fg"))
    p = G.Pty(["/bin/sh", "-c", shell])
    try:
        p.expect(r"icanon")
        p.expect(r"attached to fg read-write \(1 attached\); Ctrl-E c \? for help")
        p.send(b"\x05c?")
        for cmd in [r"\.", "f", "a", "s", "w", "r", "b", r"\?"]:
            p.expect(r"Ctrl-E c %s " % cmd)
        p.send(b"\x05c.")
        p.expect(r"EXIT=0")
        p.expect(r"\r\n(-?icanon)")
        assert p.transcript.endswith(b"icanon\r\n") or b"\nicanon" in p.transcript[-40:], \
            "terminal not restored after detach: %r" % p.transcript[-200:]
        assert b"-icanon" not in p.transcript[-60:]
    finally:
        p.close()


def t_terminal_restored_on_sigterm():
    shell = "%s; echo EXIT=$?; stty -a | grep -o -- '-\\?icanon'; sleep 30" % \
        " ".join(ctx.d.cli_cmd("attach", "fg", "--ro"))
    p = G.Pty(["/bin/sh", "-c", shell])
    try:
        p.expect(r"attached to fg read-only")
        out = subprocess.run(["pgrep", "-f", "--newest", "ttyhub --broker %s attach fg --ro"
                              % ctx.d.socket], capture_output=True)
        pid = int(out.stdout.split()[0])
        os.kill(pid, signal.SIGTERM)
        p.expect(r"Terminated: detaching")
        p.expect(r"EXIT=1")
        m = p.expect(r"(-?icanon)\r?\n")
        assert m.group(1) == b"icanon", "terminal left raw after SIGTERM"
    finally:
        p.close()


def t_config_file_and_reload():
    """--config, and SIGHUP: consoles and attached clients stay, changes apply."""
    conf = os.path.join(ctx.wd, "reload.conf")
    with open(conf, "w") as f:
        f.write("# test\nconsole = fg=%s\nreplay = 0\n" % ctx.sock)
    # fg already has a broker: like QEMU, the fake guest leaves this one in its backlog,
    # which is enough for a console that can be attached and listed.
    d = hub.Daemon(ctx.wd, "--config", conf, name="ttyhubd-conf").start()
    try:
        d.wait_for(lambda: (d.console("fg") or {}).get("state") in ("connected", "waiting"),
                   what="fg from the configuration file")
        assert d.console("fg")["origin"] == "--console option"
        c = hub.BrokerClient(d.socket)
        c.send({"type": "attach", "console": "fg", "mode": "ro"})
        c.expect_type("attached")
        with open(conf, "w") as f:
            f.write("console = fg=%s\nconsole = extra=/nonexistent/extra.sock\n" % ctx.sock)
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for(lambda: d.console("extra"), what="console added by reload")
        assert [x["name"] for x in d.list()["consoles"]] == ["extra", "fg"]  # name order
        who = d.cli("who", "fg").stdout
        assert b"watcher" in who, who  # the attached client is still there
        with open(conf, "w") as f:
            f.write("console = fg=%s\nreplay = lots\n" % ctx.sock)
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for(lambda: "nothing changed" in d.log(), what="bad config refused")
        assert re.search(r"reload\.conf:2: --replay lots", d.log()), d.log()
        assert d.console("extra"), "a bad configuration changed the consoles"
        c.close()
    finally:
        d.stop()


def t_cli_usage_errors():
    for args, want in [(["frob"], rb"unknown command 'frob'"),
                       (["attach"], rb"needs one console name"),
                       (["list", "extra"], rb"takes no console name"),
                       (["attach", "fg", "--escape", "zz"], rb"--escape zz"),
                       (["list", "--bogus"], rb"unknown option")]:
        r = ctx.d.cli(*args)
        assert r.returncode == 2, (args, r)
        assert re.search(want, r.stderr), (args, r.stderr)
    r = subprocess.run([hub.TTYHUB, "--broker", "/nonexistent/sock", "list"], capture_output=True)
    assert r.returncode == 1 and b"is ttyhubd running?" in r.stderr, r


def t_daemon_option_errors():
    cases = [
        (["--ring-size", "lots"], rb"--ring-size lots: expected a size"),
        (["--console", "nopath"], rb"--console nopath: expected NAME=/absolute/path"),
        (["--domain-xml", "/nonexistent-dir"], rb"--domain-xml /nonexistent-dir"),
        (["--bogus"], rb"--bogus is unknown"),
        (["--replay", "-1"], rb"--replay -1"),
        (["--front-user", "no-such-user-xyz"], rb"no such user"),
        (["--socket", ctx.d.socket], rb"in use: another ttyhubd is running"),
    ]
    for args, want in cases:
        r = subprocess.run([hub.TTYHUBD, "--socket", os.path.join(ctx.wd, "other.sock")] + args,
                           capture_output=True, timeout=10)
        assert r.returncode != 0, (args, r)
        assert re.search(want, r.stderr), (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) <= 2, r.stderr
    assert ctx.d.alive()


def main():
    res = runner.Runner()
    ctx.wd = hub.workdir("cli")
    ctx.sock = os.path.join(ctx.wd, "fg.sock")
    fg = subprocess.Popen([hub.FAKE_GUEST, "--socket", ctx.sock, "--rate", "3000",
                           "--stats", ctx.sock + ".stats"])
    hist = os.path.join(ctx.wd, "hist.sock")
    hfg = subprocess.Popen([hub.FAKE_GUEST, "--socket", hist, "--bytes", "6400",
                            "--stats", hist + ".stats"])
    # A "guest" whose history holds terminal escapes (OSC title, CSI, 8-bit CSI, BEL).
    evil = os.path.join(ctx.wd, "evil.sock")
    with open(evil + ".bytes", "wb") as f:
        f.write(b"before\x1b]0;title\x07\x1b[31m\x9b2Jafter\n")
    efg = subprocess.Popen(["socat", "-u", "SYSTEM:sleep 1; cat %s.bytes; sleep 30" % evil,
                            "UNIX-LISTEN:" + evil])
    deadline = time.monotonic() + 5
    while not (os.path.exists(hist) and os.path.exists(evil)) and time.monotonic() < deadline:
        time.sleep(0.02)
    ctx.d = hub.Daemon(ctx.wd, "--console", "fg=" + ctx.sock,
                       "--console", "gone=" + os.path.join(ctx.wd, "gone.sock"),
                       "--console", "hist=" + hist, "--console", "evil=" + evil).start()
    try:
        # Attached before the evil guest speaks: it must get the live bytes unchanged.
        ctx.live = hub.BrokerClient(ctx.d.socket)
        ctx.live.send({"type": "attach", "console": "evil", "mode": "ro", "replay": 0})
        ctx.live.expect_type("attached")
        assert hfg.wait(10) == 0
        ctx.d.wait_for(lambda: (ctx.d.console("fg") or {}).get("state") == "connected",
                       what="fg connected")
        time.sleep(1.0)  # some history for replay
        for name, fn in [(n, f) for n, f in globals().items() if n.startswith("t_")]:
            res.run(name[2:].replace("_", " "), fn)
    finally:
        ctx.d.stop()
        for p in (fg, efg):
            p.terminate()
            p.wait()
    res.finish(ctx.wd)


if __name__ == "__main__":
    main()
