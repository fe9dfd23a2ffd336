# SPDX-License-Identifier: MIT
"""Restarts: the console server is restarted under a watcher; how long the watcher sees
nothing, and how much of the guest's output it never sees.

Two guests, each printing numbered lines at about 100 lines per second:
* synthetic: tests/fake-guest, 64-byte lines written one byte per write (as QEMU's
  isa-serial hands its chardev every byte), paced at 6,400 bytes/s;
* real: a QEMU guest whose shell prints "RG%06d" lines on ttyS0 every 10 ms.

Two servers, each restarted RESTARTS times with SIGTERM and then with SIGKILL:
* ttyhub: ttyhubd under the harness's fake service manager (tests/integration/svcmgr.py,
  the file-descriptor store and socket activation of systemd), restarted as `systemctl
  restart` or a crash with Restart=on-failure would; the watcher is one OpenSSH client
  (`ssh -T NAME+ro@`) through ttyhub-sshd, which stays up and reconnects by itself;
* conserver (Debian conserver-server), with a `uds` console on the same kind of guest,
  stopped the same way and started again at once; its watcher (`console -s`) ends with it,
  so a new one is started as soon as the new conserver listens (the best a script could do).

Figures, per restart: the gap, from the signal to the first guest byte the watcher receives
afterwards (ttyhub: after its "broker restarted" line; conserver: from the new spy), and the
guest bytes the watcher never received (numbered lines missing from what it saw, times the
line size).  A restart that loses nothing has 0 lost bytes; SIGKILL may lose the one read
that was in progress.
"""

import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402
import watchkit  # noqa: E402

TITLE = "Restarts: the console server restarted under a watcher"
ORDER = 80

LINE = 64
RATE = 6400
SETTLE = 0.7  # seconds between restarts, so each gap is measured on its own
RG_LINE = 10  # len(b"RG000000\r\n")


class Stamped:
    """A watcher process whose stdout is read by a thread: the bytes and when each arrived."""

    def __init__(self, argv, log):
        self.buf = bytearray()
        self.marks = []  # (end offset of a chunk, monotonic time it arrived)
        self.lock = threading.Lock()
        self.proc = benchlib.spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=log)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        fd = self.proc.stdout.fileno()
        while True:
            try:
                b = os.read(fd, 65536)
            except OSError:
                return
            if not b:
                return
            t = time.monotonic()
            with self.lock:
                self.buf += b
                self.marks.append((len(self.buf), t))

    def size(self):
        with self.lock:
            return len(self.buf)

    def data(self):
        with self.lock:
            return bytes(self.buf)

    def time_of(self, off):
        """When byte OFF arrived, or None if it has not."""
        with self.lock:
            for end, t in self.marks:
                if end > off:
                    return t
        return None

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            r = pred(self.data())
            if r is not None:
                return r
            if time.monotonic() > deadline:
                raise AssertionError("watcher: no %s within %g s; last bytes %r"
                                     % (what, timeout, self.data()[-300:]))
            time.sleep(0.005)  # polling a buffer another thread fills

    def stop(self):
        benchlib.kill(self.proc)
        self.thread.join(5)


def synthetic_lost(data, tag):
    """Bytes of fake-guest lines missing between the first and last line seen."""
    import pattern  # noqa: PLC0415 - tests/integration, on sys.path via benchlib
    clean = re.sub(rb"(?:\r?\n)?\[ttyhub\] [^\r\n]*\r?\n", b"", data)
    res = pattern.check_lines(clean, tag=tag, line_length=LINE)
    missing = sum(n for _, n in res["gaps"]) + res["corrupt"]
    return missing * LINE, res


def real_lost(data):
    """Bytes of the guest's RG lines missing between the first and last seen."""
    flat = re.sub(rb"\[ttyhub\] [^\r\n]*", b"", data).replace(b"\r", b"").replace(b"\n", b"")
    nums = [int(x) for x in re.findall(rb"RG(\d{6})", flat)]
    if not nums:
        return 0, {"lines": 0}
    seen = set(nums)
    missing = (max(nums) - min(nums) + 1) - len(seen)
    return missing * RG_LINE, {"lines": len(nums), "repeated": len(nums) - len(seen)}


def start_real_guest(ctx, wd):
    """A QEMU guest printing RG lines on ttyS0 for as long as it runs."""
    import b_realguest  # noqa: PLC0415
    G = b_realguest._guest_module()
    g = G.Guest(wd, "vm", qmp=False)
    link = b_realguest.DirectLink(g.serial_sock)
    try:
        link.sync(timeout=180)
        link.send(b"(i=0; while :; do printf 'RG%06d\\n' $i; i=$((i+1)); sleep 0.01; done) &"
                  b" echo LOOP$((40+2))\n")
        link.exp.expect(rb"LOOP42", timeout=30)
    finally:
        link.close()
    return g


def hub_restarts(ctx, wd, sock, sig, n, kind):
    import hub  # noqa: PLC0415
    import sshhub  # noqa: PLC0415
    d = hub.Daemon(wd, "--console", "c=" + sock, "--front-user", "root", managed=True).start()
    front = None
    w = None
    log = open(os.path.join(wd, "watcher.log"), "ab")
    try:
        key, pub = benchlib.make_key(wd)
        front = sshhub.SshFront(os.path.join(wd, "front"), d.socket, ['consoles="*:rw" ' + pub])
        d.wait_for(lambda: (d.console("c") or {}).get("state") == "connected", timeout=30,
                   what="console connected")
        w = Stamped(benchlib.ssh_argv(front.port, key, "c+ro"), log)
        w.wait(lambda b: True if len(b) > 2000 else None, 60, "first output")
        gaps = []
        for _ in range(n):
            off = w.size()
            t0 = time.monotonic()
            d.restart(sig)
            notice = w.wait(lambda b: (lambda i: None if i < 0 else i)(
                b.find(b"broker restarted", off)), 30, "'broker restarted' line")
            eol = w.wait(lambda b: (lambda i: None if i < 0 else i + 1)(
                b.find(b"\n", notice)), 30, "end of the notice")
            w.wait(lambda b: True if len(b) > eol else None, 30, "output after the notice")
            gaps.append((w.time_of(eol) - t0) * 1000)
            time.sleep(SETTLE)
        time.sleep(SETTLE)
        data = w.data()
    finally:
        if w:
            w.stop()
        log.close()
        if front:
            front.stop()
        d.stop()
    lost, res = synthetic_lost(data, "fg") if kind == "synthetic" else real_lost(data)
    ctx.log("  ttyhub %s %s: gaps %s ms; %d bytes lost over %d restarts (%s)"
            % (kind, sig.name, ", ".join("%.0f" % g for g in gaps), lost, n, res))
    return statistics.median(gaps), lost / n


def conserver_restarts(ctx, wd, sock, sig, n, kind):
    port = benchlib.free_port()
    cons = watchkit.Conserver(wd, [("c", sock)], port).start()
    log = open(os.path.join(wd, "spies.log"), "ab")
    spies = []
    gaps = []
    try:
        spies.append(Stamped(cons.spy_cmd("c"), log))
        spies[-1].wait(lambda b: True if len(b) > 2000 else None, 60, "first output")
        for _ in range(n):
            t0 = time.monotonic()
            kids = watchkit.direct_children(cons.proc.pid)
            cons.proc.send_signal(sig)
            cons.proc.wait(30)
            for k in kids:  # a SIGKILLed master leaves its children holding the console
                try:
                    os.kill(k, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            cons.stop()
            cons = watchkit.Conserver(wd, [("c", sock)], port).start()
            spies[-1].stop()
            spy = Stamped(cons.spy_cmd("c"), log)
            spies.append(spy)
            # Its banner is not guest output: the first guest line after it is.
            rx = re.compile(rb"fg [0-9]{12} |RG[0-9]{6}")
            first = spy.wait(lambda b: (lambda m: m.start() if m else None)(rx.search(b)), 30,
                             "guest output from the new spy")
            gaps.append((spy.time_of(first) - t0) * 1000)
            time.sleep(SETTLE)
        time.sleep(SETTLE)
    finally:
        for s in spies:
            s.stop()
        log.close()
        cons.stop()
    data = b"".join(s.data() for s in spies)
    lost, res = synthetic_lost(data, "fg") if kind == "synthetic" else real_lost(data)
    ctx.log("  conserver %s %s: gaps %s ms; %d bytes lost over %d restarts (%s)"
            % (kind, sig.name, ", ".join("%.0f" % g for g in gaps), lost, n, res))
    return statistics.median(gaps), lost / n


def run(ctx):
    os.environ["TTYHUB_BUILD"] = ctx.build
    sec = benchlib.Section(TITLE)
    n = 3 if ctx.quick else 8
    results = {}
    for kind in ("synthetic", "real"):
        for system in ("ttyhub", "conserver"):
            wd = ctx.workdir("restart-%s-%s" % (kind, system))
            if kind == "synthetic":
                guest = benchlib.FakeGuest(ctx, os.path.join(wd, "g.sock"), rate=RATE,
                                           line_length=LINE, extra=("--write-size", "1"))
                guest.start()
                sock = guest.sock
            else:
                guest = start_real_guest(ctx, wd)
                sock = guest.serial_sock
            try:
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    fn = hub_restarts if system == "ttyhub" else conserver_restarts
                    results[kind, system, sig] = fn(ctx, ctx.workdir(
                        "restart-%s-%s-%s" % (kind, system, sig.name)), sock, sig, n, kind)
            finally:
                guest.stop()
    for kind in ("synthetic", "real"):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            hg, hl = results[kind, "ttyhub", sig]
            cg, cl = results[kind, "conserver", sig]
            sec.row("gap, %s guest, %s (median)" % (kind, sig.name), hg, cg, "conserver", "ms")
            if sig == signal.SIGTERM:
                sec.row("lost per restart, %s guest, SIGTERM" % kind, hl, cl, "conserver",
                        "bytes", target="0", ok=hl == 0)
            else:
                sec.row("lost per restart, %s guest, SIGKILL" % kind, hl, cl, "conserver",
                        "bytes")
    sec.note("%d restarts per row, %.1f s apart; the watcher of ttyhub stays connected through "
             "ttyhub-sshd, conserver's watcher is restarted with it." % (n, SETTLE))
    return sec


if __name__ == "__main__":
    benchlib.run_standalone(run)
