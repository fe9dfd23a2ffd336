#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Clients that reset their connection while the daemons have lots queued for them, over
and over: both daemons survive (no crash, no SIGPIPE), a healthy watcher's stream stays
intact, and every descriptor is given back.

A synthetic guest streams unpaced (as fast as ttyhubd drains it; 4 KiB lines, tag "rs")
into ttyhubd, with ttyhub-sshd in front.  One healthy broker watcher reads the console for
the whole test, as fast as Python can, and checks every byte it gets against the guest's
pattern at its exact stream offset; ttyhubd may skip it ahead only with a "N bytes dropped"
notice, and N must be exactly the bytes skipped.  Meanwhile, in parallel:

* broker readers (raw protocol) attach read-only (replay all or none), read a little, and
  reset (SO_LINGER 0, then close) with ttyhubd's queue for them full; the bytes waiting in
  their receive queues at the reset are recorded;
* broker writers take the writer role (force), then send one or more 64 KiB data frames,
  or a frame header and half its payload, and reset;
* SSH clients (paramiko, forked from one helper process) log in, attach (read-only with
  replay all, or +force writing 64 KiB chunks), read a little of the flood and then reset
  the TCP connection (SO_LINGER 0 and exit: an RST with output still in flight); a few
  OpenSSH clients are SIGKILLed mid-output the same way.

The broker resets run first, then the SSH resets (paramiko and OpenSSH at the same time).
Checks: both daemons alive throughout and SIGPIPE ignored; the healthy watcher's stream is
intact (every byte where the pattern says, every skip announced exactly) and never pauses
for 5 s; after each phase, both daemons hold exactly their baseline descriptors and only
the healthy watcher is attached; at the end both exit 0 on SIGTERM (the runner's automatic
exit checks, with no sanitizer report).

Counts: 150 broker readers + 50 writers + 40 paramiko + 10 OpenSSH resets by default
(test_bad_input.py's 100 read-only resets are not repeated); with TTYHUB_LONG=1, 700 +
300 broker and 200 + 50 SSH (the issue's 1,000 resets during large writes, and more).
"""

import fcntl
import json
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import pattern  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402

LONG = os.environ.get("TTYHUB_LONG") == "1"
N_READERS = 700 if LONG else 150
N_WRITERS = 300 if LONG else 50
N_PARAMIKO = 200 if LONG else 40
N_OPENSSH = 50 if LONG else 10
TAG = "rs"
LINE = 4096
HEADER = re.compile(re.escape(TAG.encode()) + rb" ([0-9]{12}) ")
# A daemon blocked on a resetting client would stall it for good; 5 s (20 s under ASan, where
# the clock measures the sanitizer) is far above any scheduling delay.
STALL_LIMIT = 5.0 if not hub.SANITIZED else 20.0

# One process imports paramiko once and forks a child per SSH session (it never starts a
# transport itself, so forking is safe).  A child logs in, attaches, reads a random amount
# of the flood (and as a writer sends 64 KiB chunks), then exits at once: its socket has
# SO_LINGER 0, so the kernel resets the connection.  Prints one JSON summary line.
SSH_HELPER = r"""
import json, os, random, socket, struct, sys, time
import paramiko
port, keyfile, total, par, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5])
pkey = paramiko.Ed25519Key.from_private_key_file(keyfile)
rng = random.Random(seed)

stage = "connect"

def child(kind, target):
    global stage
    user = {"ro": "rs+ro+replay=all", "rw": "rs+force"}[kind]
    s = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    t = paramiko.Transport(s)
    stage = "key exchange"
    t.start_client(timeout=30)
    stage = "authentication"
    t.auth_publickey(user, pkey)
    stage = "channel"
    ch = t.open_session(timeout=30)
    ch.get_pty(term="xterm", width=80, height=24)
    ch.invoke_shell()
    ch.settimeout(30)
    got = b""
    stage = "waiting for the attach notice"
    while b"[ttyhub] attached to rs" not in got:
        data = ch.recv(65536)
        if not data:
            raise SystemExit("ended before attaching: %r" % got[-300:])
        got += data
    n = 0
    stage = "reading %d bytes" % target
    while n < target:
        data = ch.recv(65536)
        if not data:
            raise SystemExit("ended while reading")
        n += len(data)
    if kind == "rw":
        ch.settimeout(0.2)
        for _ in range(rng.randint(1, 8)):
            try:
                ch.send(b"x" * 65536)
            except socket.timeout:
                break
    os._exit(0)

done = failed = 0
errors = []
running = {}
i = 0
while done + failed < total:
    while len(running) < par and i < total:
        kind = "rw" if i % 3 == 2 else "ro"
        target = rng.randint(1024, 256 * 1024)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                child(kind, target)
            except BaseException as e:
                os.write(w, ("%s: %r" % (stage, e)).encode()[:300])
                os._exit(1)
        os.close(w)
        running[pid] = r
        i += 1
    pid, status = os.wait()
    r = running.pop(pid)
    msg = os.read(r, 400).decode(errors="replace")
    os.close(r)
    if os.waitstatus_to_exitcode(status) == 0:
        done += 1
    else:
        failed += 1
        errors.append(msg or "exit %d" % os.waitstatus_to_exitcode(status))
print(json.dumps({"done": done, "failed": failed, "errors": errors[:10]}), flush=True)
"""


class Ctx:
    pass


ctx = Ctx()


def expected(pos, n):
    """The guest's bytes at stream offsets [pos, pos + n)."""
    seq, off = divmod(pos, LINE)
    out = bytearray()
    while len(out) < off + n:
        out += pattern.make_line(seq, TAG, LINE)
        seq += 1
    return bytes(out[off:off + n])


class Healthy(threading.Thread):
    """A broker watcher that checks every byte at its exact stream offset."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(path)
        for obj in ({"type": "hello", "version": 1, "client": "healthy"},
                    {"type": "attach", "console": "rs", "mode": "ro", "replay": 0}):
            p = json.dumps(obj).encode()
            self.sock.sendall(b"C" + struct.pack(">I", len(p)) + p)
        self.stop = threading.Event()
        self.pos = None          # stream offset of the next byte expected
        self.ring_pos = None     # ring offset the next output frame must start at
        self.bytes = 0
        self.checked = 0
        self.drops = 0
        self.dropped = 0
        self.notices = 0
        self.errors = []
        self.attached = False
        self.last_data = None
        self.max_stall = 0.0
        self.ended = None

    def data(self, payload):
        now = time.monotonic()
        if self.last_data is not None:
            self.max_stall = max(self.max_stall, now - self.last_data)
        self.last_data = now
        self.bytes += len(payload)
        if self.pos is None:
            m = HEADER.search(payload)
            if not m:
                return  # not synchronised yet (cannot happen past the first line)
            self.pos = int(m.group(1)) * LINE - m.start()
        if payload != expected(self.pos, len(payload)):
            if len(self.errors) < 5:
                self.errors.append("mismatch at stream offset %d (%d bytes): got %r..."
                                   % (self.pos, len(payload), payload[:80]))
            self.pos = None  # resynchronise, and keep counting
            return
        self.pos += len(payload)
        self.checked += len(payload)

    def control(self, msg):
        t = msg.get("type")
        if t == "attached":
            self.attached = True
        elif t == "notice":
            self.notices += 1
            if "dropped" in msg:
                self.drops += 1
                self.dropped += msg["dropped"]
                if self.pos is not None:
                    self.pos += msg["dropped"]
                if self.ring_pos is not None:
                    self.ring_pos += msg["dropped"]
        elif t in ("detached", "error"):
            self.errors.append("unexpected %r" % msg)

    def run(self):
        buf = bytearray()
        self.sock.settimeout(0.5)
        try:
            while not self.stop.is_set():
                try:
                    chunk = self.sock.recv(1 << 20)
                except socket.timeout:
                    continue
                if not chunk:
                    self.ended = "ttyhubd closed the connection"
                    return
                buf += chunk
                off = 0
                while len(buf) - off >= 5:
                    n = int.from_bytes(buf[off + 1:off + 5], "big")
                    if len(buf) - off < 5 + n:
                        break
                    t = buf[off]
                    payload = bytes(buf[off + 5:off + 5 + n])
                    off += 5 + n
                    if t == 0x4F:  # "O": ring offsets start, end; then the bytes
                        start, end = struct.unpack(">QQ", payload[:16])
                        # Live output: frames follow each other (a skip is announced).
                        if (self.ring_pos is not None and start != self.ring_pos
                                or end - start != n - 16) and len(self.errors) < 5:
                            self.errors.append("output frame [%d, %d) of %d bytes, expected "
                                               "at %r" % (start, end, n - 16, self.ring_pos))
                        self.ring_pos = end
                        self.data(payload[16:])
                    else:
                        self.control(json.loads(payload))
                del buf[:off]
        except Exception as e:  # noqa: BLE001 - reported by the check
            self.ended = repr(e)


def sigpipe_ignored(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGPIPE - 1)))
    return False


def frame(t, payload):
    return t + struct.pack(">I", len(payload)) + payload


def control(obj):
    return frame(b"C", json.dumps(obj).encode())


HELLO = control({"type": "hello", "version": 1, "client": "resetter"})


def reset(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def pending(s):
    """Bytes in our receive queue."""
    buf = fcntl.ioctl(s.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return struct.unpack("i", buf)[0]


def broker_reader(rng):
    """Attach read-only, read a little, reset with output queued; returns bytes pending."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(ctx.d.socket)
    replay = "all" if rng.random() < 0.5 else 0
    s.sendall(HELLO + control({"type": "attach", "console": "rs", "mode": "ro",
                               "replay": replay}))
    want = rng.randint(1, 512 * 1024)
    got = 0
    while got < want:
        chunk = s.recv(min(65536, want - got))
        if not chunk:
            raise AssertionError("ttyhubd closed a reader's connection")
        got += len(chunk)
    time.sleep(rng.random() * 0.02)  # let ttyhubd fill the queue again
    left = pending(s)
    reset(s)
    return left


def broker_writer(rng):
    """Take the writer role, send big data frames (or half of one), reset."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(ctx.d.socket)
    s.sendall(HELLO + control({"type": "attach", "console": "rs", "mode": "force",
                               "replay": 0}))
    s.recv(rng.randint(1, 65536))
    payload = rng.randbytes(65536)
    s.settimeout(0.5)
    try:
        for _ in range(rng.randint(0, 4)):
            s.sendall(frame(b"D", payload))
        if rng.random() < 0.5:
            # A frame that announces 64 KiB and brings half of it.
            s.sendall(b"D" + struct.pack(">I", 65536) + payload[:rng.randint(1, 65535)])
        else:
            s.sendall(frame(b"D", payload))
    except socket.timeout:
        pass  # ttyhubd stopped reading: the guest's input is full; reset anyway
    left = pending(s)
    reset(s)
    return left


def openssh_kill(rng):
    """OpenSSH attaches and is SIGKILLed while output floods in (unread data: RST)."""
    p = subprocess.Popen(sshhub.ssh_cmd(ctx.front, ctx.key, "rs+ro"), stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    head = b""
    got = 0
    want = rng.randint(4096, 512 * 1024)
    deadline = time.monotonic() + 30
    try:
        while got < want and time.monotonic() < deadline:
            r, _, _ = select.select([p.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                break
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            got += len(chunk)
            if len(head) < 4096:
                head += chunk[:4096]
        ok = b"[ttyhub] attached to rs" in head and got >= want
    finally:
        p.kill()
        p.wait()
        p.stdin.close()
        p.stdout.close()
    return ok


def check_alive():
    assert ctx.d.alive(), "ttyhubd died:\n" + ctx.d.log()[-3000:]
    assert ctx.front.alive(), "ttyhub-sshd died:\n" + ctx.front.log()[-3000:]
    h = ctx.healthy
    assert h.is_alive() and not h.ended, "healthy watcher: %s" % h.ended


def t_broker_resets():
    rng = ctx.rng
    t0 = time.monotonic()
    kinds = ["r"] * N_READERS + ["w"] * N_WRITERS
    rng.shuffle(kinds)
    queued = []
    wqueued = []
    for i, kind in enumerate(kinds):
        if kind == "r":
            queued.append(broker_reader(rng))
        else:
            wqueued.append(broker_writer(rng))
        if i % 50 == 0:
            check_alive()
    check_alive()
    queued.sort()
    print("figure: broker resets: %d readers + %d writers in %.1f s; bytes waiting in a "
          "reader's receive queue at its reset: min %d, median %d, max %d; writers: median %d"
          % (N_READERS, N_WRITERS, time.monotonic() - t0, queued[0], queued[len(queued) // 2],
             queued[-1], sorted(wqueued)[len(wqueued) // 2] if wqueued else -1), flush=True)
    assert queued[len(queued) // 2] >= 64 * 1024, \
        "readers mostly reset with little queued (median %d bytes)" % queued[len(queued) // 2]


def t_ssh_resets():
    rng = ctx.rng
    t0 = time.monotonic()
    # paramiko in its own process; OpenSSH clients from here at the same time.
    helper = subprocess.Popen(["/usr/bin/python3", "-c", SSH_HELPER, str(ctx.front.port),
                               ctx.key, str(N_PARAMIKO), "3", str(rng.randrange(1 << 30))],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    ossh = 0
    for _ in range(N_OPENSSH):
        ossh += openssh_kill(rng)
        check_alive()
    out, err = helper.communicate(timeout=900)
    check_alive()
    try:
        summary = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError("SSH helper exit %s: %s %s" % (helper.returncode, out[-2000:],
                                                             err[-2000:]))
    print("figure: SSH resets: %d of %d paramiko (RST with output in flight), %d of %d OpenSSH "
          "SIGKILLed mid-output, in %.1f s"
          % (summary["done"], N_PARAMIKO, ossh, N_OPENSSH, time.monotonic() - t0), flush=True)
    assert summary["failed"] == 0, "paramiko sessions failed before their reset: %r" % summary
    assert ossh == N_OPENSSH, "only %d of %d OpenSSH clients attached and got output" \
        % (ossh, N_OPENSSH)


def t_daemons_alive():
    check_alive()
    for name, pid in (("ttyhubd", ctx.d.pid()), ("ttyhub-sshd", ctx.front.pid)):
        assert sigpipe_ignored(pid), "%s does not ignore SIGPIPE" % name


def t_healthy_intact():
    h = ctx.healthy
    assert h.is_alive() and not h.ended, "healthy watcher stopped: %s" % h.ended
    print("figure: healthy watcher: %.1f MB received, %.1f MB checked byte by byte, %d skips "
          "announced (%.1f GB), %d notices, longest pause between data %.2f s"
          % (h.bytes / 1e6, h.checked / 1e6, h.drops, h.dropped / 1e9, h.notices, h.max_stall),
          flush=True)
    assert not h.errors, h.errors
    assert h.checked > 10e6, "only %d bytes checked" % h.checked
    assert h.max_stall < STALL_LIMIT, "the healthy watcher stalled for %.2f s" % h.max_stall


def fd_table(pid):
    """{fd: what it points to} of a process."""
    out = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            pass
    return out


def fds_back(phase, timeout=20):
    """Both daemons hold exactly their baseline descriptors; only the healthy watcher is
    attached.  A session whose client is gone must not be kept: waited for up to
    timeout s (longer than the time any close takes)."""
    deadline = time.monotonic() + timeout
    # Asked first: the CLI's own connection is closed by the time the descriptors settle.
    c = ctx.d.console("rs")
    while (ctx.d.fd_count(), ctx.front.fd_count()) != (ctx.fds0, ctx.sshd_fds0) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    print("figure: after %s: fds ttyhubd %d (baseline %d), ttyhub-sshd %d (baseline %d); "
          "watchers attached %d (the healthy one: 1)"
          % (phase, ctx.d.fd_count(), ctx.fds0, ctx.front.fd_count(), ctx.sshd_fds0,
             c["watchers"]), flush=True)
    print("figure: after %s: RSS ttyhubd %d -> %d KiB, ttyhub-sshd %d -> %d KiB%s"
          % (phase, ctx.rss0, ctx.d.rss_kib(), ctx.sshd_rss0, ctx.front.rss_kib(),
             " [sanitized build]" if hub.SANITIZED else ""), flush=True)
    bad = []
    for name, pid, base in (("ttyhubd", ctx.d.pid(), ctx.fdt0),
                            ("ttyhub-sshd", ctx.front.pid, ctx.sshd_fdt0)):
        now = fd_table(pid)
        extra = sorted(fd for fd in now if base.get(fd) != now[fd])
        gone = sorted(fd for fd in base if now.get(fd) != base[fd])
        if extra or gone:
            bad.append("%s: %d fds, baseline %d; new %r (%s); gone %r"
                       % (name, len(now), len(base), extra,
                          ", ".join(sorted(set(now[fd].split(":")[0] for fd in extra))), gone))
    if c["watchers"] != 1 or c["writer"] is not None:
        bad.append("still attached to rs: %d watchers, writer %r (who:\n%s)"
                   % (c["watchers"], c["writer"], ctx.d.cli("who", "rs").stdout.decode()[:1500]))
    assert not bad, "\n".join(bad)


def main():
    res = runner.Runner()
    t_start = time.monotonic()
    wd = hub.workdir("resets")
    seed = int(os.environ.get("TTYHUB_SEED", str(int(time.time()))))
    print("seed %d (TTYHUB_SEED)" % seed, flush=True)
    ctx.rng = random.Random(seed)
    sock = os.path.join(wd, "rs.sock")
    fg = subprocess.Popen([hub.FAKE_GUEST, "--socket", sock, "--tag", TAG, "--line-length",
                           str(LINE), "--stats", sock + ".stats"])
    ctx.d = hub.Daemon(wd, "--console", "rs=" + sock, "--front-user", "root").start()
    ctx.healthy = None
    try:
        ctx.d.wait_for(lambda: (ctx.d.console("rs") or {}).get("state") == "connected",
                       what="rs connected")
        ctx.key, pub = sshhub.make_key(wd, "user")
        ctx.front = sshhub.SshFront(os.path.join(wd, "sshd"), ctx.d.socket,
                                    ['consoles="rs:rw" ' + pub])
        ctx.healthy = Healthy(ctx.d.socket)
        ctx.healthy.start()
        deadline = time.monotonic() + 10
        while ctx.healthy.checked < 1e6 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        ctx.fds0, ctx.sshd_fds0 = ctx.d.fd_count(), ctx.front.fd_count()
        ctx.fdt0, ctx.sshd_fdt0 = fd_table(ctx.d.pid()), fd_table(ctx.front.pid)
        ctx.rss0, ctx.sshd_rss0 = ctx.d.rss_kib(), ctx.front.rss_kib()
        res.run("%d broker clients (%d readers, %d writers) reset during large writes"
                % (N_READERS + N_WRITERS, N_READERS, N_WRITERS), t_broker_resets)
        res.run("after the broker resets: fds back to baseline, nobody left attached",
                fds_back, "broker resets")
        res.run("%d SSH clients (%d paramiko, %d OpenSSH) reset mid-output"
                % (N_PARAMIKO + N_OPENSSH, N_PARAMIKO, N_OPENSSH), t_ssh_resets)
        res.run("after the SSH resets: fds back to baseline, nobody left attached",
                fds_back, "SSH resets")
        res.run("both daemons alive, SIGPIPE ignored", t_daemons_alive)
        res.run("healthy watcher's stream intact throughout", t_healthy_intact)
    finally:
        if ctx.healthy:
            ctx.healthy.stop.set()
            ctx.healthy.join(5)
            ctx.healthy.sock.close()
        ctx.d.stop()
        fg.terminate()
        fg.wait()
    print("figure: test_resets run time = %.1f s" % (time.monotonic() - t_start), flush=True)
    res.finish(wd)


if __name__ == "__main__":
    main()
