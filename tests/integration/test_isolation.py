#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Eight consoles, many users, random keystrokes from every read-only session: no byte reaches
the wrong console, and no byte of a read-only session reaches any guest.

Eight synthetic guests (fake-guest, tags tag0..tag7, 8 KB/s each, --input-log) are served by
one ttyhubd (--console isoK=...), with ttyhub-sshd in front.  On every console:

* one writer types a distinct marker stream ("<wK.00001>", ...): over SSH (paramiko, a
  read-write key, user "isoK") on even consoles, as a raw broker client (mode rw) on odd ones;
* three read-only sessions type random bytes (every value 0..255, plus escape prefixes and
  escape commands: Ctrl-E c f/a/s/w/r/b/?, doubled prefixes, "~.", CSI keys):
  - SSH with a watch-only key (consoles="iso*:ro", user "isoK"): everything but the detach
    command Ctrl-E c . (which would only end the session);
  - SSH with a read-write key as "isoK+ro": also without Ctrl-E c f and Ctrl-E c a, which
    rightly let such a user take the writer role;
  - a raw broker client attached with mode ro, sending the bytes as data frames;
* odd consoles also get a passive SSH watcher ("isoK+ro"), so that an SSH stream that
  nobody disturbs is checked on every console.

Checks:
* each guest's --input-log holds exactly its own writer's markers, in order, and nothing else
  (no read-only byte, no other console's marker);
* every session received lines of its own console only (no header of another tag anywhere);
  the writers', the broker watchers' and the passive watchers' streams are intact (no gap,
  no corrupt or repeated line once the "[ttyhub] ..." notice lines are taken out);
* the writer of every console is the same at the end as at the start, and both daemons run.

Typing: 32 KiB per read-only session in about 15 s by default; 1 MiB each with TTYHUB_LONG=1.
"""

import os
import random
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import pattern  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402

import paramiko  # noqa: E402  (python3-paramiko)

LONG = os.environ.get("TTYHUB_LONG") == "1"
N = 8
# Guest output, bytes/s.  Every line is one SSH packet to each of the 24 paramiko sessions,
# all decrypted in this one Python process: at 8000 B/s (3,000 packets/s) it took a whole
# core and fell more than half behind, which says nothing about isolation.
RATE = 4000
DRAIN_S = 5.0       # reading on after the typing, until a session has been quiet 0.5 s
TYPE_BYTES = 1024 * 1024 if LONG else 32 * 1024
TYPE_SECONDS = 60 if LONG else 15
MARK_INTERVAL = 0.1

# Escape-like sequences mixed into the random bytes.
TRICKS = [b"\x05c" + bytes([x]) for x in b"fa.swrb?xZ\x05\x00\xff"] + [
    b"\x05\x05cf", b"\x05\x05ca", b"\x05c\x05cf", b"\r~.", b"\n~.\n", b"~?", b"\x1b[A",
    b"\x1b]0;x\x07", b"\x1d", b"\x03", b"\x04", b"\x1a", b"\r\n", b"\x00" * 8,
]

KEYS = {"writer": 'consoles="iso*:rw"', "rwro": 'consoles="iso*:rw"', "ro": 'consoles="iso*:ro"'}
NOTICE_CRLF = re.compile(rb"(?:\r\n)?\[ttyhub\] [^\r\n]*\r\n")
ANY_HEADER = re.compile(rb"tag(\d) ([0-9]{12}) ")


class Ctx:
    pass


ctx = Ctx()


def scrub(data, commands):
    """Turn every Ctrl-E c X with X in commands into Ctrl-E c x (passed through, harmless)."""
    data = bytearray(data)
    for cmd in commands:
        needle = b"\x05c" + bytes([cmd])
        i = data.find(needle)
        while i >= 0:
            data[i + 2] = ord("x")
            i = data.find(needle, i)
    return bytes(data)


def random_stream(rng, n):
    """n bytes or so: uniform random bytes with escape tricks sprinkled in; every value occurs."""
    out = bytearray(range(256))
    rng.shuffle(out)
    while len(out) < n:
        if rng.random() < 0.3:
            out += rng.choice(TRICKS)
        else:
            out += rng.randbytes(rng.randint(1, 96))
    return bytes(out)


class Session:
    """One user: reads its console's output; types random bytes or markers."""

    def __init__(self, kind, k, via, stream=b"", markers=False, intact=False):
        self.kind = kind          # "writer", "ro-key", "rw+ro", "broker-ro", "passive"
        self.k = k
        self.via = via            # "ssh" or "broker"
        self.stream = stream      # bytes to type
        self.markers = markers
        self.intact = intact      # stream must be intact (nobody typed escapes into it)
        self.sent = 0
        self.typing_stopped = threading.Event()
        self.marks_sent = []
        self.out = bytearray()
        self.error = None
        self.name = "%s iso%d (%s)" % (kind, k, via)

    # -- connection --

    def connect_ssh(self, keyname, user):
        c = paramiko.SSHClient()
        c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        c.connect("127.0.0.1", ctx.front.port, username=user, key_filename=ctx.keys[keyname][0],
                  look_for_keys=False, allow_agent=False, timeout=20, banner_timeout=20,
                  auth_timeout=20)
        self.ssh = c
        self.ch = c.invoke_shell(term="xterm", width=200, height=50)
        self.ch.settimeout(20)
        want = rb"\[ttyhub\] attached to iso%d (read-write|read-only)" % self.k
        while not re.search(want, self.out):
            data = self.ch.recv(65536)
            if not data:
                raise AssertionError("%s: session ended: %r" % (self.name, bytes(self.out)))
            self.out += data
        self.role = re.search(want, self.out).group(1).decode()
        self.ch.settimeout(0.05)

    def connect_broker(self, mode):
        self.bc = hub.BrokerClient(ctx.d.socket)
        self.bc.send({"type": "attach", "console": "iso%d" % self.k, "mode": mode})
        a = self.bc.expect_type("attached")
        self.role = "read-write" if a["role"] == "writer" else "read-only"
        self.bc.sock.settimeout(0.05)

    # -- running --

    def send(self, b):
        # Blocking for a while: a loaded machine may leave the daemons behind for a moment.
        if self.via == "ssh":
            self.ch.settimeout(20)
            self.ch.sendall(b)
            self.ch.settimeout(0.05)
        else:
            self.bc.sock.settimeout(20)
            self.bc.send_data(b)
            self.bc.sock.settimeout(0.05)

    def read(self):
        """Returns how many bytes arrived."""
        if self.via == "ssh":
            try:
                data = self.ch.recv(65536)
            except socket.timeout:
                return 0
            if not data:
                raise AssertionError("%s: session ended" % self.name)
            self.out += data
            return len(data)
        before = len(self.bc.data)
        end = time.monotonic() + 0.05
        try:
            while time.monotonic() < end:
                msg = self.bc.pump()
                if msg and msg["type"] in ("detached",):
                    raise AssertionError("%s: %r" % (self.name, msg))
        except socket.timeout:
            pass
        return len(self.bc.data) - before

    def run(self, rng, stop_typing, stop_reading):
        try:
            t0 = next_mark = time.monotonic()
            while not stop_reading.is_set():
                if not stop_typing.is_set():
                    # Keep pace: by now this share of the stream should have been typed.
                    due = int(len(self.stream) * min(1.0, (time.monotonic() - t0) / TYPE_SECONDS))
                    while self.sent < due:
                        n = min(due - self.sent, rng.randint(1, 512))
                        self.send(self.stream[self.sent:self.sent + n])
                        self.sent += n
                    if self.markers and time.monotonic() >= next_mark:
                        m = b"<w%d.%05d>" % (self.k, len(self.marks_sent) + 1)
                        self.send(m)
                        self.marks_sent.append(m)
                        next_mark += MARK_INTERVAL
                else:
                    self.typing_stopped.set()
                self.read()
                time.sleep(0.02)
            # Catch up with what the daemons and this process's SSH stacks still hold.
            end = quiet = time.monotonic()
            end += DRAIN_S
            while time.monotonic() < end and time.monotonic() - quiet < 0.5:
                if self.read():
                    quiet = time.monotonic()
        except Exception as e:  # noqa: BLE001 - reported by the checks
            self.error = "%s: %r" % (self.name, e)
        self.typing_stopped.set()

    def data(self):
        if self.via == "ssh":
            return NOTICE_CRLF.sub(b"", bytes(self.out))
        return self.bc.data

    def close(self):
        try:
            if self.via == "ssh":
                self.ssh.close()
            else:
                self.bc.close()
        except Exception:  # noqa: BLE001
            pass


def start_sessions(rng):
    sessions = []
    # Writers first: each takes its console's writer role.
    for k in range(N):
        if k % 2 == 0:
            w = Session("writer", k, "ssh", markers=True, intact=True)
            w.connect_ssh("writer", "iso%d" % k)
        else:
            w = Session("writer", k, "broker", markers=True, intact=True)
            w.connect_broker("rw")
        assert w.role == "read-write", "%s attached %s" % (w.name, w.role)
        sessions.append(w)
    for k in range(N):
        ro = Session("ro-key", k, "ssh", scrub(random_stream(rng, TYPE_BYTES), b"."))
        ro.connect_ssh("ro", "iso%d" % k)
        rwro = Session("rw+ro", k, "ssh", scrub(random_stream(rng, TYPE_BYTES), b".fa"))
        rwro.connect_ssh("rwro", "iso%d+ro" % k)
        br = Session("broker-ro", k, "broker", random_stream(rng, TYPE_BYTES), intact=True)
        br.connect_broker("ro")
        sessions += [ro, rwro, br]
        if k % 2:
            p = Session("passive", k, "ssh", intact=True)
            p.connect_ssh("ro", "iso%d+ro" % k)
            sessions.append(p)
    for s in sessions[N:]:
        assert s.role == "read-only", "%s attached %s" % (s.name, s.role)
    return sessions


def writers():
    return {k: ctx.d.console("iso%d" % k)["writer"] for k in range(N)}


def input_log(k):
    try:
        with open(os.path.join(ctx.wd, "g%d.input" % k), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def t_type():
    rng = ctx.rng
    ctx.sessions = sessions = start_sessions(rng)
    ctx.writers0 = writers()
    for k, w in ctx.writers0.items():
        assert w, "iso%d has no writer" % k
    stop_typing, stop_reading = threading.Event(), threading.Event()
    threads = [threading.Thread(target=s.run, args=(random.Random(rng.random()), stop_typing,
                                                     stop_reading), daemon=True)
               for s in sessions]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    deadline = t0 + TYPE_SECONDS * 4 + 30
    while any(s.sent < len(s.stream) for s in sessions if s.stream) and \
            time.monotonic() < deadline and not any(s.error for s in sessions):
        time.sleep(0.2)
    time.sleep(max(0.0, TYPE_SECONDS - (time.monotonic() - t0)))
    stop_typing.set()
    typing_s = time.monotonic() - t0
    for s in sessions:
        s.typing_stopped.wait(20)
    # Let everything typed reach the guests, and the output catch up.
    expect = {k: b"".join(s.marks_sent) for s in sessions if s.markers for k in [s.k]}
    end = time.monotonic() + 15
    while time.monotonic() < end and any(len(input_log(k)) < len(v) for k, v in expect.items()):
        time.sleep(0.1)
    time.sleep(1.0)
    stop_reading.set()
    for t in threads:
        t.join(10)
    errors = [s.error for s in sessions if s.error]
    assert not errors, errors
    ro = [s for s in sessions if s.stream]
    typed = sum(s.sent for s in ro)
    print("figure: %d sessions on %d consoles (%d SSH); %d read-only sessions typed %d bytes "
          "(%d KiB each) in %.1f s; %d writer markers"
          % (len(sessions), N, sum(1 for s in sessions if s.via == "ssh"), len(ro), typed,
             TYPE_BYTES // 1024, typing_s, sum(len(s.marks_sent) for s in sessions)),
          flush=True)
    assert all(s.sent == len(s.stream) for s in ro), \
        [(s.name, s.sent, len(s.stream)) for s in ro if s.sent < len(s.stream)]
    ctx.expect = expect


def t_input_logs():
    """Each guest got exactly its writer's markers: no read-only byte, no foreign marker."""
    bad = []
    for k in range(N):
        got, want = input_log(k), ctx.expect[k]
        if got != want:
            foreign = sorted(set(re.findall(rb"<w(\d)\.", got)) - {b"%d" % k})
            stray = re.sub(rb"<w\d\.\d{5}>", b"", got)
            bad.append("iso%d: %d bytes, expected %d; foreign markers from %r; %d bytes that "
                       "are no marker, e.g. %r" % (k, len(got), len(want), foreign, len(stray),
                                                   stray[:60]))
    print("figure: input logs: %s bytes (markers only)"
          % ", ".join(str(len(input_log(k))) for k in range(N)), flush=True)
    assert not bad, "\n".join(bad)


def t_streams():
    """Every session saw only its console; undisturbed streams are intact."""
    bad = []
    lines = []
    for s in ctx.sessions:
        data = s.data()
        tags = set(m.group(1) for m in ANY_HEADER.finditer(data))
        if tags - {b"%d" % s.k}:
            bad.append("%s: lines of tag%s" % (s.name, sorted(tags - {b"%d" % s.k})))
        chk = pattern.check_lines(data, tag="tag%d" % s.k)
        lines.append(chk["lines"])
        if chk["lines"] < RATE / 64 * 5:
            bad.append("%s: only %d lines" % (s.name, chk["lines"]))
        if s.intact and (chk["gaps"] or chk["corrupt"] or chk["reorders"]):
            bad.append("%s: not intact: gaps %r corrupt %d reorders %r"
                       % (s.name, chk["gaps"][:5], chk["corrupt"], chk["reorders"][:5]))
    print("figure: lines received per session: min %d, max %d, total %d"
          % (min(lines), max(lines), sum(lines)), flush=True)
    assert not bad, "\n".join(bad)


def t_writers_unchanged():
    now = writers()
    assert now == ctx.writers0, "writers changed:\n%r\n%r" % (ctx.writers0, now)
    for k in range(N):
        c = ctx.d.console("iso%d" % k)
        want = 3 + (k % 2)
        assert c["watchers"] == want, "iso%d: %d watchers, expected %d" % (k, c["watchers"], want)


def t_alive():
    assert ctx.d.alive(), ctx.d.log()[-3000:]
    assert ctx.front.alive(), ctx.front.log()[-3000:]


def main():
    res = runner.Runner()
    t_start = time.monotonic()
    wd = ctx.wd = hub.workdir("iso")
    seed = int(os.environ.get("TTYHUB_SEED", str(int(time.time()))))
    print("seed %d (TTYHUB_SEED)" % seed, flush=True)
    ctx.rng = random.Random(seed)
    ctx.sessions = []
    guests = []
    args = []
    for k in range(N):
        sock = os.path.join(wd, "g%d.sock" % k)
        guests.append(subprocess.Popen(
            [hub.FAKE_GUEST, "--socket", sock, "--rate", str(RATE), "--tag", "tag%d" % k,
             "--input-log", os.path.join(wd, "g%d.input" % k), "--stats", sock + ".stats"]))
        args += ["--console", "iso%d=%s" % (k, sock)]
    ctx.d = hub.Daemon(wd, "--front-user", "root", *args).start()
    try:
        for k in range(N):
            ctx.d.wait_for(lambda k=k: (ctx.d.console("iso%d" % k) or {}).get("state") ==
                           "connected", what="iso%d connected" % k)
        ctx.keys = {n: sshhub.make_key(wd, n) for n in KEYS}
        # Many sessions share a key here: lift the per-key cap (10 by default).
        ctx.front = sshhub.SshFront(os.path.join(wd, "sshd"), ctx.d.socket,
                                    ["%s %s" % (KEYS[n], ctx.keys[n][1]) for n in KEYS],
                                    extra_args=["--max-sessions-per-key", "1000"])
        res.run("writers and read-only users on %d consoles; read-only users type random bytes"
                % N, t_type)
        if getattr(ctx, "expect", None) is not None:
            res.run("guests received exactly their writers' markers", t_input_logs)
            res.run("every session saw only its own console, intact", t_streams)
            res.run("writers unchanged, every watcher still attached", t_writers_unchanged)
        res.run("daemons alive", t_alive)
    finally:
        for s in ctx.sessions:
            s.close()
        ctx.d.stop()
        for g in guests:
            g.terminate()
            g.wait()
    print("figure: test_isolation run time = %.1f s" % (time.monotonic() - t_start), flush=True)
    res.finish(wd)


if __name__ == "__main__":
    main()
