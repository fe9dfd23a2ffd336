#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Console logs (--log-dir).  A synthetic guest writes 20 MiB at full speed
into a console logged with 1 MiB x 2 backups: sampled while it writes, the
log directory never exceeds 3 MiB; every file holds whole lines; the
newest file holds the newest output, and the three files together are the
tail of the stream with no gap.  Markers record attach and detach.  A log
directory that is read-only, or a full filesystem: one error line each,
and the console keeps working for its users.
"""

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

MIB = 1024 * 1024


def dir_size(path):
    total = 0
    for f in os.listdir(path):
        try:
            total += os.lstat(os.path.join(path, f)).st_size
        except FileNotFoundError:
            pass  # rotated away between listdir and lstat
    return total


def t_rotation(res, wd):
    logs = os.path.join(wd, "logs")
    os.mkdir(logs)
    sock = os.path.join(wd, "fg.sock")
    stats = os.path.join(wd, "fg.stats")
    d = hub.Daemon(wd, "--console", "fg=" + sock, "--log-dir", logs, "--log-max-size", "1M",
                   "--log-backups", "2").start()
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], dir_size(logs))
            time.sleep(0.002)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    fg = subprocess.run([hub.FAKE_GUEST, "--socket", sock, "--bytes", str(20 * MIB),
                         "--wait-client", "--stats", stats], timeout=120)
    assert fg.returncode == 0
    time.sleep(0.5)
    done.set()
    t.join()
    with open(stats) as f:
        st = json.load(f)

    def capped():
        print("  guest wrote %.1f MiB; log directory peaked at %d bytes (cap %d)"
              % (st["bytes_written"] / MIB, peak[0], 3 * MIB), flush=True)
        assert st["bytes_written"] == 20 * MIB
        assert 0 < peak[0] <= 3 * MIB, peak[0]
        assert sorted(os.listdir(logs)) == ["fg.log", "fg.log.1", "fg.log.2"], os.listdir(logs)
    res.run("20 MiB at full speed: the log directory never exceeds 1 MiB x 3", capped)

    def whole_lines():
        data = b""
        for name in ("fg.log.2", "fg.log.1", "fg.log"):
            with open(os.path.join(logs, name), "rb") as f:
                part = f.read()
            assert len(part) <= MIB, (name, len(part))
            assert part.endswith(b"\n"), "%s does not end with a whole line" % name
            assert pattern.check_lines(part)["corrupt"] == 0, name
            data += part
        chk = pattern.check_lines(data)
        assert not chk["gaps"] and not chk["corrupt"], chk
        # 20 MiB / 64 bytes = 327680 lines: the newest file ends with the last one.
        assert chk["last"] == st["lines_written"] - 1, (chk, st)
        print("  logs hold lines %d..%d, whole and in order" % (chk["first"], chk["last"]))
    res.run("rotation keeps whole lines; the newest file has the newest output", whole_lines)

    def markers():
        c = hub.BrokerClient(d.socket)
        c.send({"type": "attach", "console": "fg", "mode": "ro", "replay": 0})
        c.expect_type("attached")
        c.close()
        time.sleep(0.3)
        with open(os.path.join(logs, "fg.log"), "rb") as f:
            tail = f.read()[-1000:]
        assert re.search(rb"\[ttyhub\] \d{4}-\d\d-\d\dT[\d:.]+Z root \(local, pid \d+\) "
                         rb"\[test\] attached read-only", tail), tail
        assert re.search(rb"\[ttyhub\] \S+ root .* detached", tail), tail
    res.run("attach and detach are marked in the log", markers)
    d.stop()


def t_unwritable(res, wd, what, setup, max_size):
    """setup: shell commands run in ttyhubd's private mount namespace on $LOGS."""
    logs = os.path.join(wd, "logs-" + what)
    os.mkdir(logs)
    sock = os.path.join(wd, what + ".sock")
    fg = subprocess.Popen([hub.FAKE_GUEST, "--socket", sock, "--rate", "2000000",
                           "--stats", sock + ".stats"])
    wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c",
            "LOGS=%s; %s && exec \"$0\" \"$@\"" % (logs, setup)]
    d = hub.Daemon(wd, "--console", "fg=" + sock, "--log-dir", logs, "--log-max-size", max_size,
                   name="ttyhubd-" + what, wrap=wrap).start()
    try:
        def one_error_console_fine():
            c = hub.BrokerClient(d.socket)
            c.send({"type": "attach", "console": "fg", "mode": "ro", "replay": 0})
            c.expect_type("attached")
            time.sleep(2)  # about 4 MB of guest output against a tiny or read-only log
            n = len(c.data)
            c.read_data_until(b"\n", timeout=5)
            while len(c.data) < n + 100000:
                c.pump()
            chk = pattern.check_lines(c.data)
            assert not chk["gaps"] and not chk["corrupt"], chk
            c.close()
            errors = [line for line in d.log().splitlines() if line.startswith("<3>")]
            print("  %s: %r" % (what, errors), flush=True)
            assert len(errors) == 1, errors
            assert re.search(r"fg\.log", errors[0]), errors
            assert d.alive()
        res.run("%s log directory: one error, the console unaffected" % what,
                one_error_console_fine)
    finally:
        d.stop()
        fg.terminate()
        fg.wait()


def main():
    res = runner.Runner()
    wd = hub.workdir("logs")
    t_rotation(res, wd)
    t_unwritable(res, wd, "read-only",
                 "mount --bind $LOGS $LOGS && mount -o remount,bind,ro $LOGS", "16K")
    # 1 MiB files on a 64 KiB filesystem: it fills up long before the cap.
    t_unwritable(res, wd, "full", "mount -t tmpfs -o size=64k tmpfs $LOGS", "1M")
    res.finish(wd)


if __name__ == "__main__":
    main()
