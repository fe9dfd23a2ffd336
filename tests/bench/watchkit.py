# SPDX-License-Identifier: MIT
"""Pieces shared by b_stall.py and b_scale.py (stdlib only; /usr/bin/python3).

* PipeDrain: one thread that drains the stdout pipes of many watcher processes (ssh,
  conserver's `console -s`, socat), counting the bytes each one delivered and keeping the
  first bytes of each for checks ("[spying]", "attached").
* FakeGuest: the synthetic guest (tests/fake-guest) with a sampler that asks it for its
  statistics (SIGUSR1) at a fixed interval, for per-interval throughput and blocked time.
* Conserver: a private conserver-server (Debian) with `uds` consoles, run the way
  docs/BENCHMARKS.md describes; spy_cmd() gives a `console -s` reader.
* proc helpers: the children of a process, PSS (proportional set size) from smaps_rollup.
"""

import json
import os
import selectors
import signal
import socket
import subprocess
import threading
import time

import benchlib


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


class FakeGuest:
    """tests/fake-guest serving SOCK, sampled every INTERVAL seconds via SIGUSR1.

    samples: [(t since start, stats dict)], the dict as fake-guest prints it
    (bytes_written, max_block_ms, total_block_ms, blocks_over_10ms, elapsed_s, ...).
    """

    def __init__(self, build, sock, stats, duration, rate=0, interval=0.5, wait_client=True,
                 nice=0):
        self.exe = os.path.join(build, "tests", "fake-guest")
        self.sock = sock
        self.stats_path = stats
        self.duration = duration
        self.rate = rate
        self.interval = interval
        self.wait_client = wait_client
        self.nice = nice
        self.samples = []
        self.proc = None
        self._stop = threading.Event()

    def start(self, timeout=10):
        argv = [self.exe, "--socket", self.sock, "--stats", self.stats_path,
                "--duration", str(self.duration), "--rate", str(self.rate)]
        if self.wait_client:
            argv.append("--wait-client")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     preexec_fn=(lambda: os.nice(self.nice)) if self.nice else None)
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("fake-guest did not create %s" % self.sock)
            time.sleep(0.01)
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def read_stats(self):
        try:
            with open(self.stats_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def _sample(self):
        last = None
        while not self._stop.wait(self.interval):
            if self.proc.poll() is not None:
                return
            try:
                self.proc.send_signal(signal.SIGUSR1)
            except ProcessLookupError:
                return
            time.sleep(0.02)
            st = self.read_stats()
            if st and st != last and st["clients_accepted"] > 0:
                self.samples.append((time.monotonic() - self.t0, st))
                last = st

    def wait(self, timeout):
        try:
            rc = self.proc.wait(timeout)
        finally:
            self._stop.set()
            self.thread.join(5)
        if rc != 0:
            raise AssertionError("fake-guest exited with %s" % rc)
        st = self.read_stats()
        if st is None:
            raise AssertionError("fake-guest wrote no statistics")
        return st

    def kill(self):
        self._stop.set()
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def series(self):
        """Per-interval guest throughput (MB/s) and share of time blocked (%), by time."""
        mbps, blocked = [], []
        prev = None
        for _, st in self.samples:
            if prev is not None:
                dt = st["elapsed_s"] - prev["elapsed_s"]
                if dt > 0:
                    t = st["elapsed_s"]
                    mbps.append((t, (st["bytes_written"] - prev["bytes_written"]) / dt / 1e6))
                    blocked.append((t, min(100.0, (st["total_block_ms"] - prev["total_block_ms"])
                                          / 10.0 / dt)))
            prev = st
        return mbps, blocked


def children(pid):
    """Direct children of PID (from /proc)."""
    return benchlib.child_map().get(pid, [])


def cpu_of(pids):
    total = 0.0
    for p in pids:
        try:
            total += benchlib.cpu_seconds(p)
        except OSError:
            pass
    return total


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class Conserver:
    """A private conserver (master + its children) serving CONSOLES [(name, uds path)].

    Logging off, no timestamps, everyone trusted from 127.0.0.1 (as in bench-peers.md).
    max_per_process: conserver's -m (consoles per child process; None: its default).
    """

    def __init__(self, workdir, consoles, port, max_per_process=None):
        self.workdir = workdir
        self.port = port
        self.cf = os.path.join(workdir, "conserver.cf")
        self.passwd = os.path.join(workdir, "conserver.passwd")
        self.log_path = os.path.join(workdir, "conserver.log")
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
        self.proc = None

    def start(self, timeout=20):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, cwd=self.workdir)
        if not wait_port(self.port, timeout):
            log = self.log()[-2000:]
            self.stop()
            raise AssertionError("conserver does not listen on %d:\n%s" % (self.port, log))
        return self

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def pids(self):
        return [self.proc.pid] + children(self.proc.pid)

    def spy_cmd(self, name):
        return ["console", "-M", "127.0.0.1", "-p", str(self.port), "-s", "-l", "root", name]

    def bring_up(self):
        """SIGUSR1: conserver retries every console that is down."""
        self.proc.send_signal(signal.SIGUSR1)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            kids = children(self.proc.pid)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            for k in kids:  # children normally exit with the master
                try:
                    os.kill(k, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.proc and not self._log.closed:
            self._log.close()


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
