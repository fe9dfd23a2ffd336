#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The ttyhub CLI across a broker restart and by offset (issue 14), with a real ttyhubd and a
synthetic guest writing numbered lines (tests/fake-guest.c):

- `ttyhub attach` stays open when ttyhubd is restarted with SIGTERM, reconnects, resumes and
  prints one line; keystrokes typed while the broker is away reach the guest afterwards.
  When hub.Daemon can run ttyhubd under the fake service manager (managed=True, the fd
  store keeps the chardev and the ring), every line arrives exactly once and the line is
  "broker restarted, nothing lost"; without it the new broker has a new ring and the
  console's "restarted" notice is the line.
- A detach prints the resume hint; `attach --resume EPOCH:OFFSET` continues exactly: the
  two sessions together hold every line once, in order.  A stale epoch says so.
- `ttyhub output`: the whole ring over several requests, a negative start, --json in the
  style of GCE's getSerialPortOutput, an expired start said on stderr and in the JSON.
"""

import inspect
import json
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import pattern  # noqa: E402
import runner  # noqa: E402

LINE = 64  # fake-guest's default line length
NOTICE = re.compile(rb"\[ttyhub\] [^\n]*\n")


class Ctx:
    pass


ctx = Ctx()


def managed_supported() -> bool:
    """hub.Daemon(managed=True) with restart(): the fd store of issue 14 (helper A's)."""
    return ("managed" in inspect.signature(hub.Daemon.__init__).parameters
            and hasattr(hub.Daemon, "restart"))


class Attach:
    """A `ttyhub attach` with pipes: stdin to type into, stdout collected by a thread."""

    def __init__(self, d, *args):
        self.p = subprocess.Popen(d.cli_cmd("attach", *args), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.buf = bytearray()
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        while True:
            b = self.p.stdout.read1(65536)
            if not b:
                return
            with self.lock:
                self.buf += b

    def out(self) -> bytes:
        with self.lock:
            return bytes(self.buf)

    def wait(self, pred, timeout=20, what="output"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.out()):
                return
            if self.p.poll() is not None:
                self.t.join(5)
                if pred(self.out()):
                    return
                break
            time.sleep(0.02)
        raise AssertionError("attach: no %s (exit %r); output tail:\n%r"
                             % (what, self.p.poll(), self.out()[-2000:]))

    def type(self, b: bytes):
        self.p.stdin.write(b)
        self.p.stdin.flush()

    def finish(self, timeout=20) -> int:
        """Wait for the exit; the CLI's output holds no sanitizer report (ASan builds)."""
        rc = self.p.wait(timeout)
        self.t.join(5)
        out = self.out()
        assert b"Sanitizer" not in out and b"runtime error:" not in out, out[-3000:]
        return rc

    def detach(self, timeout=20) -> int:
        """End of input: the CLI detaches (a requested detach)."""
        self.p.stdin.close()
        return self.finish(timeout)


def strip_notices(out: bytes) -> bytes:
    """The console bytes of a CLI's stdout: every "[ttyhub] ..." line removed, with the line
    break the CLI put before it when the console's cursor was not at the start of a line.
    A break is the guest's own when it ends a whole pattern line (one starting LINE bytes
    before it with a line header)."""
    res = bytearray()
    pos = 0
    for m in NOTICE.finditer(out):
        res += out[pos:m.start()]
        pos = m.end()
        if res.endswith(b"\n") and not re.match(rb"[a-z]+ \d{12} ", bytes(res[-LINE:])):
            del res[-1]  # the CLI's break, not the guest's
    res += out[pos:]
    return bytes(res)


def lines(out: bytes, tag: str) -> dict:
    return pattern.check_lines(strip_notices(out), tag=tag)


def start_guest(wd, tag, *args):
    sock = os.path.join(wd, tag + ".sock")
    g = subprocess.Popen([hub.FAKE_GUEST, "--socket", sock, "--tag", tag] + list(args))
    ctx.guests.append(g)
    deadline = time.monotonic() + 10
    while not os.path.exists(sock):
        assert time.monotonic() < deadline, "fake-guest did not listen"
        time.sleep(0.02)
    return sock


def new_daemon(name, *args, **kw):
    wd = os.path.join(ctx.wd, name)
    os.mkdir(wd)
    return wd, (lambda *a: hub.Daemon(wd, *a, *args, **kw).start())


def connected(d, console):
    d.wait_for(lambda: (d.console(console) or {}).get("state") == "connected",
               what="%s connected" % console)


def attach_across_restart(managed):
    wd = os.path.join(ctx.wd, "restart-managed" if managed else "restart")
    os.mkdir(wd)
    # --echo: typed keys come back as output, so the keys held in the gap can be seen.
    sock = start_guest(wd, "rs", "--rate", "3000", "--echo")
    d = hub.Daemon(wd, "--console", "rs=" + sock, **({"managed": True} if managed else {}))
    d.start()
    try:
        connected(d, "rs")
        a = Attach(d, "rs", "--replay", "0")
        a.wait(lambda o: b"attached to rs read-write" in o, what="attached line")
        a.wait(lambda o: lines(o, "rs")["lines"] >= 20, what="20 lines")
        before = lines(a.out(), "rs")["last"]
        if managed:
            d.restart()
            a.type(b"held-keys-1\n")  # typed right after: held if the gap is still on
        else:
            d.stop()  # SIGTERM; the CLI keeps its session and retries
            a.type(b"held-keys-1\n")  # certainly in the gap: nobody listens
            d.start()
        want = (rb"\[ttyhub\] broker restarted, nothing lost\n" if managed
                else rb"\[ttyhub\] console rs restarted since you left")
        a.wait(lambda o: re.search(want, o), what="the resume line")
        a.wait(lambda o: b"held-keys-1" in o, what="the held keystrokes echoed")
        a.wait(lambda o: (lines(o, "rs")["last"] or 0) >= before + 40, what="40 more lines")
        out = a.out()
        assert len(re.findall(rb"\[ttyhub\] broker restarted", out)) == (1 if managed else 0), out
        assert b"discarded" not in out, out
        chk = lines(out, "rs")
        if managed:
            # Every line exactly once, in order: nothing lost, nothing replayed twice.
            assert chk["gaps"] == [] and chk["reorders"] == [] and chk["corrupt"] == 0, chk
        else:
            # A new ring: what the old broker had not read is lost, but lines go on.
            assert chk["last"] > before, chk
        assert a.detach() == 0, a.out()[-500:]
        assert re.search(rb"\[ttyhub\] to continue where you left off: ttyhub attach rs "
                         rb"--resume [0-9a-f]{16}:\d+\n", a.out()), a.out()[-500:]
        print("figure: attach across a SIGTERM restart (%s): %d lines, gaps %r"
              % ("managed, exact" if managed else "unmanaged, restarted", chk["lines"],
                 chk["gaps"][:3]))
    finally:
        d.stop()


def t_attach_survives_a_broker_restart():
    """Without the fd store (a plain ttyhubd stopped and started again): a new ring, the
    console's restarted notice, and the session goes on."""
    attach_across_restart(False)


def t_attach_survives_a_managed_restart():
    """With the fd store: exactly, every line once."""
    if not managed_supported():
        print("skipped: hub.Daemon has no managed=True/restart() (no fd store yet)")
        return
    attach_across_restart(True)


def t_escape_detach_while_the_broker_is_away():
    """The escape commands that need no broker work in the gap: detach ends the session
    (status 0) with the hint; the keys typed before it are said to be undelivered."""
    wd, start = new_daemon("gap-detach")
    sock = start_guest(wd, "gd", "--rate", "3000")
    d = start("--console", "gd=" + sock)
    try:
        connected(d, "gd")
        a = Attach(d, "gd", "--replay", "0")
        a.wait(lambda o: lines(o, "gd")["lines"] >= 5, what="5 lines")
        d.stop()
        a.type(b"lost-keys\x05c?")
        a.wait(lambda o: b"Ctrl-E c ." in o, what="the escape help in the gap")
        a.type(b"\x05c.")
        assert a.finish() == 0, a.out()[-500:]
        out = a.out()
        assert b"[ttyhub] detached while ttyhubd was away\n" in out, out[-500:]
        assert b"[ttyhub] the keystrokes typed meanwhile were not delivered\n" in out, out[-500:]
        assert re.search(rb"\[ttyhub\] to continue where you left off: ttyhub attach gd "
                         rb"--resume [0-9a-f]{16}:\d+\n$", out), out[-500:]
    finally:
        d.stop()


def t_gives_up_when_the_broker_stays_away():
    """60 s without a broker: the give-up line, status 1, and the hint.  (A minute of wall
    time: the window is the CLI's, not the test's.)"""
    wd, start = new_daemon("give-up")
    sock = start_guest(wd, "gu", "--rate", "3000")
    d = start("--console", "gu=" + sock)
    a = None
    try:
        connected(d, "gu")
        a = Attach(d, "gu", "--replay", "0")
        a.wait(lambda o: lines(o, "gu")["lines"] >= 5, what="5 lines")
        d.stop()
        t0 = time.monotonic()
        rc = a.finish(300)
        out = a.out()
        assert rc == 1, (rc, out[-500:])
        assert time.monotonic() - t0 >= 59, "gave up early"
        assert b"[ttyhub] ttyhubd did not come back within 60 s; giving up\n" in out, out[-500:]
        assert re.search(rb"\[ttyhub\] to continue where you left off: ttyhub attach gu "
                         rb"--resume [0-9a-f]{16}:\d+\n$", out), out[-500:]
    finally:
        if a:
            a.p.stdin.close()
        d.stop()


def t_resume_continues_exactly():
    wd, start = new_daemon("resume")
    sock = start_guest(wd, "rz", "--rate", "3000")
    d = start("--console", "rz=" + sock)
    try:
        connected(d, "rz")
        a = Attach(d, "rz", "--ro", "--replay", "0")
        a.wait(lambda o: lines(o, "rz")["lines"] >= 10, what="10 lines")
        assert a.detach() == 0
        first = a.out()
        m = re.search(rb"\[ttyhub\] to continue where you left off: ttyhub attach rz "
                      rb"--resume ([0-9a-f]{16}):(\d+) --ro\n", first)
        assert m, first[-500:]
        epoch, offset = m.group(1).decode(), int(m.group(2))
        # Let the guest write on while nobody watches: the ring keeps it.
        d.wait_for(lambda: json.loads(d.cli("output", "rz", "--json").stdout)["next"]
                   > offset + 20 * LINE, what="20 more lines in the ring")
        b = Attach(d, "rz", "--ro", "--resume", "%s:%d" % (epoch, offset))
        b.wait(lambda o: lines(o, "rz")["lines"] >= 30, what="30 lines after the resume")
        assert b.detach() == 0
        second = b.out()
        assert b"replaying" not in second and b"lost" not in second, second[:500]
        both = strip_notices(first) + strip_notices(second)
        chk = pattern.check_lines(both, tag="rz")
        assert chk["gaps"] == [] and chk["reorders"] == [] and chk["corrupt"] == 0, chk
        assert chk["lines"] >= 40, chk

        # A point of another epoch: the console "restarted", the normal replay follows.
        c = Attach(d, "rz", "--ro", "--replay", "2", "--resume", "0000000000000001:0")
        c.wait(lambda o: b"console rz restarted since you left" in o, what="restarted notice")
        c.detach()
        r = d.cli("attach", "rz", "--resume", "xyz")
        assert r.returncode == 2 and b"--resume xyz" in r.stderr, r
    finally:
        d.stop()


def t_output():
    wd, start = new_daemon("output")
    n = 20000  # more than one answer (8192 bytes each), ending inside a line
    sock = start_guest(wd, "ot", "--bytes", str(n))
    want = pattern.make_stream(0, n // LINE + 1, tag="ot")[:n]
    d = start("--console", "ot=" + sock)
    try:
        d.wait_for(lambda: json.loads(d.cli("output", "ot", "--json").stdout)["next"] == n,
                   what="all of the guest's bytes in the ring")
        r = d.cli("output", "ot")
        assert r.returncode == 0 and r.stdout == want and r.stderr == b"", r.stderr
        r = d.cli("output", "ot", "--start", "-640")
        assert r.returncode == 0 and r.stdout == want[-640:], r
        r = d.cli("output", "ot", "--start", "12345")
        assert r.returncode == 0 and r.stdout == want[12345:], r
        r = d.cli("output", "ot", "--json")
        j = json.loads(r.stdout)
        assert j["contents"].encode() == want, j["contents"][:100]
        assert (j["start"], j["next"]) == (0, n), j
        assert re.fullmatch(r"[0-9a-f]{16}", j["epoch"]) and "expired" not in j, j
        # Nothing new: next is the start for the next call.
        j2 = json.loads(d.cli("output", "ot", "--start", str(j["next"]), "--json").stdout)
        assert (j2["contents"], j2["start"], j2["next"]) == ("", n, n), j2
        r = d.cli("output", "nosuch")
        assert r.returncode == 1 and b"nosuch" in r.stderr, r
        r = d.cli("output", "ot", "--start", "x1")
        assert r.returncode == 2 and b"--start x1" in r.stderr, r
    finally:
        d.stop()

    # A small ring: a start older than its oldest byte is moved there, and said.
    wd, start = new_daemon("expired", "--ring-size", "8K")
    sock = start_guest(wd, "ox", "--bytes", str(n))
    want = pattern.make_stream(0, n // LINE + 1, tag="ox")[:n]
    d = start("--console", "ox=" + sock)
    try:
        d.wait_for(lambda: json.loads(d.cli("output", "ox", "--start", "-1", "--json")
                                      .stdout)["next"] == n, what="the guest's bytes")
        r = d.cli("output", "ox", "--start", "0")
        assert r.returncode == 0, r
        tail = n - len(r.stdout)
        assert 0 < tail and r.stdout == want[tail:], (tail, r.stdout[:80])
        assert re.search(rb"%d bytes of output expired .*starting at offset %d" % (tail, tail),
                         r.stderr), r.stderr
        j = json.loads(d.cli("output", "ox", "--start", "100", "--json").stdout)
        assert j["expired"] is True and j["lost"] == tail - 100 and j["start"] == tail, j
        assert j["contents"].encode() == want[tail:] and j["next"] == n, j["next"]
    finally:
        d.stop()


def main():
    res = runner.Runner()
    ctx.wd = hub.workdir("cli-resume")
    ctx.guests = []
    print("managed ttyhubd (fd store) available: %s" % managed_supported())
    try:
        for name, fn in [(n, f) for n, f in globals().items() if n.startswith("t_")]:
            res.run(name[2:].replace("_", " "), fn)
    finally:
        for g in ctx.guests:
            g.terminate()
            g.wait()
    res.finish(ctx.wd)


if __name__ == "__main__":
    main()
