#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Consoles that write a byte at a time (an emulated UART).

* Real QEMU guest: `seq` on ttyS0 reaches an attached user whole and in order, while
  ttyhubd reads it in far fewer reads than bytes (it pauses briefly between reads in a run
  of tiny writes; woken for every byte it made about one read per byte), and an echo typed
  right after the burst still comes back.
* Fault injection: a fake chardev sends one byte per write and hangs up at once, so the
  hang-up often lands while reading is paused: every byte still reaches the history.
"""

import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest as G  # noqa: E402
import hub  # noqa: E402
import runner  # noqa: E402

SEQ_MAX = 20000
TINY_LINES = 3000


def read_calls(d):
    with open("/proc/%d/io" % d.pid()) as f:
        return int(re.search(r"syscr: (\d+)", f.read()).group(1))


def t_uart_burst(d, w):
    G.sync_shell(w)
    before = read_calls(d)
    start = w.pos
    w.send("seq 1 %d; echo SEQ$((40+2))\r" % SEQ_MAX)
    w.expect(r"(?m)^SEQ42\r?$", timeout=120)
    reads = read_calls(d) - before
    out = w.transcript[start:]
    nums = [int(x) for x in re.findall(rb"(?m)^(\d+)\r?$", out)]
    assert nums == list(range(1, SEQ_MAX + 1)), \
        "got %d numbers, first wrong at %r" % (len(nums), next(
            (i for i, (a, b) in enumerate(zip(nums, range(1, SEQ_MAX + 1))) if a != b), None))
    size = len(out)
    print("figure: %d bytes of seq output in %d read calls of ttyhubd (%.1f bytes per read)"
          % (size, reads, size / max(reads, 1)), flush=True)
    assert reads < size / 6, "%d reads for %d bytes: reading is not paced" % (reads, size)
    # Right after the burst, an echo is not held back.
    t0 = time.monotonic()
    w.send("echo QUICK$((40+2))\r")
    w.expect(r"(?m)^QUICK42\r?$", timeout=10)
    print("figure: echo after the burst, s = %.3f" % (time.monotonic() - t0), flush=True)


def serve_tiny(path, payload, done):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    try:
        conn, _ = srv.accept()
        for i in range(len(payload)):
            conn.sendall(payload[i:i + 1])
        conn.close()  # at once: the hang-up may land while ttyhubd is paused
    finally:
        srv.close()
        done.set()


def t_hangup_while_paused(wd):
    payload = b"".join(b"tiny %05d\n" % i for i in range(TINY_LINES))
    sock = os.path.join(wd, "tiny.sock")
    done = threading.Event()
    th = threading.Thread(target=serve_tiny, args=(sock, payload, done), daemon=True)
    th.start()
    d = hub.Daemon(wd, "--console", "tiny=" + sock, name="ttyhubd-tiny").start()
    try:
        assert done.wait(60), "the fake chardev was not served"
        d.wait_for(lambda: (d.console("tiny") or {}).get("state") != "connected",
                   what="the hang-up seen")
        c = hub.BrokerClient(d.socket)
        c.send({"type": "attach", "console": "tiny", "mode": "ro", "replay": "all"})
        c.expect_type("attached")
        data = c.read_data_until(b"tiny %05d\n" % (TINY_LINES - 1))
        got = data[data.index(b"tiny 00000"):]
        got = got[:got.index(b"tiny %05d\n" % (TINY_LINES - 1)) + len(b"tiny 00000\n")]
        assert got == payload, "history differs from what the guest wrote (%d vs %d bytes)" \
            % (len(got), len(payload))
        c.close()
        assert d.alive()
    finally:
        d.stop()


def main():
    res = runner.Runner()
    wd = hub.workdir("tiny")
    g = G.Guest(wd, "tw")
    d = hub.Daemon(wd, "--console", "tw=" + g.serial_sock).start()
    w = None
    try:
        d.wait_for(lambda: (d.console("tw") or {}).get("state") == "connected",
                   what="console connected")
        w = G.Pty(d.cli_cmd("attach", "tw"))
        w.expect(r"attached to tw read-write")
        res.run("a UART burst arrives whole, in far fewer reads, and an echo follows",
                t_uart_burst, d, w)
    finally:
        if w:
            w.close()
        d.stop()
        g.stop()
    res.run("a hang-up while reading is paused loses nothing", t_hangup_while_paused, wd)
    res.finish(wd)


if __name__ == "__main__":
    main()
