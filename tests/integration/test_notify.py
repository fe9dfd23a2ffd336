#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Both daemons under systemd's protocols, without systemd as PID 1:
started through systemd-socket-activate (the listening socket is passed as
fd 3, the daemon starts on the first connection) with NOTIFY_SOCKET and
WATCHDOG_USEC pointing at this test.  Each sends READY=1 and STATUS=, pings
the watchdog from its loop, stops pinging when it is made to hang
(SIGSTOP) and starts again when it continues, answers SIGHUP with
RELOADING=1 then READY=1, and says STOPPING=1 when it exits.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import net  # noqa: E402
import runner  # noqa: E402

WATCHDOG_USEC = 400_000


class Notify:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.path = path
        self.msgs = []
        self.cursor = 0  # wait_for() looks at messages from here on

    def read_for(self, seconds):
        got = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                got.append(self.sock.recv(4096).decode())
            except socket.timeout:
                break
        self.msgs += got
        return got

    def wait_for(self, needle, seconds=10):
        """The next message (after the previous match) that contains needle."""
        deadline = time.monotonic() + seconds
        while True:
            for i in range(self.cursor, len(self.msgs)):
                if needle in self.msgs[i]:
                    self.cursor = i + 1
                    return self.msgs[i]
            if time.monotonic() >= deadline:
                break
            self.read_for(0.2)
        raise AssertionError("no %r from the daemon; got %r" % (needle, self.msgs[-10:]))


def pings(msgs):
    return sum(m.count("WATCHDOG=1") for m in msgs)


def exercise(res, what, argv, listen, connect):
    wd = hub.workdir("notify")
    n = Notify(os.path.join(wd, "notify.sock"))
    log = open(os.path.join(wd, "daemon.log"), "wb")
    p = subprocess.Popen(["systemd-socket-activate", "-l", listen,
                          "-E", "NOTIFY_SOCKET=" + n.path,
                          "-E", "WATCHDOG_USEC=%d" % WATCHDOG_USEC] + argv,
                         stdout=log, stderr=log, cwd=wd)
    try:
        time.sleep(0.3)
        conn = connect()  # socket activation: the daemon starts on this connection

        def ready():
            n.wait_for("READY=1")
            n.wait_for("STATUS=")
        res.run("%s: READY=1 and STATUS=" % what, ready)

        def watchdog():
            got = n.read_for(1.0)
            assert pings(got) >= 3, "only %d pings in 1 s (WatchdogSec 0.4 s)" % pings(got)
        res.run("%s: watchdog pings from the loop" % what, watchdog)

        def hang():
            os.kill(p.pid, signal.SIGSTOP)
            n.read_for(0.2)  # what was already on its way
            got = n.read_for(1.0)
            os.kill(p.pid, signal.SIGCONT)
            assert pings(got) == 0, "a hung daemon kept pinging"
            assert pings(n.read_for(1.0)) >= 2, "no pings after SIGCONT"
        res.run("%s: a hung daemon stops pinging" % what, hang)

        def reload():
            n.cursor = len(n.msgs)
            os.kill(p.pid, signal.SIGHUP)
            n.wait_for("RELOADING=1")
            n.wait_for("READY=1")
        res.run("%s: SIGHUP -> RELOADING=1, READY=1" % what, reload)

        def stopping():
            conn.close()
            n.cursor = len(n.msgs)
            p.terminate()
            assert p.wait(10) == 0
            n.wait_for("STOPPING=1", 2)
        res.run("%s: SIGTERM -> STOPPING=1, exit 0" % what, stopping)
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
            p.kill()
            p.wait()
        log.close()
    return wd


def main():
    res = runner.Runner()
    wds = []
    sock = "/tmp/th-notify-%d.sock" % os.getpid()

    def connect_unix():
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        return s
    wds.append(exercise(res, "ttyhubd", [hub.TTYHUBD, "--console", "x=/nonexistent.sock"],
                        sock, connect_unix))
    os.unlink(sock)

    port = net.free_port()
    wd = hub.workdir("notify-ssh")
    # No broker: ttyhub-sshd still starts (it asks ttyhubd about keys at the first login).
    wds.append(exercise(res, "ttyhub-sshd", [
        os.path.join(hub.BUILD, "ssh-front", "ttyhub-sshd"), "--host-key",
        os.path.join(wd, "hostkey"), "--broker", "/nonexistent.sock"], "127.0.0.1:%d" % port,
        lambda: socket.create_connection(("127.0.0.1", port))))
    for w in wds[:-1]:
        if res.failed == 0:
            shutil.rmtree(w, ignore_errors=True)
    res.finish(wd)


if __name__ == "__main__":
    main()
