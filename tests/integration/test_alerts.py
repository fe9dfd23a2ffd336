#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Alerts (--alert NAME=REGEX and the defaults).

One ttyhubd serves a real QEMU guest (console "vm", its ttyS0 shell) and a synthetic
guest ("fg", started later).  The harness has no journal, so alerts are ttyhubd's stderr
lines ("alert NAME on CONSOLE: LINE").

* The guest prints "Kernel panic - not syncing" (printf builds it, so the echoed command
  line does not match): exactly one alert on stderr, and an attached client gets the
  notice "alert panic: ..." after the line itself.  A user alert with colours in the
  middle of its word still matches.
* The synthetic guest writes 10,000 lines that all match: the alerts are bounded by the
  rate limit over the run time (5 per started minute), and the QEMU guest's shell answers
  while that happens.
* Under a journal (a private mount namespace whose /run/systemd/journal/socket is the
  test's, and JOURNAL_STREAM naming ttyhubd's stderr, as systemd sets it): an alert is one
  native journal entry with MESSAGE_ID, PRIORITY and the TTYHUB_* fields, and nothing on
  stderr.
* Restarts (ttyhubd under the fake service manager, the chardev connection and the ring
  kept across): a line seen before the restart is not alerted again, and a line the guest
  wrote while ttyhubd was away is alerted once, by the next ttyhubd.
* An invalid regex (command line or configuration file): ttyhubd exits non-zero with an
  error naming the spec and the regex error.  On SIGHUP, a configuration with one keeps
  the old alerts, and a good one replaces them (no-default-alerts drops the defaults).
"""

import os
import re
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest as G  # noqa: E402
import hub  # noqa: E402
import runner  # noqa: E402

BURST = 5           # ALERT_RATE_BURST
WINDOW = 60.0       # ALERT_RATE_WINDOW_USEC, seconds
FLOOD_LINES = 10000
LINE_LEN = 64
ALERT_LINE = re.compile(r"^<[0-9]>ttyhubd: alert (\S+) on (\S+): (.*)$", re.M)


def alerts(d, console=None):
    """(name, console, text) of every alert line ttyhubd wrote so far."""
    return [m.groups() for m in ALERT_LINE.finditer(d.log())
            if console is None or m.group(2) == console]


def attach(d, console, mode="rw", replay=0):
    c = hub.BrokerClient(d.socket, timeout=30)
    c.send({"type": "attach", "console": console, "mode": mode, "replay": replay})
    c.expect_type("attached")
    c.notice_at = []  # (text, how much output came before it), as read_until() saw them
    return c


def notices(c):
    return [m["text"] for m in c.messages if m.get("type") == "notice"]


def read_until(c, pred, what, timeout=60):
    """Read frames from c until pred() holds."""
    deadline = time.monotonic() + timeout
    saved = c.sock.gettimeout()
    try:
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("timed out waiting for %s: %r %r"
                                     % (what, c.data[-500:], notices(c)[-5:]))
            c.sock.settimeout(left)
            try:
                msg = c.pump()
            except TimeoutError:
                continue
            if msg and msg.get("type") == "notice":
                c.notice_at.append((msg["text"], len(c.data)))
    finally:
        c.sock.settimeout(saved)


def run_shell(c, cmd, answer, timeout=60):
    """Type cmd into the guest's shell; wait for answer (bytes) in the output after it."""
    start = len(c.data)
    c.send_data(cmd.encode() + b"\r")
    read_until(c, lambda: answer in c.data[start:], "%r after %r" % (answer, cmd), timeout)


def wait_notice(c, needle, timeout=30):
    read_until(c, lambda: any(needle in t for t in notices(c)), "a notice with %r" % needle,
               timeout)
    return [t for t in notices(c) if needle in t]


def t_panic(d, c):
    before = alerts(d)
    run_shell(c, "printf 'Kernel %snic - not syncing: test\\n' pa", b"# ")
    runner.wait_until(lambda: len(alerts(d)) > len(before), 30, "the panic alert on stderr")
    # Sync with the shell once more: any second alert would be in the log by now.
    run_shell(c, "echo D$((40+2))ONE", b"D42ONE")
    new = alerts(d)[len(before):]
    runner.require(new == [("panic", "vm", "Kernel panic - not syncing: test")], new)
    got = wait_notice(c, "alert panic:")
    runner.require(got == ["alert panic: Kernel panic - not syncing: test"], got)
    # The notice comes after the line it is about.
    line_end = c.data.find(b"Kernel panic - not syncing: test\r\n") + len("Kernel panic")
    at = [n for t, n in c.notice_at if t.startswith("alert panic:")]
    runner.require(line_end > len("Kernel panic") and at and at[0] >= line_end,
                   (line_end, at))


def t_colours(d, c):
    before = alerts(d, "vm")
    # ESC [31m between "MAR" and "KER": the regex sees the text, not the colours.
    run_shell(c, "printf 'MAR\\033[31mKER\\033[0m%s\\n' 77", b"# ")
    runner.wait_until(lambda: len(alerts(d, "vm")) > len(before), 30, "the marker alert")
    run_shell(c, "echo S$((1+1))YNC", b"S2YNC")
    new = alerts(d, "vm")[len(before):]
    runner.require(new == [("marker", "vm", "MARKER77")], new)
    wait_notice(c, "alert marker: MARKER77")


def t_flood(d, c, wd):
    sock = os.path.join(wd, "fg.sock")
    stats = os.path.join(wd, "fg.stats")
    before = len(alerts(d, "fg"))
    # Attached while fg waits for its guest: it sees every line from the first.
    w = attach(d, "fg", mode="ro")
    t0 = time.monotonic()
    fg = subprocess.Popen([hub.FAKE_GUEST, "--socket", sock, "--tag", "Oops:",
                           "--line-length", str(LINE_LEN), "--bytes",
                           str(FLOOD_LINES * LINE_LEN), "--wait-client", "--stats", stats])
    try:
        # Meanwhile the other console serves: the QEMU guest's shell answers.
        run_shell(c, "echo B$((3*3))USY", b"B9USY")
        last = b"Oops: %012d " % (FLOOD_LINES - 1)
        w.read_data_until(last, timeout=120)
        assert fg.wait(60) == 0
    finally:
        if fg.poll() is None:
            fg.terminate()
            fg.wait()
    elapsed = time.monotonic() - t0
    # The last line was sent to the watcher, so it was scanned (scanned before it is sent).
    run_shell(c, "echo A$((5+5))FTER", b"A10FTER")
    n = len(alerts(d, "fg")) - before
    bound = BURST * (int(elapsed // WINDOW) + 1)
    print("  %d matching lines in %.1f s raised %d alerts (bound %d)"
          % (FLOOD_LINES, elapsed, n, bound), flush=True)
    runner.require(0 < n <= bound, (n, bound))
    got = len(wait_notice(w, "alert oops:"))
    runner.require(0 < got <= bound, (got, bound))
    w.close()


def t_bad_regex(wd):
    empty = os.path.join(wd, "empty.conf")
    open(empty, "w").close()
    for args, want in (
            (["--alert", "broken=(unclosed"],
             r'--alert "broken=\(unclosed": invalid regular expression: \S'),
            (["--alert", "bad name=x"], r'--alert "bad name=x": the name must be'),
            (["--alert", "x="], r'--alert "x=": the regular expression is empty')):
        r = subprocess.run([hub.TTYHUBD, "--socket", os.path.join(wd, "bad.sock"),
                            "--config", empty, "--console", "a=/nonexistent"] + args,
                           capture_output=True, text=True, timeout=60)
        runner.require(r.returncode != 0, (args, r.returncode, r.stderr))
        runner.require(re.search(want, r.stderr), (want, r.stderr))
        runner.require("listening" not in r.stderr, r.stderr)
    conf = os.path.join(wd, "bad.conf")
    with open(conf, "w") as f:
        f.write("# alerts\nalert = fine=ok\nalert = broken=a[b\n")
    r = subprocess.run([hub.TTYHUBD, "--socket", os.path.join(wd, "bad.sock"), "--config", conf,
                        "--console", "a=/nonexistent"], capture_output=True, text=True,
                       timeout=60)
    runner.require(r.returncode != 0, (r.returncode, r.stderr))
    runner.require(re.search(re.escape(conf) + r':3: --alert "broken=a\[b": invalid regular '
                             r'expression', r.stderr), r.stderr)


def t_reload(d, c, conf):
    # A configuration with a bad regex: nothing changes, the old alerts stay.
    with open(conf, "w") as f:
        f.write("alert = marker=MARKER[0-9]+\nalert = newone=NEW[0-9]+\nalert = broken=(\n")
    d.reload()
    d.wait_log(r"the new configuration has errors; nothing changed")
    runner.require(re.search(r'--alert "broken=\(": invalid regular expression', d.log()),
                   d.log()[-2000:])
    before = alerts(d, "vm")
    run_shell(c, "printf 'MARK%s55 NEW%s\\n' ER 66", b"# ")
    runner.wait_until(lambda: len(alerts(d, "vm")) > len(before), 30, "the old alert")
    run_shell(c, "echo R$((2+3))ELOAD", b"R5ELOAD")
    new = alerts(d, "vm")[len(before):]
    runner.require(new == [("marker", "vm", "MARKER55 NEW66")], new)
    # A good one replaces them: only newone now (no-default-alerts: not even panic).
    with open(conf, "w") as f:
        f.write("alert = newone=NEW[0-9]+\nno-default-alerts = yes\n")
    d.reload()
    before = alerts(d, "vm")
    run_shell(c, "printf 'MARK%s56\\nKernel pa%sic\\nNE%s67\\n' ER n W", b"# ")
    runner.wait_until(lambda: len(alerts(d, "vm")) > len(before), 30, "the new alert")
    run_shell(c, "echo R$((3+3))ELOAD", b"R6ELOAD")
    new = alerts(d, "vm")[len(before):]
    runner.require(new == [("newone", "vm", "NEW67")], new)


MESSAGE_ID = "60af5a679d5f45b888fbfb6ff5083175"


def journal_fields(b):
    """The fields of one native journal protocol datagram (systemd's journal-native docs)."""
    fields, i = {}, 0
    while i < len(b):
        nl = b.index(b"\n", i)
        line = b[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:  # NAME\n, 64-bit little-endian size, the value, \n
            k = line
            n = struct.unpack("<Q", b[nl + 1:nl + 9])[0]
            v = b[nl + 9:nl + 9 + n]
            i = nl + 9 + n + 1
        fields[k.decode()] = v.decode(errors="replace")
    return fields


def t_journal(wd):
    jdir = os.path.join(wd, "journal")
    os.mkdir(jdir)
    js = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    js.bind(os.path.join(jdir, "socket"))
    js.settimeout(30)
    sock = os.path.join(wd, "jfg.sock")
    # A tmpfs on /run (private to ttyhubd), the test's directory as /run/systemd/journal.
    wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c",
            "mount -t tmpfs none /run && mkdir -p /run/systemd/journal && "
            "mount --bind %s /run/systemd/journal && "
            "export JOURNAL_STREAM=$(stat -L -c %%d:%%i /proc/self/fd/2) && exec \"$0\" \"$@\""
            % jdir]
    d = hub.Daemon(wd, "--console", "jfg=" + sock, "--alert", "first=^jt 0{12} ",
                   name="ttyhubd-journal", wrap=wrap).start()
    fg = subprocess.Popen([hub.FAKE_GUEST, "--socket", sock, "--tag", "jt", "--line-length",
                           "40", "--bytes", str(40 * 100), "--wait-client", "--stats",
                           sock + ".stats"])
    try:
        entry = None
        while entry is None or entry.get("TTYHUB_ALERT") != "first":
            entry = journal_fields(js.recv(1 << 16))
        assert fg.wait(60) == 0
        line = entry["TTYHUB_LINE"]
        runner.require(re.fullmatch(r"jt 0{12} [a-z]+", line), entry)
        want = {"MESSAGE": "alert first on jfg: " + line, "MESSAGE_ID": MESSAGE_ID,
                "PRIORITY": "3", "TTYHUB_CONSOLE": "jfg", "TTYHUB_VM": "jfg",
                "TTYHUB_ALERT": "first", "TTYHUB_SUPPRESSED": "0",
                "SYSLOG_IDENTIFIER": "ttyhubd"}
        got = {k: entry.get(k) for k in want}
        runner.require(got == want, (got, want))
        # Nothing more (line 0 alone matches), and no alert line on stderr.
        c = attach(d, "jfg", mode="ro", replay="all")
        c.read_data_until(b"jt %012d " % 99, timeout=30)
        c.close()
        js.settimeout(0.5)
        more = []
        try:
            while True:
                more.append(journal_fields(js.recv(1 << 16)))
        except TimeoutError:
            pass
        runner.require(not [m for m in more if "TTYHUB_ALERT" in m], more)
        runner.require(not alerts(d), d.log()[-2000:])
    finally:
        if fg.poll() is None:
            fg.terminate()
            fg.wait()
        d.stop()
        js.close()


def t_restart(wd):
    path = os.path.join(wd, "rg.sock")
    # The guest: a chardev-like listener this test writes through (fake-guest cannot write
    # while nobody reads, and here ttyhubd is away on purpose).
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(60)
    args = ["--console", "rg=" + path, "--alert", "a=^ALERT-A", "--alert", "b=^ALERT-B"]
    d = hub.Daemon(wd, *args, name="ttyhubd-restart", managed=True).start()
    conn = None
    try:
        conn, _ = srv.accept()
        conn.sendall(b"boot\r\nALERT-A before the restart\r\n")
        d.wait_for(lambda: alerts(d, "rg"), timeout=60, what="the first alert")

        def away():
            # Into the kept connection while no ttyhubd reads it.
            conn.sendall(b"ALERT-B while ttyhubd was away\r\n")
        d.restart(between=away, args=args)
        conn.sendall(b"after the restart\r\n")
        c = attach(d, "rg", mode="ro", replay="all")
        c.read_data_until(b"after the restart", timeout=60)
        c.close()
        got = alerts(d, "rg")
        runner.require(got == [("a", "rg", "ALERT-A before the restart"),
                               ("b", "rg", "ALERT-B while ttyhubd was away")],
                       (got, d.log()[-2000:]))
    finally:
        d.stop()
        if conn:
            conn.close()
        srv.close()


def main():
    res = runner.Runner()
    wd = hub.workdir("alerts")
    res.run("an invalid regex: a clear error and a non-zero exit", t_bad_regex, wd)
    res.run("under a journal: one native entry with the fields, not a stderr line",
            t_journal, wd)
    res.run("restarts: each line is scanned once, also what came while ttyhubd was away",
            t_restart, wd)
    g = G.Guest(wd, "vm")
    conf = os.path.join(wd, "ttyhubd.conf")
    with open(conf, "w") as f:
        f.write("alert = marker=MARKER[0-9]+\n")
    d = hub.Daemon(wd, "--config", conf, "--console", "vm=" + g.serial_sock,
                   "--console", "fg=" + os.path.join(wd, "fg.sock")).start()
    c = None
    try:
        d.wait_for(lambda: (d.console("vm") or {}).get("state") == "connected",
                   what="vm connected")
        c = attach(d, "vm", replay="all")
        c.read_data_until(b"guest up", timeout=120)
        run_shell(c, "", b"# ")
        res.run("a guest prints Kernel panic: one alert on stderr and a notice",
                t_panic, d, c)
        res.run("colours inside a word do not hide it from an alert", t_colours, d, c)
        res.run("10,000 matching lines: a bounded number of alerts; other consoles serve",
                t_flood, d, c, wd)
        res.run("SIGHUP: a bad regex keeps the old alerts, a good one replaces them",
                t_reload, d, c, conf)
        res.run("daemon still running", lambda: runner.require(d.alive(), d.log()[-2000:]))
    finally:
        if c:
            c.close()
        d.stop()
        g.stop()
    res.finish(wd)


if __name__ == "__main__":
    main()
