#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Resume by (epoch, offset) and the writer's lease, against a real ttyhubd, with raw
protocol clients (hub.BrokerClient) and synthetic guests (fake-guest: numbered lines).

* Exact: a watcher reads, disconnects, and attaches again with resume {epoch, offset} of
  the last output frame it got: the two streams joined are every line once, in order.
* Gap: a second ttyhubd with a 4 KiB history (--ring-size); the watcher comes back after
  the history moved past its offset: `attached` says "gap" with the count, a notice with
  the same count follows, and output continues from the oldest byte kept.
* Restarted: an epoch the console does not know gets the "restarted" notice and the replay.
* The writer's lease: a writer's connection drops (EOF), another client attaches rw and
  becomes the writer with a new lease; the first comes back with its old lease and is a
  watcher.  The writer drops and comes back with its lease while nobody writes, asking
  only "ro": it is the writer again, and what it types reaches the guest.  A requested
  detach gives the lease up.
* `output`: from the oldest byte in pieces (next, more), the same bytes the stream had, the
  last N bytes, an expired start moved to the oldest byte.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import pattern  # noqa: E402
import runner  # noqa: E402

LINE = 64
RATE = 5000  # bytes a second: the big history holds minutes of it, the small one < 1 s


class Ctx:
    pass


ctx = Ctx()


def attach(c, console, mode="ro", replay=0, resume=None):
    req = {"type": "attach", "console": console, "mode": mode, "replay": replay}
    if resume is not None:
        req["resume"] = resume
    c.send(req)
    return c.expect_type("attached")


def read_lines(c, n, tag):
    """Read until c.data holds at least n more whole pattern lines."""
    want = pattern.check_lines(c.data, tag=tag, line_length=LINE)["lines"] + n
    while pattern.check_lines(c.data, tag=tag, line_length=LINE)["lines"] < want:
        c.pump()


def output(d, **req):
    c = hub.BrokerClient(d.socket)
    try:
        c.send(dict({"type": "output"}, **req))
        return c.expect_type("output")
    finally:
        c.close()


def writer_of(d, console):
    c = hub.BrokerClient(d.socket)
    try:
        c.send({"type": "list", "console": console})
        return c.expect_type("list")["consoles"][0]["writer"]
    finally:
        c.close()


def check_stream(data, tag):
    r = pattern.check_lines(data, tag=tag, line_length=LINE)
    assert r["lines"] > 0 and not r["gaps"] and not r["reorders"] and not r["corrupt"], r
    return r


def frames_contiguous(c):
    for (s0, e0), (s1, e1) in zip(c.frames, c.frames[1:]):
        assert s1 == e0, "output frames not contiguous: %r then %r" % ((s0, e0), (s1, e1))
    # Live output: each frame holds exactly end - start bytes.
    assert len(c.data) == c.frames[-1][1] - c.frames[0][0], (len(c.data), c.frames[:3])


def t_exact():
    a = hub.BrokerClient(ctx.d.socket)
    att = attach(a, "fg")
    assert "resumed" not in att and att["offset"] == att["head"], att
    read_lines(a, 20, "fg")
    a.close()
    frames_contiguous(a)
    assert a.frames[0][0] == att["offset"], (a.frames[0], att)
    off = a.end
    # Let the guest write on while nobody watches.
    ctx.d.wait_for(lambda: output(ctx.d, console="fg", start=-1)["head"] > off + 5 * LINE,
                   what="output while away")
    b = hub.BrokerClient(ctx.d.socket)
    att = attach(b, "fg", replay="all", resume={"epoch": att["epoch"], "offset": off})
    assert att["resumed"] == "exact" and att["offset"] == off, att
    assert "lost" not in att
    read_lines(b, 20, "fg")
    b.close()
    assert b.frames[0][0] == off, b.frames[:2]
    frames_contiguous(b)
    r = check_stream(a.data + b.data, "fg")
    print("figure: %d lines across the resume, none twice, none missing" % r["lines"],
          flush=True)
    # Past head: clamped to head, still exact.
    c = hub.BrokerClient(ctx.d.socket)
    att2 = attach(c, "fg", resume={"epoch": att["epoch"], "offset": 1 << 50})
    assert att2["resumed"] == "exact" and att2["offset"] == att2["head"], att2
    c.close()


def t_gap():
    a = hub.BrokerClient(ctx.small.socket)
    att = attach(a, "sm")
    read_lines(a, 3, "sm")
    a.close()
    off = a.end
    # Away until the 4 KiB history no longer holds the offset.
    ctx.small.wait_for(lambda: output(ctx.small, console="sm", start=off).get("expired"),
                       what="the history to move past the offset")
    b = hub.BrokerClient(ctx.small.socket)
    att2 = attach(b, "sm", resume={"epoch": att["epoch"], "offset": off})
    assert att2["resumed"] == "gap", att2
    lost = att2["tail"] - off
    assert lost > 0 and att2["lost"] == lost and att2["offset"] == att2["tail"], (att2, off)
    notice = b.next()
    assert notice["type"] == "notice" and notice["lost"] == lost, notice
    assert notice["text"] == ("%d bytes of output were lost (older than the history); "
                              "continuing from the oldest byte kept" % lost), notice
    read_lines(b, 3, "sm")
    b.close()
    # From the oldest byte kept, raw and whole.
    assert b.frames[0][0] == att2["tail"], (b.frames[0], att2)
    frames_contiguous(b)
    check_stream(b.data, "sm")


def t_restarted():
    c = hub.BrokerClient(ctx.d.socket)
    att = attach(c, "fg", replay="all")
    epoch = att["epoch"]
    c.close()
    other = "%016x" % (int(epoch, 16) ^ 0x5a5a)
    c = hub.BrokerClient(ctx.d.socket)
    att = attach(c, "fg", replay="all", resume={"epoch": other, "offset": 7})
    assert att["resumed"] == "restarted" and att["epoch"] == epoch, att
    assert att["offset"] == att["tail"], att  # the replay asked for: all
    notice = c.next()
    assert notice["type"] == "notice", notice
    assert notice["text"] == "console fg restarted since you left; replaying its history", \
        notice
    read_lines(c, 5, "fg")
    c.close()
    assert c.frames[0][0] == att["tail"], c.frames[0]


def input_log():
    try:
        with open(ctx.input_log, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def t_lease():
    ctx.d.wait_for(lambda: writer_of(ctx.d, "fg") is None, what="nobody writing")
    w1 = hub.BrokerClient(ctx.d.socket)
    att = attach(w1, "fg", mode="rw")
    assert att["role"] == "writer" and len(att["lease"]) == 32, att
    l1, epoch = att["lease"], att["epoch"]
    w1.close()  # the connection drops: the lease stays
    ctx.d.wait_for(lambda: writer_of(ctx.d, "fg") is None, what="the writer gone")

    w2 = hub.BrokerClient(ctx.d.socket)
    att = attach(w2, "fg", mode="rw")
    assert att["role"] == "writer" and att["lease"] != l1, att
    l2 = att["lease"]
    # The first comes back with its old lease: someone writes, so it watches.
    w1 = hub.BrokerClient(ctx.d.socket)
    att = attach(w1, "fg", mode="rw", resume={"epoch": epoch, "offset": 0, "lease": l1})
    assert att["role"] == "watcher" and "lease" not in att, att
    w1.close()

    w2.close()
    ctx.d.wait_for(lambda: writer_of(ctx.d, "fg") is None, what="the second writer gone")
    # Back with its lease while nobody writes: the writer again, whatever mode it asked.
    w2 = hub.BrokerClient(ctx.d.socket)
    att = attach(w2, "fg", mode="ro", resume={"epoch": epoch, "offset": 0, "lease": l2})
    assert att["role"] == "writer" and att["lease"] == l2, att
    w2.send_data(b"typed-after-resume\n")
    ctx.d.wait_for(lambda: b"typed-after-resume" in input_log(), what="input at the guest")

    # A requested detach gives the lease up.
    w2.send({"type": "detach"})
    w2.expect_type("detached")
    w2.close()
    w3 = hub.BrokerClient(ctx.d.socket)
    att = attach(w3, "fg", mode="ro", resume={"epoch": epoch, "offset": 0, "lease": l2})
    assert att["role"] == "watcher", att
    w3.close()


def t_output():
    sm = ctx.small
    first = output(sm, console="sm")
    assert first["start"] > 0 and first["start"] >= first["head"] - 4096, first
    assert "expired" not in first, first
    # In pieces with next and more, from the oldest byte to (at least) the head of the
    # first answer (the big history: the guest writing on cannot expire what is left).
    first = output(ctx.d, console="fg")
    got, start, head = b"", first["start"], first["head"]
    assert start == 0 and head > 1000, first
    while start < head:
        o = output(ctx.d, console="fg", start=start, max=1000)
        assert o["start"] == start and 0 < o["next"] - start <= 1000, o
        got += o["contents"].encode()
        assert o["more"] == (o["next"] < o["head"]), o
        start = o["next"]
    assert len(got) == start - first["start"]
    check_stream(got, "fg")
    # The last N bytes.
    o = output(sm, console="sm", start=-100)
    assert o["next"] - o["start"] == 100 and o["start"] == o["head"] - 100, o
    # Expired: moved to the oldest byte, with how much is gone.
    o = output(sm, console="sm", start=0)
    assert o["expired"] is True and o["lost"] == o["start"] > 0, o
    # The same bytes a watcher got as output frames.
    c = hub.BrokerClient(ctx.d.socket)
    attach(c, "fg")
    read_lines(c, 5, "fg")
    c.close()
    s0 = c.frames[0][0]
    o = output(ctx.d, console="fg", start=s0, max=len(c.data))
    assert o["contents"].encode() == c.data[:o["next"] - s0] and o["next"] > s0, o
    # A console nobody defined is answered like attach's.
    x = hub.BrokerClient(ctx.d.socket)
    x.send({"type": "output", "console": "nope"})
    e = x.next()
    assert e["type"] == "error" and e["code"] == "unknown-console", e
    x.close()


def main():
    res = runner.Runner()
    wd = hub.workdir("resume")
    sock = os.path.join(wd, "fg.sock")
    ctx.input_log = os.path.join(wd, "fg.input")
    small_sock = os.path.join(wd, "sm.sock")
    guests = [subprocess.Popen([hub.FAKE_GUEST, "--socket", sock, "--rate", str(RATE),
                                "--line-length", str(LINE), "--tag", "fg",
                                "--input-log", ctx.input_log]),
              subprocess.Popen([hub.FAKE_GUEST, "--socket", small_sock, "--rate", str(RATE),
                                "--line-length", str(LINE), "--tag", "sm"])]
    try:
        deadline = time.monotonic() + 10
        while not (os.path.exists(sock) and os.path.exists(small_sock)):
            assert time.monotonic() < deadline, "fake guests did not bind"
            time.sleep(0.02)
        ctx.d = hub.Daemon(wd, "--console", "fg=" + sock).start()
        ctx.small = hub.Daemon(wd, "--console", "sm=" + small_sock, "--ring-size", "4096",
                               name="ttyhubd-small").start()
        try:
            for d, name in ((ctx.d, "fg"), (ctx.small, "sm")):
                d.wait_for(lambda: (d.console(name) or {}).get("state") == "connected",
                           what=name + " connected")
            # Some history before the first test (the small one overflows its 4 KiB).
            ctx.small.wait_for(lambda: output(ctx.small, console="sm")["start"] > 0,
                               what="the small history full")
            for name, fn in [(n, f) for n, f in globals().items() if n.startswith("t_")]:
                res.run(name[2:].replace("_", " "), fn)
        finally:
            ctx.small.stop()
            ctx.d.stop()
    finally:
        for p in guests:
            p.terminate()
            p.wait()
    res.finish(wd)


if __name__ == "__main__":
    main()
