# SPDX-License-Identifier: MIT
"""Shared pieces of the benchmark harness (tests/bench/).

A scenario module tests/bench/b_NAME.py defines TITLE (str), ORDER (int, for sorting) and
run(ctx) -> Section.  bench.py imports every b_*.py, runs them in ORDER, prints one table and
writes docs/BENCHMARKS.md with PNG plots under docs/bench/.

Stdlib only here (matplotlib is imported by bench.py alone); run with /usr/bin/python3.
"""

import math
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import net  # noqa: E402
import proc  # noqa: E402
from net import free_port  # noqa: E402,F401 - benchlib.free_port, for the scenarios

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Ctx:
    """What every scenario gets: the build to measure, scratch space, the run length."""

    def __init__(self, build, quick=False):
        self.build = build        # build directory (TTYHUB_BUILD for hub.py / sshhub.py)
        self.quick = quick        # True: shorter runs (same measurements, fewer samples)
        self.root = tempfile.mkdtemp(prefix="th-bench-", dir="/tmp")

    def workdir(self, name):
        """A fresh directory under the run's scratch root (short path for UNIX sockets)."""
        path = tempfile.mkdtemp(prefix=name + "-", dir=self.root)
        return path

    def log(self, msg):
        print("  [%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


class Section:
    """One scenario's results.

    rows: dicts with keys
      metric     what was measured, e.g. "throughput, 1 reader"
      ttyhub     ttyhub's figure (float) or None
      peer       the peer's figure (float) or None
      peer_name  e.g. "OpenSSH+socat"
      unit       e.g. "MB/s", "ms", "KiB"
      ratio      ttyhub/peer (computed by row() when both are given), or None
      target     text of the target this row checks, e.g. ">= 1.0x OpenSSH" (or "")
      ok         True/False when a target applies, else None
    notes: free text lines shown under the section's table.
    plots: dicts {file, title, xlabel, ylabel, series: {label: [(x, y), ...]}, logx, logy,
           kind}; kind "line" (default) or "bar" (x values are category labels, one bar
           group per label, one bar per series)
    """

    def __init__(self, title):
        self.title = title
        self.rows = []
        self.notes = []
        self.plots = []

    def row(self, metric, ttyhub, peer=None, peer_name="", unit="", target="", ok=None):
        ratio = None
        if ttyhub is not None and peer:
            ratio = ttyhub / peer
        self.rows.append(dict(metric=metric, ttyhub=ttyhub, peer=peer, peer_name=peer_name,
                              unit=unit, ratio=ratio, target=target, ok=ok))
        return ratio

    def note(self, text):
        self.notes.append(text)

    def plot(self, file, title, xlabel, ylabel, series, logx=False, logy=False, kind="line"):
        self.plots.append(dict(file=file, title=title, xlabel=xlabel, ylabel=ylabel,
                               series=series, logx=logx, logy=logy, kind=kind))


def proc_kib(pid, file, key):
    """A "Key:  N kB" figure from /proc/PID/FILE, in KiB (0 if absent)."""
    return proc.proc_kib(pid, key, file)


def rss_kib(pid):
    """Resident set size of PID in KiB (VmRSS)."""
    return proc_kib(pid, "status", "VmRSS")


def run_standalone(run):
    """`python3 b_NAME.py [--quick] [BUILD]`: one scenario alone, its rows and notes printed."""
    quick = "--quick" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--quick"]
    build = os.path.abspath(args[0] if args else os.environ.get(
        "TTYHUB_BUILD", os.path.join(HERE, "..", "..", "build")))
    ctx = Ctx(build, quick=quick)
    t = time.monotonic()
    s = run(ctx)
    for r in s.rows:
        print(r)
    for n in s.notes:
        print("note:", n)
    for p in s.plots:
        print("plot:", p["file"], {k: len(v) for k, v in p["series"].items()})
    print("took %.0f s" % (time.monotonic() - t))


def cpu_seconds(pid):
    """User + system CPU time PID has used so far, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def percentile(values, p):
    """The p-th percentile (0..100) of VALUES, nearest-rank."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100.0 * len(s)) - 1))
    return s[k]


# ---------------------------------------------------------------------------------------
# Helpers for scenarios (added for b_throughput, b_fanout, b_latency, b_setup, b_sshscale;
# any scenario may use them).  Every process started with spawn() is killed by cleanup(),
# which bench.py calls after each scenario, so a scenario that raises leaves nothing behind.

import json  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402

CIPHER = "aes128-gcm@openssh.com"   # the one cipher every SSH path in the benchmarks uses
SSH_CLIENT_OPTIONS = ("IdentitiesOnly=yes", "StrictHostKeyChecking=no",
                      "UserKnownHostsFile=/dev/null", "BatchMode=yes", "LogLevel=ERROR")

_spawned = []  # Popen objects started by spawn(), killed by cleanup()


def spawn(argv, **kw):
    """subprocess.Popen(argv, **kw) (stdin defaults to /dev/null), remembered for cleanup()."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.Popen(argv, **kw)
    _spawned.append(p)
    return p


def kill(p, sig=signal.SIGTERM, timeout=5):
    """End one process started here (SIGCONT first, in case it was stopped)."""
    if p is None or p.poll() is not None:
        return
    try:
        p.send_signal(signal.SIGCONT)
        p.send_signal(sig)
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    except ProcessLookupError:
        pass


def cleanup():
    """Kill every process spawn() started that still runs, and stop every service (ttyhubd,
    ttyhub-sshd, sshd, conserver: proc.Service) started since."""
    while _spawned:
        kill(_spawned.pop(), timeout=3)
    proc.stop_all()


def raise_nofile():
    """Soft RLIMIT_NOFILE up to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def exe(ctx, *parts):
    """A binary of the build under test, e.g. exe(ctx, "tests", "fake-guest")."""
    path = os.path.join(ctx.build, *parts)
    if not os.access(path, os.X_OK):
        raise AssertionError("%s is missing (build it first)" % path)
    return path


def sshload(ctx):
    return exe(ctx, "tests", "bench", "sshload")


def sshload_run(ctx, mode, args, timeout=600):
    """Run `sshload MODE ARGS` to the end: (the JSON of its MODE result line, its stderr)."""
    r = subprocess.run([sshload(ctx), mode] + list(args), capture_output=True, text=True,
                       timeout=timeout)
    for line in r.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word == mode:
            return json.loads(rest), r.stderr
    raise AssertionError("sshload %s failed (%s): %s" % (mode, r.returncode, r.stderr[-2000:]))


def median(values):
    return percentile(values, 50)


def wait_path(path, timeout=10, proc=None):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc is not None and proc.poll() is not None:
            raise AssertionError("%s exited (%s) before creating %s" % (proc.args[0],
                                                                       proc.returncode, path))
        if time.monotonic() > deadline:
            raise AssertionError("%s did not appear" % path)
        time.sleep(0.01)


def wait_port(port, timeout=10):
    """Wait until something listens on 127.0.0.1:PORT; AssertionError if nothing does."""
    if not net.wait_port(port, timeout):
        raise AssertionError("nothing listens on 127.0.0.1:%d" % port)


def child_map():
    """{ppid: [pid, ...]} for every process now in /proc."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def children(pid):
    """Every descendant of PID (from /proc), nearest first."""
    kids = child_map()
    out, todo = [], [pid]
    while todo:
        for k in kids.get(todo.pop(0), []):
            out.append(k)
            todo.append(k)
    return out


def pss_kib(pid):
    """Proportional set size of PID in KiB (shared pages divided among their users)."""
    return proc_kib(pid, "smaps_rollup", "Pss")


def mem_of(pids, fn=None):
    """Sum of FN(pid) (default rss_kib; pss_kib for PSS) over PIDS that still exist."""
    fn = fn or rss_kib
    total = 0
    for p in pids:
        try:
            total += fn(p)
        except (OSError, ValueError):
            pass
    return total


def cpu_of(pids):
    """Sum of cpu_seconds() over PIDS that still exist."""
    total = 0.0
    for p in pids:
        try:
            total += cpu_seconds(p)
        except (OSError, ValueError, IndexError):
            pass
    return total


def make_key(wd, name="bench"):
    """An ed25519 key pair WD/NAME (no passphrase); returns (private path, public line)."""
    path = os.path.join(wd, name)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name + "@bench",
                    "-f", path], check=True, stdin=subprocess.DEVNULL, capture_output=True)
    with open(path + ".pub") as f:
        return path, f.read().strip()


def ssh_argv(port, key, user, cipher=CIPHER):
    """The real OpenSSH client, no tty, reading one console (stdout = console output)."""
    argv = ["ssh"]
    for o in SSH_CLIENT_OPTIONS:
        argv += ["-o", o]
    return argv + ["-c", cipher, "-i", key, "-T", "-p", str(port), "-l", user, "127.0.0.1"]


class FakeGuest:
    """tests/fake-guest serving SOCK; start() waits for the socket.

    Streaming use (b_throughput, b_fanout, b_sshscale): unpaced unless rate, lines of
    line_length bytes tagged tag; stats() asks for the statistics now, pause()/resume()
    stop and continue it, stop() ends it and returns its last statistics.

    Timed use (b_stall): duration (s) ends the guest by itself, wait_client holds the output
    until a reader connects, and sample_every (s) starts a sampler thread that asks for the
    statistics (SIGUSR1) at that interval.  samples: [(t since start, stats dict)], the dict
    as fake-guest prints it (bytes_written, max_block_ms, total_block_ms, blocks_over_10ms,
    elapsed_s, ...); series() turns them into per-interval throughput and blocked time;
    wait() waits for the end and returns the final statistics; kill() ends it at once.
    line_length and tag None leave fake-guest's own defaults; nice: its nice increment.
    """

    def __init__(self, ctx, sock, rate=0, line_length=1024, tag="fg", extra=(),
                 stats_path=None, duration=None, wait_client=False, sample_every=None,
                 nice=0):
        self.ctx = ctx
        self.sock = sock
        self.stats_path = stats_path or sock + ".stats"
        self.argv = [exe(ctx, "tests", "fake-guest"), "--socket", sock,
                     "--stats", self.stats_path]
        if line_length is not None:
            self.argv += ["--line-length", str(line_length)]
        if tag is not None:
            self.argv += ["--tag", tag]
        if rate or duration is not None:
            self.argv += ["--rate", str(int(rate))]
        if duration is not None:
            self.argv += ["--duration", str(duration)]
        if wait_client:
            self.argv.append("--wait-client")
        self.argv += list(extra)
        self.nice = nice
        self.sample_every = sample_every
        self.samples = []
        self.proc = None
        self.thread = None
        self._stop = threading.Event()

    def start(self):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.proc = spawn(self.argv, stdout=subprocess.DEVNULL,
                          preexec_fn=(lambda: os.nice(self.nice)) if self.nice else None)
        wait_path(self.sock, proc=self.proc)
        self.t0 = time.monotonic()
        if self.sample_every:
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def read_stats(self):
        """The statistics fake-guest last wrote, or None."""
        try:
            with open(self.stats_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def stats(self):
        """The guest's statistics now (SIGUSR1, then its --stats file)."""
        try:
            os.unlink(self.stats_path)
        except FileNotFoundError:
            pass
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            st = self.read_stats()
            if st is not None:
                return st
            time.sleep(0.005)
        raise AssertionError("fake-guest wrote no statistics")

    def _sample(self):
        last = None
        while not self._stop.wait(self.sample_every):
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

    def _stop_sampler(self):
        self._stop.set()
        if self.thread is not None:
            self.thread.join(5)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def wait(self, timeout):
        """Wait for a timed guest to end; its final statistics (AssertionError if it failed)."""
        try:
            rc = self.proc.wait(timeout)
        finally:
            self._stop_sampler()
        if rc != 0:
            raise AssertionError("fake-guest exited with %s" % rc)
        st = self.read_stats()
        if st is None:
            raise AssertionError("fake-guest wrote no statistics")
        return st

    def kill(self):
        """SIGKILL, no statistics."""
        self._stop_sampler()
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        """SIGTERM; returns the statistics fake-guest writes as it exits (None if none)."""
        self._stop_sampler()
        if self.proc is None or self.proc.poll() is not None:
            return None
        try:
            os.unlink(self.stats_path)
        except FileNotFoundError:
            pass
        kill(self.proc)
        return self.read_stats()

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


class EchoGuest:
    """sshload's guest mode: a silent chardev-like socket; --greet text on every accept,
    --echo echoes input at once; multi=True accepts any number of clients at once."""

    def __init__(self, ctx, sock, greet=None, echo=False, multi=False):
        self.sock = sock
        self.argv = [sshload(ctx), "guest", "--socket", sock]
        if greet:
            self.argv += ["--greet", greet]
        if echo:
            self.argv.append("--echo")
        if multi:
            self.argv.append("--multi")
        self.proc = None

    def start(self):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.proc = spawn(self.argv)
        wait_path(self.sock, proc=self.proc)
        return self

    def stop(self):
        kill(self.proc)


class Ttyhub:
    """ttyhubd serving CONSOLES {name: socket path} (--front-user root) and, with front=True,
    ttyhub-sshd in front of it; one client key with rw access to every console.  Not a
    process itself: the pair of services hub.Daemon and sshhub.SshFront (proc.Service)."""

    def __init__(self, ctx, wd, consoles, front=True, daemon_args=(), front_args=()):
        import hub      # noqa: PLC0415 - bench.py sets TTYHUB_BUILD before the first import
        import sshhub   # noqa: PLC0415
        self.wd = wd
        os.makedirs(wd, exist_ok=True)
        args = ["--front-user", "root"] + list(daemon_args)
        for name, path in consoles.items():
            args += ["--console", "%s=%s" % (name, path)]
        self.daemon = hub.Daemon(wd, *args).start()
        self.key, pub = make_key(wd)
        self.front = None
        if front:
            # Every simulated reader uses the one key: no per-key session cap.
            self.front = sshhub.SshFront(
                os.path.join(wd, "front"), self.daemon.socket, ['consoles="*:rw" ' + pub],
                extra_args=["--max-sessions-per-key", "100000"] + list(front_args))

    @property
    def port(self):
        return self.front.port

    def pids(self):
        """{"ttyhubd": pid, "ttyhub-sshd": pid}"""
        out = {"ttyhubd": self.daemon.pid()}
        if self.front:
            out["ttyhub-sshd"] = self.front.pid
        return out

    def stop(self):
        if self.front:
            self.front.stop()
        self.daemon.stop()


class OpenSsh(proc.Service):
    """A private OpenSSH sshd the ovirt-vmconsole way: every session runs FORCE_COMMAND
    (default: `socat -b 65536 -u UNIX-CONNECT:SOCK -`, read only).  Started at once."""

    label = "sshd"

    def __init__(self, wd, sock=None, force_command=None):
        os.makedirs(wd, exist_ok=True)
        super().__init__(wd, os.path.join(wd, "sshd.log"), check_exit=False)
        self.wd = wd
        os.makedirs("/run/sshd", exist_ok=True)
        hostkey = os.path.join(wd, "sshd_hostkey")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostkey],
                       check=True, stdin=subprocess.DEVNULL, capture_output=True)
        self.key, pub = make_key(wd, "openssh_client")
        with open(os.path.join(wd, "authorized_keys"), "w") as f:
            f.write(pub + "\n")
        if force_command is None:
            force_command = "socat -b 65536 -u UNIX-CONNECT:%s -" % sock
        self.port = free_port()
        self.config = os.path.join(wd, "sshd_config")
        with open(self.config, "w") as f:
            f.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s\n"
                    "AuthorizedKeysFile %s/authorized_keys\nPasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                    "PidFile %s/sshd.pid\nMaxStartups 100:30:200\nLogLevel ERROR\n"
                    "ForceCommand %s\n" % (self.port, hostkey, wd, wd, force_command))
        self.start()

    def command(self):
        return ["/usr/sbin/sshd", "-D", "-f", self.config, "-E", self.log_path]

    def ready(self):
        return net.port_open(self.port)

    def session_pids(self):
        """Every process below the listening sshd (per-connection sshd processes and what
        they run)."""
        return children(self.proc.pid)


class Load:
    """An `sshload read` process (many SSH sessions, or inherited fds) driven through its
    stdin: mark() returns a snapshot of every stream's counters."""

    def __init__(self, ctx, args, pass_fds=(), line_length=1024):
        argv = [sshload(ctx), "read", "--line-length", str(line_length)] + list(args)
        self.proc = spawn(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          pass_fds=tuple(pass_fds), text=True, bufsize=1)
        self.connected = None

    def _line(self, word, timeout):
        import select  # noqa: PLC0415
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("sshload: no '%s' line within %g s" % (word, timeout))
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if not r:
                continue
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError("sshload exited (%s) before '%s'"
                                     % (self.proc.wait(), word))
            w, _, rest = line.partition(" ")
            if w == word:
                return json.loads(rest)

    def wait_connected(self, timeout=300):
        self.connected = self._line("connected", timeout)
        return self.connected

    def mark(self, timeout=30):
        self.proc.stdin.write("mark\n")
        self.proc.stdin.flush()
        return self._line("snap", timeout)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(20)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                kill(self.proc)


def window(a, b):
    """Per-stream deltas between two Load snapshots: dict of lists plus 'seconds'."""
    out = {"seconds": b["t"] - a["t"], "cpu": b["cpu"] - a["cpu"]}
    for k in ("bytes", "lines", "lost_silent", "lost_announced", "bad"):
        out[k] = [y - x for x, y in zip(a[k], b[k])]
    return out


def _first_line(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (r.stdout + r.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def machine_info(build):
    """What the figures were measured on: CPU, cores, RAM, kernel, versions, date."""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
        info["cpu"] = m.group(1).strip() if m else "unknown"
    except OSError:
        info["cpu"] = "unknown"
    info["cores"] = os.cpu_count()
    with open("/proc/meminfo") as f:
        kib = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
    info["ram"] = "%.1f GiB" % (kib / 1048576)
    info["kernel"] = os.uname().release
    top = os.path.join(HERE, "..", "..")
    r = subprocess.run(["git", "-C", top, "describe", "--always", "--dirty", "--tags"],
                       capture_output=True, text=True)
    # The build directory relative to the tree: the report names no path of this machine.
    info["ttyhub"] = (r.stdout.strip() or "unknown") + " (build %s)" % os.path.relpath(
        os.path.abspath(build), os.path.abspath(top))
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            m = re.search(r"^CMAKE_BUILD_TYPE:STRING=(.*)$", f.read(), re.M)
        if m:
            info["ttyhub"] += ", " + (m.group(1) or "no build type")
    except OSError:
        pass
    info["openssh"] = _first_line(["ssh", "-V"])
    info["conserver"] = _first_line(["conserver", "-V"])
    try:
        r = subprocess.run(["socat", "-V"], capture_output=True, text=True, timeout=10)
        m = re.search(r"socat version \S+", r.stdout)
        info["socat"] = m.group(0) if m else "unknown"
    except OSError:
        info["socat"] = "not installed"
    info["qemu"] = _first_line(["qemu-system-x86_64", "--version"])
    r = subprocess.run(["pkg-config", "--modversion", "libssh"], capture_output=True, text=True)
    info["libssh"] = r.stdout.strip() or "unknown"
    info["openssl"] = _first_line(["openssl", "version"])
    info["python"] = sys.version.split()[0]
    info["date"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return info


def check_sshload(ctx):
    """Self-check of sshload's line checker on crafted streams (run before any scenario, so
    that a loss count in a table can be trusted).  Raises AssertionError on a mismatch."""
    import pattern  # noqa: PLC0415 - tests/integration/pattern.py, on sys.path above
    L = 64

    def lines(a, b):
        return pattern.make_stream(a, b - a, "fg", L)

    notice = b"\n[ttyhub] someone attached read-only (3 attached)\n"
    s = lines(0, 100)
    cut = 10 * L + 20
    cases = {
        # name: (data, expected counters over the stream; the first line is never counted)
        "clean": (s, dict(lines=99, lost_silent=0, lost_announced=0, bad=0)),
        "notices cutting a line twice": (
            s[:cut] + notice + s[cut:cut + 7] + notice + s[cut + 7:],
            dict(lines=99, lost_silent=0, lost_announced=0, bad=0)),
        "conserver's [spying]": (s[:cut] + b"[spying]\r\n" + s[cut:],
                                 dict(lines=99, lost_silent=0, lost_announced=0, bad=0)),
        "silent loss": (lines(0, 20) + lines(23, 100),
                        dict(lines=96, lost_silent=3, lost_announced=0, bad=0)),
        "announced loss": (lines(0, 20)[:-30] + b"\n[ttyhub] 1234 bytes dropped\n" +
                           lines(40, 100),
                           dict(lines=78, lost_silent=0, lost_announced=21, bad=1)),
        "flipped byte": (s[:50 * L + L - 2] + b"!" + s[50 * L + L - 1:],
                         dict(lines=98, lost_silent=1, lost_announced=0, bad=1)),
    }
    fds = []
    for data, _ in cases.values():
        r, w = os.pipe()
        os.write(w, data)
        os.close(w)
        fds.append(r)
    load = Load(ctx, sum((["--fd", str(r)] for r in fds), []), pass_fds=fds, line_length=L)
    for r in fds:
        os.close(r)
    try:
        load.wait_connected(10)
        deadline = time.monotonic() + 10
        while True:
            snap = load.mark()
            if snap["open"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        load.stop()
    bad = []
    for i, (name, (data, want)) in enumerate(cases.items()):
        got = {k: snap[k][i] for k in want}
        if got != want or snap["bytes"][i] != len(data):
            bad.append("%s: got %s (%d bytes), want %s (%d bytes)"
                       % (name, got, snap["bytes"][i], want, len(data)))
    if bad:
        raise AssertionError("sshload's line checker is wrong:\n  " + "\n  ".join(bad))
