# SPDX-License-Identifier: MIT
"""Pieces shared by b_stall.py and b_scale.py (stdlib only; /usr/bin/python3).

* PipeDrain: one thread that drains the stdout pipes of many watcher processes (ssh,
  conserver's `console -s`, socat), counting the bytes each one delivered and keeping the
  first bytes of each for checks ("[spying]", "attached").
* Conserver: a private conserver-server (Debian) with `uds` consoles, run the way
  docs/BENCHMARKS.md describes; spy_cmd() gives a `console -s` reader.
* proc helpers: the direct children of a process, run-queue wait, precise CPU time, I/O
  counts, renice.  (The sampled synthetic guest is benchlib.FakeGuest(sample_every=...).)
"""

import os
import selectors
import signal
import subprocess
import threading
import time

import benchlib
import net
import proc


class PipeDrain:
    """Reads every registered pipe as fast as it can and throws the bytes away."""

    HEAD = 4096  # bytes kept from the start of each stream

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.lock = threading.Lock()
        self.counts = {}      # key -> bytes read
        self.heads = {}       # key -> first HEAD bytes
        self.eof = set()
        self.pending = []     # (fd, key) to register (the selector is the thread's)
        self.rd, self.wr = os.pipe()
        os.set_blocking(self.wr, False)
        self.sel.register(self.rd, selectors.EVENT_READ, None)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def add(self, key, fileobj):
        """Drain FILEOBJ (a pipe file object or fd) under KEY."""
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        os.set_blocking(fd, False)
        with self.lock:
            self.counts[key] = 0
            self.heads[key] = b""
            self.pending.append((fd, key))
        self._poke()

    def _poke(self):
        try:
            os.write(self.wr, b"x")
        except BlockingIOError:
            pass

    def _run(self):
        while not self.stopping:
            for sk, _ in self.sel.select(1.0):
                if sk.data is None:
                    try:
                        os.read(self.rd, 4096)
                    except BlockingIOError:
                        pass
                    with self.lock:
                        pend, self.pending = self.pending, []
                    for fd, key in pend:
                        self.sel.register(fd, selectors.EVENT_READ, key)
                    continue
                key = sk.data
                try:
                    b = os.read(sk.fd, 1 << 16)
                except BlockingIOError:
                    continue
                except OSError:
                    b = b""
                if not b:
                    self.sel.unregister(sk.fd)
                    with self.lock:
                        self.eof.add(key)
                    continue
                with self.lock:
                    self.counts[key] += len(b)
                    h = self.heads[key]
                    if len(h) < self.HEAD:
                        self.heads[key] = h + b[:self.HEAD - len(h)]

    def snapshot(self):
        with self.lock:
            return dict(self.counts)

    def head(self, key):
        with self.lock:
            return self.heads.get(key, b"")

    def wait_heads(self, keys, needle, timeout):
        """Wait until every KEY's stream started with text containing NEEDLE; returns
        the keys still missing it (empty when all have it)."""
        deadline = time.monotonic() + timeout
        while True:
            missing = [k for k in keys if needle not in self.head(k)]
            if not missing or time.monotonic() >= deadline:
                return missing
            time.sleep(0.05)

    def stop(self):
        self.stopping = True
        self._poke()
        self.thread.join(5)


def direct_children(pid):
    """Direct children of PID (from /proc); benchlib.children() gives every descendant."""
    return benchlib.child_map().get(pid, [])


class Conserver(proc.Service):
    """A private conserver (master + its children) serving CONSOLES [(name, uds path)].

    Logging off, no timestamps, everyone trusted from 127.0.0.1 (as in bench-peers.md).
    max_per_process: conserver's -m (consoles per child process; None: its default).
    """

    label = "conserver"
    start_timeout = 20.0

    def __init__(self, workdir, consoles, port, max_per_process=None):
        super().__init__(workdir, os.path.join(workdir, "conserver.log"), check_exit=False,
                         cwd=workdir)
        self.port = port
        self.cf = os.path.join(workdir, "conserver.cf")
        self.passwd = os.path.join(workdir, "conserver.passwd")
        with open(self.cf, "w") as f:
            f.write("config * { }\n"
                    'default * { logfile /dev/null; timestamp ""; rw *; }\n')
            for name, path in consoles:
                f.write("console %s { type uds; uds %s; master localhost; }\n" % (name, path))
            f.write("access * { trusted 127.0.0.1; }\n")
        with open(self.passwd, "w") as f:
            f.write("root:\n")
        self.argv = ["conserver", "-C", self.cf, "-P", self.passwd, "-p", str(port),
                     "-M", "127.0.0.1"]
        if max_per_process:
            self.argv += ["-m", str(max_per_process)]

    def command(self):
        return self.argv

    def ready(self):
        return net.port_open(self.port)

    def start(self, timeout=None):
        try:
            return super().start(timeout)
        except AssertionError:
            self.stop()
            raise

    def pids(self):
        return [self.proc.pid] + direct_children(self.proc.pid)

    def spy_cmd(self, name):
        return ["console", "-M", "127.0.0.1", "-p", str(self.port), "-s", "-l", "root", name]

    def bring_up(self):
        """SIGUSR1: conserver retries every console that is down."""
        self.proc.send_signal(signal.SIGUSR1)

    def stop(self):
        kids = direct_children(self.proc.pid) if self.alive() else []
        rc = super().stop()
        for k in kids:  # children normally exit with the master
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return rc


class Perf:
    """`perf record -g` of PIDS while a measurement runs, when $TTYHUB_BENCH_PERF names a
    directory (the profile goes to DIR/NAME.data; `perf report -i` it).  A no-op otherwise."""

    def __init__(self, name, pids):
        self.proc = None
        out_dir = os.environ.get("TTYHUB_BENCH_PERF")
        if not out_dir:
            return
        os.makedirs(out_dir, exist_ok=True)
        self.path = os.path.join(out_dir, name + ".data")
        self.proc = subprocess.Popen(
            ["perf", "record", "-q", "-g", "-o", self.path, "-p",
             ",".join(str(p) for p in pids)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def runq_wait_ms(pid):
    """Milliseconds PID's main thread has spent runnable but waiting for a CPU."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return int(f.read().split()[1]) / 1e6
    except (OSError, ValueError, IndexError):
        return 0.0


def _threads(pids):
    """(pid, thread id) of every thread of PIDS that still exists."""
    for p in pids:
        try:
            tasks = os.listdir("/proc/%d/task" % p)
        except OSError:
            continue
        for t in tasks:
            yield p, int(t)


def cpu_precise(pids):
    """CPU seconds used so far by all threads of PIDS, at nanosecond resolution (schedstat;
    /proc/PID/stat counts whole clock ticks, too coarse for an idle daemon)."""
    total = 0
    for p, t in _threads(pids):
        try:
            with open("/proc/%d/task/%d/schedstat" % (p, t)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total / 1e9


def io_counts(pid):
    """/proc/PID/io as a dict (rchar, wchar, syscr, syscw, ...); empty if unreadable."""
    out = {}
    try:
        with open("/proc/%d/io" % pid) as f:
            for line in f:
                k, v = line.split(":")
                out[k.strip()] = int(v)
    except (OSError, ValueError):
        pass
    return out


def renice(pids, nice):
    """Set the nice value of every thread of PIDS (Linux keeps it per thread)."""
    for _, t in _threads(pids):
        try:
            os.setpriority(os.PRIO_PROCESS, t, nice)
        except OSError:
            pass
