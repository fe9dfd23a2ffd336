#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writer input reaches the guest with backpressure, never unbounded buffering.

The writer pastes 10 MiB into a guest that does not read its console.
ttyhubd must stop reading the writer once the chardev socket is full: the
writer is throttled, ttyhubd's memory does not grow with the paste, the
guest's own output still reaches a watcher during the stall, and when the
guest starts reading it receives every pasted byte, in order.
"""

import hashlib
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import runner  # noqa: E402

PASTE = 10 * 1024 * 1024


def paste_bytes():
    block = bytes(range(256)) * 256  # 64 KiB
    return block * (PASTE // len(block))


def main():
    res = runner.Runner()
    wd = hub.workdir("bp")
    path = os.path.join(wd, "stuck.sock")
    lst = socket.socket(socket.AF_UNIX)
    lst.bind(path)
    lst.listen(1)
    d = hub.Daemon(wd, "--console", "stuck=" + path).start()
    guest, _ = lst.accept()
    reading = threading.Event()
    received = []

    def guest_side():
        # Print a line every 50 ms; read input only once `reading` is set.
        n = 0
        guest.setblocking(False)
        while len(b"".join(received)) < PASTE:
            try:
                guest.send(b"tick %d\n" % n)
            except BlockingIOError:
                pass
            n += 1
            if reading.is_set():
                try:
                    while True:
                        chunk = guest.recv(1 << 16)
                        if not chunk:
                            return
                        received.append(chunk)
                except BlockingIOError:
                    pass
            time.sleep(0.05 if not reading.is_set() else 0.001)

    gt = threading.Thread(target=guest_side, daemon=True)
    gt.start()
    writer = hub.BrokerClient(d.socket)
    writer.send({"type": "attach", "console": "stuck", "mode": "rw", "replay": 0})
    assert writer.expect_type("attached")["role"] == "writer"
    watcher = hub.BrokerClient(d.socket)
    watcher.send({"type": "attach", "console": "stuck", "mode": "ro", "replay": 0})
    watcher.expect_type("attached")
    data = paste_bytes()
    sent = [0]

    def paste():
        # Frames of 16 KiB, as a front would send them.
        for off in range(0, len(data), 16384):
            writer.send_data(data[off:off + 16384])
            sent[0] = off + 16384

    rss0 = d.rss_kib()
    pt = threading.Thread(target=paste, daemon=True)
    try:
        pt.start()
        time.sleep(3)

        def throttled():
            assert pt.is_alive() and sent[0] < PASTE, "the paste was not throttled"
            print("  after 3 s: %d KiB of %d KiB accepted from the writer"
                  % (sent[0] // 1024, PASTE // 1024), flush=True)
            assert sent[0] < 2 * 1024 * 1024, sent[0]
        res.run("writer throttled by a guest that does not read", throttled)

        def memory_flat():
            grow = d.rss_kib() - rss0
            print("  ttyhubd RSS growth during the stalled paste: %d KiB" % grow, flush=True)
            if not hub.SANITIZED:
                assert grow < 2048, grow
        res.run("no memory growth while the guest does not read", memory_flat)

        def watcher_live():
            n = len(watcher.data)
            watcher.read_data_until(b"tick", timeout=5)
            deadline = time.monotonic() + 3
            while watcher.data.count(b"tick") < n // 8 + 5 and time.monotonic() < deadline:
                watcher.sock.settimeout(1)
                watcher.pump()
            assert watcher.data.count(b"tick") >= 5, watcher.data[-200:]
        res.run("guest output still flows during the stall", watcher_live)

        reading.set()
        pt.join(60)
        gt.join(60)

        def all_delivered():
            got = b"".join(received)
            assert len(got) == PASTE, "guest received %d of %d bytes" % (len(got), PASTE)
            assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), \
                "pasted bytes corrupted or reordered"
        res.run("every pasted byte reaches the guest in order", all_delivered)
        res.run("daemon alive", lambda: runner.require(d.alive(), d.log()))
    finally:
        d.stop()
        guest.close()
        lst.close()
    res.run("a paused writer whose console goes away is not left deaf",
            paused_writer_console_removed, wd)
    res.finish(wd)


def paused_writer_console_removed(wd):
    xmldir = os.path.join(wd, "xml")
    os.mkdir(xmldir)
    path = os.path.join(wd, "stuck2.sock")
    lst = socket.socket(socket.AF_UNIX)
    lst.bind(path)
    lst.listen(1)
    with open(os.path.join(xmldir, "stuck2.xml"), "w") as f:
        f.write("<domain><name>stuck2</name><devices><serial type='unix'>"
                "<source mode='bind' path='%s'/><target port='0'/><alias name='serial0'/>"
                "</serial></devices></domain>" % path)
    d = hub.Daemon(wd, "--domain-xml", xmldir, name="ttyhubd-2").start()
    guest, _ = lst.accept()  # connected, and never reads
    try:
        w = hub.BrokerClient(d.socket)
        w.send({"type": "attach", "console": "stuck2", "mode": "rw", "replay": 0})
        assert w.expect_type("attached")["role"] == "writer"
        w.sock.setblocking(False)
        chunk = hub.frame_data(b"p" * 16384)
        sent = 0
        try:  # fill every buffer on the way until ttyhubd stops reading us
            while sent < 8 * 1024 * 1024:
                sent += w.sock.send(chunk)
        except BlockingIOError:
            pass
        w.sock.setblocking(True)
        w.sock.settimeout(10)
        assert sent < 8 * 1024 * 1024, "the writer was never paused"
        time.sleep(0.5)
        os.unlink(os.path.join(xmldir, "stuck2.xml"))
        # Told, detached, and the connection still answers requests.
        msg = w.expect_type("detached")
        assert msg["reason"] == "console-gone", msg
        assert "definition was removed" in msg["text"], msg
        w.send({"type": "list"})
        errors = 0
        while True:
            msg = w.next()
            if msg["type"] == "list":
                break
            if msg["type"] == "error":
                assert msg["code"] == "not-attached", msg
                errors += 1
        assert msg["consoles"] == [], msg
        assert errors <= 1, "%d 'not attached' errors for one detach" % errors
        w.close()
    finally:
        d.stop()
        guest.close()
        lst.close()


if __name__ == "__main__":
    main()
