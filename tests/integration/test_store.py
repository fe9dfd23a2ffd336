#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""ttyhubd survives its own restart through the fd store (issue 14), seen from the broker
side: a synthetic guest (tests/fake-guest) writes numbered lines without pause while ttyhubd
runs under a fake service manager (svcmgr.py) and is restarted again and again.

- SIGTERM in a loop (10 restarts; TTYHUB_LONG=1: for 30 s): the guest's connection is never
  dropped (it accepted one client), and the console's history holds exactly the bytes the
  guest wrote, every line once and in order; so does the console log.
- SIGKILL in a loop: what is lost is bounded by one read per kill and shows as a gap in the
  line numbers, nothing else.
- The guest exits while ttyhubd is down: everything up to its EOF is in the history.
- The stored names: con-KEY and ring-KEY while connected, ring-KEY alone after the guest
  left, nothing of a console that is no longer defined; a kept connection to a path the
  console no longer has is closed and the new path connected.
- A real QEMU guest (its 16550 writes one byte at a time) printing numbered lines while
  ttyhubd restarts under it: every line once, in order.
- A libvirt guest: its consoles (keyed UUID:ALIAS) are claimed by the consoles the libvirt
  source defines again after the restart, over the same connection, and the shell works.
- Clients: one attached is told (detached, shutdown) at SIGTERM; one that connects while
  ttyhubd is down is served by the next process (the manager owns the listening socket).
- A store that is too small: ttyhubd warns.

History is read with a raw attach (replay "all") that accepts both output frame forms: D
(payload only) and O (16 bytes of offsets, then the payload).
"""

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest as G  # noqa: E402
import hub  # noqa: E402
import pattern  # noqa: E402
import runner  # noqa: E402
import virt  # noqa: E402

LONG = os.environ.get("TTYHUB_LONG") == "1"
LINE = 64
RING = "64M"  # holds everything the guest writes in a run, so nothing ages out
RATE = 200000


class Guest:
    """fake-guest on wd/NAME.sock, writing numbered lines at RATE bytes/s."""

    def __init__(self, wd, name, rate=RATE, tag="fg"):
        self.sock = os.path.join(wd, name + ".sock")
        self.stats = os.path.join(wd, name + ".stats")
        self.proc = subprocess.Popen([hub.FAKE_GUEST, "--socket", self.sock, "--rate", str(rate),
                                      "--line-length", str(LINE), "--stats", self.stats,
                                      "--tag", tag],
                                     stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            assert self.proc.poll() is None and time.monotonic() < deadline, "no fake-guest"
            time.sleep(0.01)

    def stop(self):
        """Stop it; returns its statistics (bytes_written, clients_accepted ...)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        with open(self.stats) as f:
            return json.load(f)


def history(d, console, want, timeout=30):
    """The console's history: attach with replay "all" and read until WANT bytes came
    (WANT may be a function of the data read so far that says when it is complete)."""
    done = want if callable(want) else (lambda data: len(data) >= want)
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(d.socket)

    def send(obj):
        p = json.dumps(obj).encode()
        s.sendall(b"C" + struct.pack(">I", len(p)) + p)

    send({"type": "hello", "version": 1, "client": "test_store"})
    send({"type": "attach", "console": console, "mode": "ro", "replay": "all"})
    buf, data, deadline = b"", b"", time.monotonic() + timeout
    try:
        while not done(data):
            while len(buf) >= 5 and len(buf) >= 5 + struct.unpack(">I", buf[1:5])[0]:
                n = struct.unpack(">I", buf[1:5])[0]
                kind, payload, buf = buf[0:1], buf[5:5 + n], buf[5 + n:]
                if kind == b"D":
                    data += payload
                elif kind == b"O":
                    data += payload[16:]
                else:
                    msg = json.loads(payload)
                    assert msg["type"] != "error", msg
            if done(data):
                break
            assert time.monotonic() < deadline, "history: %d bytes, incomplete" % len(data)
            chunk = s.recv(1 << 20)
            assert chunk, "the broker closed the connection"
            buf += chunk
    finally:
        s.close()
    return data


def expected(stats):
    n = stats["bytes_written"]
    return pattern.make_stream(0, n // LINE + 1, line_length=LINE)[:n]


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def start(wd, *consoles, fdstore_max=64, logs=True):
    args = ["--ring-size", RING]
    if logs:
        os.makedirs(os.path.join(wd, "logs"), exist_ok=True)
        # One log file for the whole run: compared as a whole below.
        args += ["--log-dir", os.path.join(wd, "logs"), "--log-max-size", RING]
    for name, g in consoles:  # g: a Guest, or a chardev socket path
        args += ["--console", "%s=%s" % (name, g if isinstance(g, str) else g.sock)]
    d = hub.Daemon(wd, *args, managed=True, fdstore_max=fdstore_max).start()
    for name, _ in consoles:
        d.wait_for(lambda: (d.console(name) or {}).get("state") == "connected",
                   what="console %s connected" % name)
    return d


def wait_disconnected(d, name):
    d.wait_for(lambda: (d.console(name) or {}).get("state") not in (None, "connected"),
               what="console %s to see the guest's EOF" % name, timeout=30)


def compare(got, want, what):
    if got == want:
        return
    c = pattern.check_lines(got, line_length=LINE)
    raise AssertionError("%s: %d bytes, expected %d; first %s last %s gaps %s reorders %s "
                         "corrupt %d" % (what, len(got), len(want), c["first"], c["last"],
                                         c["gaps"][:5], c["reorders"][:5], c["corrupt"]))


def restart_loop(d, logfile, sig, count=None, seconds=None, until=None):
    """Restart ttyhubd with SIG, each time once the log shows progress; returns how many.
    Stops after COUNT restarts, SECONDS, or when until() is true."""
    n, t_end, gaps = 0, time.monotonic() + (seconds or 0), []
    while ((count is not None and n < count) or (seconds is not None and
                                                   time.monotonic() < t_end)) and not (
                                                       until and until()):
        size = log_size(logfile)
        d.wait_for(lambda: log_size(logfile) > size, what="the guest's output to go on",
                   timeout=30)
        t0 = time.monotonic()
        d.restart(sig=sig)
        gaps.append(time.monotonic() - t0)
        n += 1
    if gaps:
        print("  restart (signal to READY=1): median %.0f ms, max %.0f ms"
              % (1000 * sorted(gaps)[len(gaps) // 2], 1000 * max(gaps)))
    return n


def stored(d, names, timeout=30):
    """Wait until the fd store holds exactly names: the fake service manager takes each
    FDSTORE message on its own thread, a moment after ttyhubd sent it."""
    try:
        runner.wait_until(lambda: d.stored_names() == names, timeout, "the fd store")
    except AssertionError:
        raise AssertionError("the fd store holds %r, not %r" % (d.stored_names(), names)) \
            from None


def test_sigterm(wd):
    g = Guest(wd, "fg")
    d = start(wd, ("fg", g))
    logfile = os.path.join(wd, "logs", "fg.log")
    try:
        stored(d, ["con-fg", "ring-fg"])
        n = restart_loop(d, logfile, signal.SIGTERM, count=None if LONG else 10,
                         seconds=30 if LONG else None)
        stats = g.stop()
        runner.require(stats["clients_accepted"] == 1,
                       "the guest saw %d connections: a restart dropped it" %
                       stats["clients_accepted"])
        wait_disconnected(d, "fg")
        want = expected(stats)
        # The log first: attaching adds a marker line to it.
        with open(logfile, "rb") as f:
            compare(f.read(), want, "console log after %d SIGTERM restarts" % n)
        compare(history(d, "fg", len(want)), want, "history after %d SIGTERM restarts" % n)
        stored(d, ["ring-fg"])
        print("  %d restarts, %d bytes, nothing lost or repeated" % (n, len(want)))
    finally:
        d.stop()
        g.stop()


def test_sigkill(wd):
    g = Guest(wd, "fk")
    d = start(wd, ("fk", g))
    logfile = os.path.join(wd, "logs", "fk.log")
    try:
        kills = restart_loop(d, logfile, signal.SIGKILL, count=10 if not LONG else 30)
        stats = g.stop()
        runner.require(stats["clients_accepted"] == 1, stats)
        wait_disconnected(d, "fk")
        total = stats["bytes_written"]
        # What a kill loses is in the middle: the history ends with the guest's last bytes.
        end = expected(stats)[-LINE:]
        got = history(d, "fk", lambda data: data.endswith(end))
        c = pattern.check_lines(got, line_length=LINE)
        runner.require(c["first"] == 0 and not c["reorders"], c)
        runner.require(len(c["gaps"]) <= kills and c["corrupt"] <= kills, c)
        # At most one read per kill: a read takes at most what the guest's socket held.
        lost = total - len(got)
        runner.require(0 <= lost <= kills * (1 << 20), "lost %d bytes in %d kills" %
                       (lost, kills))
        print("  %d kills: %d of %d bytes lost, %d gaps" % (kills, lost, total,
                                                             len(c["gaps"])))
    finally:
        d.stop()
        g.stop()


def test_guest_exits_in_gap(wd):
    g = Guest(wd, "fx")
    d = start(wd, ("fx", g))
    logfile = os.path.join(wd, "logs", "fx.log")
    stats = {}
    try:
        restart_loop(d, logfile, signal.SIGTERM, count=2)
        d.restart(between=lambda: stats.update(g.stop()))
        wait_disconnected(d, "fx")
        want = expected(stats)
        with open(logfile, "rb") as f:
            compare(f.read(), want, "console log of a guest that left in the gap")
        compare(history(d, "fx", len(want)), want, "history of a guest that left in the gap")
        stored(d, ["ring-fx"])
    finally:
        d.stop()
        g.stop()


def test_console_undefined(wd):
    a, b = Guest(wd, "ca", rate=20000), Guest(wd, "cb", rate=20000)
    d = start(wd, ("ca", a), ("cb", b))
    try:
        stored(d, ["con-ca", "con-cb", "ring-ca", "ring-cb"])
        # cb is no longer defined after the restart: its history goes to its log, its fds
        # leave the store, and the guest sees the connection close.
        d.restart(args=["--ring-size", RING, "--log-dir", os.path.join(wd, "logs"),
                        "--console", "ca=" + a.sock])
        d.wait_for(lambda: d.stored_names() == ["con-ca", "ring-ca"],
                   what="cb's fds to leave the store")
        stats = b.stop()
        with open(os.path.join(wd, "logs", "cb.log"), "rb") as f:
            got = f.read()
        c = pattern.check_lines(got, line_length=LINE)
        runner.require(c["first"] == 0 and not c["gaps"] and not c["reorders"], c)
        runner.require(stats["clients_accepted"] == 1, stats)
    finally:
        d.stop()
        a.stop()
        b.stop()


def test_path_changed(wd):
    a, b = Guest(wd, "pa", rate=20000), Guest(wd, "pb", rate=20000, tag="pb")
    d = start(wd, ("cp", a))
    try:
        # Same console, another chardev path: the history is kept, the connection is not.
        d.restart(args=["--ring-size", RING, "--log-dir", os.path.join(wd, "logs"),
                        "--console", "cp=" + b.sock])
        d.wait_log(r"console cp: the kept connection was to \S+pa\.sock, now \S+pb\.sock")
        d.wait_for(lambda: (d.console("cp") or {}).get("state") == "connected",
                   what="cp connected to the new path")
        stored(d, ["con-cp", "ring-cp"])
        logfile = os.path.join(wd, "logs", "cp.log")

        def lines_of_b():
            with open(logfile, "rb") as f:
                return b"pb 000000000000 " in f.read()
        d.wait_for(lines_of_b, what="the new guest's output in the log")
        sa, sb = a.stop(), b.stop()
        runner.require(sa["clients_accepted"] == 1 and sb["clients_accepted"] == 1, (sa, sb))
    finally:
        d.stop()
        a.stop()
        b.stop()


def test_clients_across_restart(wd):
    g = Guest(wd, "fc", rate=20000)
    d = start(wd, ("fc", g))
    late = []
    try:
        c = hub.BrokerClient(d.socket)
        c.send({"type": "attach", "console": "fc", "mode": "ro", "replay": 0})
        c.expect_type("attached")

        def connect_in_gap():
            # The manager owns the listening socket: the kernel queues this connection.
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(30)
            s.connect(d.socket)
            p = json.dumps({"type": "hello", "version": 1, "client": "gap"}).encode()
            s.sendall(b"C" + struct.pack(">I", len(p)) + p)
            late.append(s)
        d.restart(between=connect_in_gap)
        # The attached client was told why it lost the console, then the connection closed.
        msg = c.expect_type("detached")
        runner.require(msg.get("reason") == "shutdown", msg)
        try:
            while True:
                c.next()
        except EOFError:
            pass
        c.close()
        # The one that connected while ttyhubd was down is served by the new process.
        hdr = b""
        while len(hdr) < 5:
            chunk = late[0].recv(5 - len(hdr))
            assert chunk, "the queued connection was closed"
            hdr += chunk
        n = struct.unpack(">I", hdr[1:5])[0]
        body = b""
        while len(body) < n:
            body += late[0].recv(n - len(body))
        runner.require(hdr[0:1] == b"C" and json.loads(body)["type"] == "hello", body)
    finally:
        for s in late:
            s.close()
        d.stop()
        g.stop()


def test_qemu(wd):
    g = G.Guest(wd, "qs", extra_args=("-S",))
    d = start(wd, ("qs", g.serial_sock))
    lines = 5000 if not LONG else 50000
    try:
        w = hub.BrokerClient(d.socket)
        w.send({"type": "attach", "console": "qs", "mode": "rw", "replay": 0})
        w.expect_type("attached")
        g.qmp({"execute": "cont"})
        deadline = time.monotonic() + 120
        while b"# " not in w.data:
            assert time.monotonic() < deadline, "no shell prompt: %r" % w.data[-300:]
            w.send_data(b"\n")
            try:
                w.read_data_until(b"# ", timeout=1)
            except AssertionError:
                pass
        w.send_data(b"i=0; while [ $i -lt %d ]; do echo QL$i; i=$((i+1)); done; "
                    b"echo Q$((1+1))DONE\n" % lines)
        w.read_data_until(b"QL1\r\n", timeout=60)
        w.close()
        logfile = os.path.join(wd, "logs", "qs.log")

        def done():
            with open(logfile, "rb") as f:
                return b"Q2DONE" in f.read()
        n = restart_loop(d, logfile, signal.SIGTERM, count=10 if not LONG else None,
                         seconds=30 if LONG else None, until=done)
        got = history(d, "qs", lambda data: b"Q2DONE\r\n" in data, timeout=120)
        seen = [int(x) for x in re.findall(rb"QL(\d+)\r\n", got)]
        runner.require(seen == list(range(lines)),
                       "%d restarts: %d lines, first missing or repeated near %s" % (
                           n, len(seen), next((i for i, v in enumerate(seen) if v != i), None)))
        print("  %d restarts while the guest printed %d lines: every line once" % (n, lines))
    finally:
        d.stop()
        g.stop()


def test_libvirt(wd):
    serial = os.path.join(wd, "lvm-serial0.sock")
    lv = virt.Libvirtd(wd).start()
    d = hub.Daemon(wd, "--libvirt", lv.uri_ro, "--ring-size", RING, managed=True).start()
    try:
        dom = lv.define_and_start("lvm", serial, None)
        uuid = dom.UUIDString()
        d.wait_for(lambda: (d.console("lvm:serial0") or {}).get("state") == "connected",
                   timeout=30, what="the libvirt console connected")
        key = uuid + "%3Aserial0"
        stored(d, ["con-" + key, "ring-" + key])
        before = d.log().count("connected to " + serial)
        d.restart()
        # Defined again by the libvirt source (from the loop, after READY=1): same connection.
        d.wait_log(r"console lvm:serial0: history kept across a restart of ttyhubd "
                   r"\(\d+ bytes, still connected\)", timeout=30)
        d.wait_for(lambda: (d.console("lvm:serial0") or {}).get("state") == "connected",
                   timeout=30, what="the libvirt console after the restart")
        runner.require(d.log().count("connected to " + serial + " (kept across") == 1,
                       "not the kept connection")
        runner.require(d.log().count("connected to " + serial) == before + 1, "reconnected")
        stored(d, ["con-" + key, "ring-" + key])
        w = hub.BrokerClient(d.socket)
        w.send({"type": "attach", "console": "lvm", "mode": "rw", "replay": 0})
        w.expect_type("attached")
        deadline = time.monotonic() + 120
        while b"LV42" not in w.data:
            assert time.monotonic() < deadline, "no answer: %r" % w.data[-300:]
            w.send_data(b"echo LV$((6*7))\n")
            try:
                w.read_data_until(b"LV42", timeout=2)
            except AssertionError:
                pass
        w.close()
    finally:
        d.stop()
        lv.stop()


def test_store_full(wd):
    g = Guest(wd, "ff", rate=20000)
    d = start(wd, ("ff", g), fdstore_max=1)
    try:
        d.wait_log(r"fd store is full \(FileDescriptorStoreMax=1\)")
        stored(d, ["ring-ff"])
    finally:
        d.stop()
        g.stop()


def main():
    res = runner.Runner()
    wd = hub.workdir("store")
    for name, fn in [("SIGTERM restarts lose nothing", test_sigterm),
                     ("SIGKILL restarts lose at most one read each", test_sigkill),
                     ("a guest that exits in the gap is read to its EOF",
                      test_guest_exits_in_gap),
                     ("a console no longer defined leaves the store", test_console_undefined),
                     ("a kept connection to an old path is not used", test_path_changed),
                     ("a real guest's lines survive restarts", test_qemu),
                     ("libvirt consoles are claimed again after a restart", test_libvirt),
                     ("clients: told at SIGTERM, and served when they connect in the gap",
                      test_clients_across_restart),
                     ("a full store is reported", test_store_full)]:
        sub = os.path.join(wd, fn.__name__[5:])
        os.makedirs(sub)
        res.run(name, fn, sub)
    res.finish(wd)


if __name__ == "__main__":
    main()
