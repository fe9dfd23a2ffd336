# SPDX-License-Identifier: MIT
"""Real guest (issue 7, item 7): how fast a real QEMU guest can write to its console on
ttyS0 (emulated 16550) and on hvc0 (virtio console) with ttyhubd holding the chardev
socket, against a direct reader of the same socket.  Target: the broker does not slow the
guest (ttyhub / direct >= 0.9).

The guest is the test guest of tests/integration/guest.py (Debian cloud kernel + busybox,
TCG, 1 vCPU).  Its shell writes N bytes to its own terminal as fast as it can, `cat` of a
file in RAM (64-byte printable lines; 64 KiB per cat on ttyS0, 1 MiB on hvc0) in a loop,
and times that itself with /proc/uptime (10 ms resolution):

    read a b </proc/uptime; i=0; while [ $i -lt K ]; do cat /tmp/u1m; i=$((i+1)); done;
    read c d </proc/uptime; echo; echo "RES $a $c"

so the figure is the guest's own output rate.  A slow reader of the socket shows up in two
ways: on ttyS0 QEMU's 16550 waits until its chardev can write, so the guest slows down; on
hvc0 QEMU's virtconsole drops whatever its chardev does not take at once (QEMU does not
throttle virtio consoles), so output is lost.  Both are measured: the reader counts the
64-byte lines it received (target: none lost).  hvc0 output reaches the socket in tiny
writes (QEMU's trace shows 63 + 2 bytes per line here), and each costs about 1 KiB of the
socket's 208 KiB send buffer, so the socket holds only a few KiB of output: a reader that
does not run for a few tens of milliseconds loses hvc0 output, whoever it is.  QEMU runs
with `-trace virtio_console_flush_buf` so that its own count of dropped bytes is noted too.
Readers, in this process:
* direct: `socat` reading the chardev socket as fast as it can into a 1 MiB pipe to this
  process (as much slack as ttyhubd's 1 MiB ring gives);
* ttyhub: ttyhubd (--console ser=... --console hvc=...) holds both sockets and one broker
  client (attached read-write, replay 0: it types the commands) reads the console.
One direct run first calibrates N so that each run lasts about 3 s (6 s without --quick);
then direct and ttyhub runs alternate (2 pairs per device with --quick, 4 pairs without), and
the rates are compared by their medians.  QEMU, ttyhubd and socat run at nice -5 so that
other work on the machine weighs less on the guest's speed.
"""

import fcntl
import json
import os
import re
import select
import socket
import statistics
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402
import watchkit  # noqa: E402

TITLE = "Real guest: console output rate with ttyhubd vs a direct reader"
ORDER = 70

TARGET_RATIO = 0.9
# QEMU and the socket's reader (ttyhubd or socat) run at this nice value: other work on the
# machine should not decide the guest's speed (QEMU's threads are reniced after start).
SUT_NICE = -5
LINE = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-"  # + newline: 64
F_SETPIPE_SZ = 1031
IDLE_ASK = 3.0  # s without output after which bulk() asks for the RES line again
RES = re.compile(rb"RES (\d+)\.(\d+) (\d+)\.(\d+)\r?\n")
# Per device: the unit written by one `cat` (bytes), the calibration run's units, and the
# most units a run may have.
CALIBRATE = 2 * 65536
MAX_BYTES = 512 << 20


def _guest_module():
    import guest
    return guest


class Link:
    """A byte stream to a guest console, with the expect() of guest.py for the shell set-up
    and bulk() for the measured output (counts bytes, keeps only a tail)."""

    def __init__(self):
        G = _guest_module()

        class Exp(G._Expecter):
            def _read(exp, timeout):
                return self.recv(timeout)

            def send(exp, data):
                self.send(data if isinstance(data, bytes) else data.encode())
        self.exp = Exp()
        self.exp.name = type(self).__name__

    def sync(self, timeout=120):
        _guest_module().sync_shell(self.exp, timeout=timeout)

    def prepare(self):
        """Make the output files in the guest's RAM: /tmp/u64k and /tmp/u1m, lines of 64
        printable bytes (console-like output, nothing the tty transforms but the newline)."""
        self.exp.skip()
        self.send(b"mkdir -p /tmp; yes " + LINE + b" | head -c 65536 >/tmp/u64k; for i in 1 2 3 "
                  b"4; do cat /tmp/u64k /tmp/u64k /tmp/u64k /tmp/u64k; done >/tmp/u1m; "
                  b"echo PREP$(wc -c </tmp/u1m)\n")
        self.exp.expect(rb"PREP *1048576\r?\n", timeout=60)

    def bulk(self, nbytes, unit, timeout):
        """Write NBYTES (a multiple of UNIT, 65536 or 1048576) to the guest's console with
        `cat` of a file in RAM, timed by the guest; returns (guest seconds, bytes of those
        lines received)."""
        f = b"/tmp/u64k" if unit == 65536 else b"/tmp/u1m"
        self.exp.skip()
        self.send(b"read a b </proc/uptime; i=0; while [ $i -lt %d ]; do cat %s; i=$((i+1)); "
                  b"done; read c d </proc/uptime; echo; echo \"RES $a $c\"\n"
                  % (nbytes // unit, f))
        lines, carry, tail = 0, b"", b""
        deadline = time.monotonic() + timeout
        last_data = time.monotonic()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: no RES line after %d lines within %g s; tail %r"
                                     % (self.exp.name, lines, timeout, tail[-300:]))
            b = self.recv(min(left, 1.0))
            if b is None:
                raise AssertionError("%s: stream ended after %d lines" % (self.exp.name, lines))
            if b:
                last_data = time.monotonic()
            elif time.monotonic() - last_data > IDLE_ASK:
                # hvc0 may have lost the RES line itself: the loop is over (nothing comes),
                # so ask the shell again; its variables still hold the times.
                self.send(b"echo \"RES $a $c\"\n")
                last_data = time.monotonic()
            data = carry + b
            lines += data.count(LINE)
            carry = data[-(len(LINE) - 1):]
            tail = (tail + b)[-4096:]
            m = RES.search(tail)
            if m:
                a = int(m.group(1)) * 100 + int(m.group(2)[:2].ljust(2, b"0"))
                c = int(m.group(3)) * 100 + int(m.group(4)[:2].ljust(2, b"0"))
                # Back to expect() mode with what followed the RES line.
                self.exp._buf = bytearray(tail[m.end():])
                self.exp._pos = 0
                return (c - a) / 100.0, lines * (len(LINE) + 1)


class DirectLink(Link):
    """socat between the chardev socket and pipes to this process: a plain reader of the
    socket that drains it as fast as it can, with a 1 MiB pipe (ttyhubd's ring is 1 MiB)
    so that this process's own scheduling does not hold the guest back."""

    def __init__(self, path, timeout=10):
        super().__init__()
        self.proc = subprocess.Popen(["socat", "-b", "65536", "UNIX-CONNECT:" + path, "STDIO"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     preexec_fn=lambda: os.nice(SUT_NICE))
        try:
            fcntl.fcntl(self.proc.stdout.fileno(), F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)

    def recv(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return b""
        try:
            b = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return b""
        return b if b else None

    def send(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close(self):
        self.proc.stdin.close()
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


class QemuDrops:
    """Bytes QEMU's virtconsole could not write to its chardev (and dropped), from the
    virtio_console_flush_buf trace lines in QEMU's log; take() returns those since the
    last call."""

    RX = re.compile(rb"virtio_console_flush_buf port \d+, in_len (\d+), out_len (-?\d+)")

    def __init__(self, path):
        self.path = path
        self.off = 0
        self.partial = b""

    def take(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read()
        except OSError:
            return 0
        self.off += len(data)
        data = self.partial + data
        cut = data.rfind(b"\n") + 1
        self.partial = data[cut:]
        return sum(int(m.group(1)) - max(0, int(m.group(2)))
                   for m in self.RX.finditer(data[:cut]) if int(m.group(2)) < int(m.group(1)))


class BrokerLink(Link):
    """A broker protocol client attached read-write to CONSOLE (output frames only)."""

    def __init__(self, broker, console):
        super().__init__()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(broker)
        self.buf = bytearray()
        self.control = []
        self._send_control({"type": "hello", "version": 1, "client": "bench"})
        self._send_control({"type": "attach", "console": console, "mode": "rw", "replay": 0})
        deadline = time.monotonic() + 10
        while not any(m.get("type") in ("attached", "error") for m in self.control):
            if time.monotonic() > deadline:
                raise AssertionError("no attach reply: %r" % self.control)
            self.recv(1.0)
        m = [m for m in self.control if m.get("type") in ("attached", "error")][0]
        if m.get("type") != "attached" or m.get("role") != "writer":
            raise AssertionError("attach failed: %r" % m)
        self.sock.setblocking(False)

    def _send_control(self, obj):
        p = json.dumps(obj).encode()
        self.sock.sendall(b"C" + struct.pack(">I", len(p)) + p)

    def send(self, data):
        self.sock.setblocking(True)
        try:
            self.sock.sendall(b"D" + struct.pack(">I", len(data)) + data)
        finally:
            self.sock.setblocking(False)

    def recv(self, timeout):
        r, _, _ = select.select([self.sock], [], [], timeout)
        if r:
            try:
                b = self.sock.recv(1 << 17)
            except BlockingIOError:
                b = b""
            except ConnectionResetError:
                return None
            if r and b == b"":
                return None
            self.buf += b
        # Frames are small here (QEMU writes a console line in pieces): walk them with an
        # offset and cut the buffer once, or parsing alone would fall behind the guest.
        out, pos, buf, end = [], 0, self.buf, len(self.buf)
        while end - pos >= 5:
            n = int.from_bytes(buf[pos + 1:pos + 5], "big")
            if end - pos < 5 + n:
                break
            if buf[pos] == 0x4F:  # "O": start and end offsets (16 bytes), then the bytes
                out.append(buf[pos + 5 + 16:pos + 5 + n])
            else:
                try:
                    self.control.append(json.loads(bytes(buf[pos + 5:pos + 5 + n])))
                except ValueError:
                    pass
            pos += 5 + n
        del buf[:pos]
        return b"".join(out)

    def close(self):
        self.sock.close()


def measure(ctx, quick):
    os.environ["TTYHUB_BUILD"] = ctx.build
    import hub
    G = _guest_module()
    secs = 3.0 if quick else 6.0
    pairs = 2 if quick else 4
    wd = ctx.workdir("realguest")
    results = {}
    t0 = time.monotonic()
    # QEMU traces every virtconsole write to its log: what it could not write is dropped.
    g = G.Guest(wd, "vm", virtio_console=True, qmp=False,
                extra_args=("-trace", "virtio_console_flush_buf"))
    drops = QemuDrops(g.log_path)
    try:
        watchkit.renice([g.pid], SUT_NICE)
        socks = {"ttyS0": g.serial_sock, "hvc0": g.console_sock}
        consoles = {"ttyS0": "ser", "hvc0": "hvc"}
        booted = False
        for dev in ("ttyS0", "hvc0"):
            r = results[dev] = {"direct": [], "ttyhub": [], "told": 0,
                                "cpu": {"direct": [], "ttyhub": []},
                                "reads": {"direct": [], "ttyhub": []},
                                "lost": {"direct": 0, "ttyhub": 0},
                                "qemu_dropped": {"direct": 0, "ttyhub": 0},
                                "runq": {"direct": [], "ttyhub": []}}
            link = DirectLink(socks[dev])
            try:
                link.sync(timeout=180 if not booted else 60)
                if not booted:
                    ctx.log("guest booted and answered in %.1f s" % (time.monotonic() - t0))
                    booted = True
                    watchkit.renice([g.pid], SUT_NICE)  # threads started since
                if dev == "ttyS0":
                    link.prepare()
                n0 = CALIBRATE
                el, got = link.bulk(n0, 65536, 300)
            finally:
                link.close()
            rate = n0 / max(el, 0.01)
            # 1 MiB per cat when a run holds at least 8 of them (fewer forks in the guest)
            unit = 1 << 20 if rate * secs >= 8 << 20 else 65536
            n = unit * int(max(1, round(min(MAX_BYTES, rate * secs) / unit)))
            r["n"] = n
            r["calibration"] = rate
            ctx.log("%s: calibration %d bytes in %.2f s (%.2f MB/s); runs of %d bytes"
                    % (dev, n0, el, rate / 1e6, n))
            order = []
            for i in range(pairs):
                order += ["ttyhub", "direct"] if i % 2 == 0 else ["direct", "ttyhub"]
            for kind in order:
                d = None
                if kind == "direct":
                    link = DirectLink(socks[dev])
                else:
                    wdd = ctx.workdir("realguest-th")
                    d = hub.Daemon(wdd, "--console", "ser=" + socks["ttyS0"],
                                   "--console", "hvc=" + socks["hvc0"]).start()
                    watchkit.renice([d.pid()], SUT_NICE)
                    link = BrokerLink(d.socket, consoles[dev])
                try:
                    link.sync(timeout=60)
                    pid = d.pid() if d else link.proc.pid
                    c0, io0 = watchkit.cpu_precise([pid]), watchkit.io_counts(pid)
                    drops.take()
                    q0 = watchkit.runq_wait_ms(pid)
                    el, got = link.bulk(n, unit, max(120, 20 * secs))
                    r["qemu_dropped"][kind] += drops.take()
                    r["runq"][kind].append(watchkit.runq_wait_ms(pid) - q0)
                    cpu = (watchkit.cpu_precise([pid]) - c0) / max(el, 0.01)
                    io1 = watchkit.io_counts(pid)
                    nread = io1.get("syscr", 0) - io0.get("syscr", 0)
                    r["reads"][kind].append((n / max(el, 0.01), nread / max(el, 0.01)))
                finally:
                    link.close()
                    # Let QEMU see the reader gone before the next one connects: a
                    # virtconsole reconnected at once sometimes never answers again.
                    time.sleep(1.0)
                    if d:
                        rc = d.stop()
                        if rc != 0:
                            r.setdefault("problems", []).append(
                                "ttyhubd exit status %s: %s" % (rc, d.log()[-300:]))
                r[kind].append(n / max(el, 0.01))
                r["lost"][kind] += max(0, n - got)
                r["cpu"][kind].append(cpu)
                if d:
                    r["told"] += sum(m.get("dropped", 0) for m in link.control
                                     if m.get("type") == "notice")
                ctx.log("%s %s: %d bytes in %.2f s = %.3f MB/s (received %d)"
                        % (dev, kind, n, el, n / max(el, 0.01) / 1e6, got))
    finally:
        g.stop()
    return results


def run(ctx):
    sec = benchlib.Section(TITLE)
    res = measure(ctx, ctx.quick)
    for dev in ("ttyS0", "hvc0"):
        r = res[dev]
        th = statistics.median(r["ttyhub"]) / 1e6
        di = statistics.median(r["direct"]) / 1e6
        ratio = th / di
        sec.row("guest output rate on %s" % dev, th, di, "direct reader", "MB/s",
                ">= %.1fx direct" % TARGET_RATIO, ratio >= TARGET_RATIO)
        sec.note("%s: %d bytes per run; direct %s MB/s, ttyhub %s MB/s (each run); CPU while "
                 "the guest wrote (cores): ttyhubd %s, socat %s" % (
                     dev, r["n"], ", ".join("%.3f" % (x / 1e6) for x in r["direct"]),
                     ", ".join("%.3f" % (x / 1e6) for x in r["ttyhub"]),
                     ", ".join("%.3f" % c for c in r["cpu"]["ttyhub"]),
                     ", ".join("%.3f" % c for c in r["cpu"]["direct"])))
        sec.note("%s: ms the reader waited for a CPU during each run: ttyhubd %s; socat %s" % (
            dev, ", ".join("%.0f" % q for q in r["runq"]["ttyhub"]),
            ", ".join("%.0f" % q for q in r["runq"]["direct"])))
        sec.note("%s: read() calls per second (bytes per read): ttyhubd %s; socat %s" % (
            dev, ", ".join("%.0f (%.0f)" % (c, b / max(c, 1)) for b, c in r["reads"]["ttyhub"]),
            ", ".join("%.0f (%.0f)" % (c, b / max(c, 1)) for b, c in r["reads"]["direct"])))
        sec.row("reader CPU on %s (ttyhubd / socat)" % dev,
                statistics.median(r["cpu"]["ttyhub"]), statistics.median(r["cpu"]["direct"]),
                "socat", "cores")
        lost = r["lost"]
        sec.row("output lost on %s (all runs)" % dev, lost["ttyhub"], lost["direct"],
                "direct reader", "bytes", "none", lost["ttyhub"] == 0)
        if lost["ttyhub"]:
            sec.note("PROBLEM: on %s the ttyhub reader missed %d bytes; ttyhubd reported %d "
                     "bytes dropped for it (a slow client); the rest never reached ttyhubd"
                     % (dev, lost["ttyhub"], r["told"]))
        if dev == "hvc0":
            sec.note("hvc0: QEMU's own count of console output it dropped (trace "
                     "virtio_console_flush_buf): %d bytes with ttyhubd reading, %d with socat"
                     % (r["qemu_dropped"]["ttyhub"], r["qemu_dropped"]["direct"]))
        if lost["direct"]:
            sec.note("%s: the direct reader missed %d bytes" % (dev, lost["direct"]))
        for p in r.get("problems", []):
            sec.note("PROBLEM: " + p)
    sec.note("QEMU %s, TCG, 1 vCPU; the guest times its own writes (/proc/uptime). QEMU's "
             "16550 waits for its chardev (a slow reader slows the guest); its virtconsole "
             "does not wait but drops what the chardev does not take at once (a slow reader "
             "loses hvc0 output), hence the loss rows." % _qemu_version())
    return sec


def _qemu_version():
    import subprocess
    try:
        out = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                             timeout=10).stdout.decode()
        return out.split("\n")[0].replace("QEMU emulator version ", "")
    except (OSError, subprocess.SubprocessError):
        return "?"


if __name__ == "__main__":
    benchlib.run_standalone(run)
