#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Session recordings (--record-dir) of a real QEMU guest's serial console.

* A session through the CLI (`ttyhub attach` on a pty): one .cast file in
  RECORD/vm/, mode 0640, whose header names the console and "local admin";
  its "i" events hold the command typed, an "r" event the pty's resize;
  `asciinema cat FILE` (on a pty: it needs a terminal) prints exactly the
  "o" events, which hold the command's answer as the client saw it.
* A session through a raw broker connection speaking for alice's key (a
  front, as ttyhub-sshd would): its "o" events are byte for byte the output
  the connection was sent, replay included; across a takeover by bob's key
  the input events are attributed ("input from alice...", the takeover
  marker, "input from bob...") and each recording's header names its own
  principal.
* A password typed after the guest printed `Password: ` (with echo off, as
  a real prompt does) reaches the guest (it counts the characters) but is
  recorded as "[redacted]", in the writer's recording and in a watcher's:
  the secret is in neither file; the next line is recorded as typed.
* `asciinema play -s 100 FILE` exits 0 for every recording.
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

DETACH = b"\x05c."
SECRET = "hunter2-Zq7"


class Ctx:
    pass


ctx = Ctx()


def key_of(pub):
    return " ".join(pub.split()[:2])


def answer(n):
    """Output line of `echo TAG$((...))X`, never its echo."""
    return rb"(?m)^" + n + rb"\r*$"


def rec_dir():
    return os.path.join(ctx.records, "vm")


def casts():
    try:
        return sorted(os.listdir(rec_dir()))
    except FileNotFoundError:
        return []


def load(name):
    """(header, [(t, type, data)]) of a recording; every line must be JSON."""
    with open(os.path.join(rec_dir(), name), encoding="utf-8") as f:
        lines = f.read().split("\n")
    assert lines[-1] == "", "the file does not end with a newline"
    header = json.loads(lines[0])
    events = [json.loads(line) for line in lines[1:-1]]
    for t, kind, data in events:
        assert isinstance(t, float) and kind in "oimr" and isinstance(data, str), (t, kind, data)
    times = [e[0] for e in events]
    assert times == sorted(times), "times go backwards"
    return header, events


def text(events, kind):
    return "".join(d for _, k, d in events if k == kind)


def new_cast(before):
    """The one recording that appeared since `before`, once ttyhubd says it ended."""
    new = [n for n in casts() if n not in before]
    assert len(new) == 1, (before, casts())
    runner.wait_until(lambda: "vm/%s ended" % new[0] in ctx.d.log(), 20,
                      "the end of recording " + new[0])
    return new[0]


def on_pty(argv, timeout=60):
    """Run argv on a pty to its end; returns (exit status, everything it printed)."""
    p = G.Pty(argv)
    p.expect_eof(timeout=timeout)
    return p.wait(10), bytes(p.transcript)


def front(name):
    """A front connection speaking for NAME's key."""
    c = hub.BrokerClient(ctx.d.socket, hello=False)
    c.send({"type": "hello", "version": 1, "client": "test-front",
            "principal": {"key": key_of(ctx.pub[name]), "from": "127.0.0.1"}})
    expect(c, "hello")
    return c


def expect(c, want, timeout=30):
    """The next message of type want, skipping notices and state changes (output piles up
    in c.data meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "no %s within %g s; last: %r" % (want, timeout, c.messages[-3:])
        c.sock.settimeout(left)
        try:
            m = c.pump()
        except TimeoutError:
            continue
        if m is None:
            continue
        if m["type"] == want:
            return m
        assert m["type"] in ("notice", "state"), "expected %s, got %r" % (want, m)


def t_cli_session():
    before = casts()
    p = G.Pty(ctx.d.cli_cmd("attach", "vm"), rows=24, cols=80)
    p.expect(r"\[ttyhub\] attached to \S+ read-write")
    G.sync_shell(p)
    p.resize(30, 100)
    p.send("echo REC$((20+1))X\r")
    p.expect(answer(b"REC21X"), timeout=30)
    p.expect(G.PROMPT, timeout=30)
    p.send(DETACH)
    p.expect(r"\[ttyhub\] detached")
    assert p.wait(10) == 0
    name = new_cast(before)
    ctx.all_casts.append(name)
    st = os.stat(os.path.join(rec_dir(), name))
    assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
    assert re.fullmatch(r"\d{8}T\d{6}Z-\d+\.cast", name), name
    header, events = load(name)
    assert header["version"] == 2 and header["console"] == "vm", header
    assert header["principal"] == "local admin", header
    typed = text(events, "i")
    assert "echo REC$((20+1))X\r" in typed, typed
    assert ("r", "100x30") in [(k, d) for _, k, d in events], events[:5]
    out = text(events, "o")
    assert re.search(r"(?m)^REC21X\r*$", out), out[-500:]
    # asciinema prints the "o" events and nothing else.
    rc, printed = on_pty(["asciinema", "cat", os.path.join(rec_dir(), name)])
    assert rc == 0, printed[-500:]
    assert printed == out.encode(), (printed[-300:], out[-300:])
    # ... which is what the user saw: every line of it is on the user's terminal (where the
    # CLI's own notices come in between).
    seen = bytes(p.transcript)
    for line in printed.split(b"\n"):
        line = line.strip(b"\r")
        assert line in seen, (line, seen[-500:])


def t_front_takeover():
    before = casts()
    a = front("alice")
    a.send({"type": "attach", "console": "vm", "mode": "rw", "replay": "all"})
    att = expect(a, "attached")
    assert att["role"] == "writer", att
    a.send_data(b"echo ALICE$((1+2))X\r")
    a.read_data_until(b"ALICE3X\r\n", timeout=30)
    alice_file = [n for n in casts() if n not in before]
    assert len(alice_file) == 1, alice_file

    b = front("bob")
    b.send({"type": "attach", "console": "vm", "mode": "force", "replay": 0})
    att = expect(b, "attached")
    assert att["role"] == "writer", att
    bob_file = [n for n in casts() if n not in before + alice_file]
    assert len(bob_file) == 1, bob_file
    b.send_data(b"echo BOB$((2+3))X\r")
    a.read_data_until(b"BOB5X\r\n", timeout=30)
    b.read_data_until(b"BOB5X\r\n", timeout=30)
    # Alice's end: everything she was sent is in her recording (a `who` round trip first,
    # so the broker has sent her all the output it had).
    a.send({"type": "who"})
    expect(a, "who")
    a.send({"type": "detach"})
    expect(a, "detached")
    b.send({"type": "detach"})
    expect(b, "detached")
    name = new_cast(before + bob_file)
    assert name == alice_file[0]
    ctx.all_casts.append(name)
    header, events = load(name)
    assert header["principal"].startswith("alice@ttyhub-test (ssh SHA256:"), header
    out = text(events, "o")
    assert out.encode() == a.data, "the recording's output is not what alice was sent"
    # Attribution: alice's typing, the takeover, bob's typing, in that order.
    marks = [(k, d) for _, k, d in events if k in "mi"]
    i_alice = marks.index(("i", "echo ALICE$((1+2))X\r"))
    i_bob = marks.index(("i", "echo BOB$((2+3))X\r"))
    from_alice = [j for j, (k, d) in enumerate(marks)
                  if k == "m" and d.startswith("input from alice@ttyhub-test (ssh SHA256:")]
    from_bob = [j for j, (k, d) in enumerate(marks)
                if k == "m" and d.startswith("input from bob@ttyhub-test (ssh SHA256:")]
    took = [j for j, (k, d) in enumerate(marks)
            if k == "m" and re.match(r"bob@ttyhub-test .* took write access from alice", d)]
    assert from_alice and from_bob and took, marks
    assert from_alice[0] < i_alice < took[0] < from_bob[0] < i_bob, marks

    runner.wait_until(lambda: "vm/%s ended" % bob_file[0] in ctx.d.log(), 20, "bob's end")
    ctx.all_casts.append(bob_file[0])
    header, events = load(bob_file[0])
    assert header["principal"].startswith("bob@ttyhub-test (ssh SHA256:"), header
    assert text(events, "o").encode() == b.data
    a.close()
    b.close()


def t_password_redacted():
    before = casts()
    c = front("bob")
    c.send({"type": "attach", "console": "vm", "mode": "rw", "replay": 0})
    expect(c, "attached")
    # A watcher records the writer's typing too, and must redact it as well.
    w = front("alice")
    w.send({"type": "attach", "console": "vm", "mode": "ro", "replay": 0})
    expect(w, "attached")
    watcher_file = [n for n in casts() if n not in before]
    assert len(watcher_file) == 2, watcher_file
    # A prompt as login and sudo print it: echo off, "Password: " at the end of the output.
    c.send_data(b"stty -echo; printf 'Password: '; read -r pw; stty echo; "
                b"echo; echo LEN${#pw}X\r")
    c.read_data_until(b"\nPassword: ", timeout=30)
    for piece in (SECRET[:4], SECRET[4:], "\r"):
        c.send_data(piece.encode())
    c.read_data_until(b"LEN%dX" % len(SECRET), timeout=30)
    c.send_data(b"echo AFTER$((3+4))X\r")
    c.read_data_until(b"AFTER7X\r\n", timeout=30)
    w.read_data_until(b"AFTER7X\r\n", timeout=30)
    for x in (c, w):
        x.send({"type": "detach"})
        expect(x, "detached")
    for name in watcher_file:
        runner.wait_until(lambda: "vm/%s ended" % name in ctx.d.log(), 20, "the end of " + name)
        ctx.all_casts.append(name)
        with open(os.path.join(rec_dir(), name), encoding="utf-8") as f:
            raw = f.read()
        assert SECRET not in raw and SECRET[:4] not in raw and SECRET[4:] not in raw, raw
        _, events = load(name)
        typed = [d for _, k, d in events if k == "i"]
        assert "[redacted]\r" in typed, (name, typed)
        # The next line is recorded as typed.
        assert "echo AFTER$((3+4))X\r" in typed, (name, typed)
    assert SECRET.encode() not in c.data  # echo was off: the guest never showed it
    c.close()
    w.close()


def t_play():
    assert ctx.all_casts
    for name in ctx.all_casts:
        # No terminal (a new session, stdin /dev/null): asciinema plays without one.
        r = subprocess.run(["asciinema", "play", "-s", "100", "-i", "0.1",
                            os.path.join(rec_dir(), name)],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=120,
                           start_new_session=True)
        assert r.returncode == 0, (name, r.returncode, r.stderr[-500:])
        assert r.stdout, name


def main():
    res = runner.Runner()
    ctx.wd = hub.workdir("rec")
    ctx.records = os.path.join(ctx.wd, "records")
    os.mkdir(ctx.records)
    ctx.all_casts = []
    ctx.pub = {}
    for k in ("alice", "bob"):
        _, ctx.pub[k] = sshhub.make_key(ctx.wd, k)
    g = G.Guest(ctx.wd, "vm")
    ctx.d = hub.Daemon(ctx.wd, "--front-user", "root", "--console", "vm=" + g.serial_sock,
                       "--record-dir", ctx.records)
    ctx.d.write_access(['consoles="vm:rw" ' + ctx.pub["alice"],
                        'consoles="vm:rw" ' + ctx.pub["bob"]])
    try:
        ctx.d.start()
        ctx.d.wait_for(lambda: (ctx.d.console("vm") or {}).get("state") == "connected",
                       timeout=30, what="the guest's console to connect")
        res.run("a CLI session: asciinema cat prints what it was sent", t_cli_session)
        res.run("a front session: its output exactly, input attributed across a takeover",
                t_front_takeover)
        res.run("a password typed after Password: is redacted", t_password_redacted)
        res.run("asciinema play -s 100 plays every recording", t_play)
        res.run("daemon still running", lambda: runner.require(ctx.d.alive(), ctx.d.log()))
    finally:
        ctx.d.stop()
        g.stop()
    res.finish(ctx.wd)


if __name__ == "__main__":
    main()
