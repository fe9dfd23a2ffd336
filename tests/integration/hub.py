# SPDX-License-Identifier: MIT
"""Test harness for ttyhubd: start the real daemon, talk the broker protocol
directly (for fault injection), and locate the real ttyhub CLI.

Stdlib only; run with /usr/bin/python3.  The build directory comes from
$TTYHUB_BUILD (set by ctest), defaulting to ../../build.
"""

import json
import os
import re
import signal
import socket
import struct
import subprocess
import tempfile
import time

import domains
import proc
import runner
import svcmgr

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("TTYHUB_BUILD", os.path.join(HERE, "..", "..", "build"))
TTYHUBD = os.path.join(BUILD, "broker", "ttyhubd")
TTYHUB = os.path.join(BUILD, "cli", "ttyhub")
FAKE_GUEST = os.path.join(BUILD, "tests", "fake-guest")
# Set by scripts/test for the ASan+UBSan run: memory figures are the sanitizer's, not ours.
SANITIZED = os.environ.get("TTYHUB_SANITIZED") == "1"


def domain_xml(name: str, uuid: str, path: str, alias: str = "serial0") -> str:
    """A libvirt domain with one unix serial console, for --domain-xml tests.  The name goes
    in as given (tests hand ttyhubd character references on purpose)."""
    return domains.unix_serial_domain(name, uuid, path, alias=alias, raw_name=True)


daemons_by_socket = {}  # socket path -> the Daemon serving it (sshhub finds its access file here)

# ttyhubd's log line once an access file took effect, or a reload that kept the old one.
ACCESS_LOADED = re.compile(r"access file \S+ (loaded:|not reloaded)")


class Daemon(proc.Service):
    """A ttyhubd process on a private socket, logging to WORKDIR/ttyhubd.log.

    It always reads the access file WORKDIR/access (which may not exist: then no SSH key
    may log in).  write_access() and reload() change it while the daemon runs.

    managed=True runs it under a fake service manager (svcmgr.py) as systemd would with
    the socket unit and the fd store: the manager owns the listening socket (clients can
    connect while ttyhubd is down), keeps what ttyhubd stores (stored_names()), and
    restart() respawns it with the stored fds.  fdstore_max is its FileDescriptorStoreMax=.
    """

    label = "ttyhubd"

    def __init__(self, workdir, *args, name="ttyhubd", wrap=(), guest_root=True, lock_dir=True,
                 managed=False, fdstore_max=64):
        super().__init__(workdir, os.path.join(workdir, name + ".log"))
        self.managed = managed
        self.fdstore_max = fdstore_max
        self.manager = None
        self.wrap = list(wrap)  # e.g. ["unshare", "-m", "sh", "-c", "... exec \"$0\" \"$@\""]
        self.socket = os.path.join(workdir, name + ".sock")
        # The test guests (QEMU, fake-guest, libvirtd with user=root) run as root, which
        # ttyhubd refuses as a chardev peer unless told: guest_root=False to leave that out.
        self.access = os.path.join(workdir, "access")
        self._access_parts = {}  # owner (e.g. an sshhub.SshFront) -> its lines
        # First, so that a test's own --access wins.
        self.prefix_args = ["--access", self.access] + (["--guest-user", "root"] if guest_root
                                                         else [])
        self.args = self.prefix_args + list(args)
        daemons_by_socket[self.socket] = self
        # lock_dir=False: no --lock-dir on the command line (the configuration file decides).
        self.lock_args = ["--lock-dir", workdir] if lock_dir else []

    def command(self) -> list[str]:
        return self.wrap + [TTYHUBD, "--socket", self.socket] + self.lock_args + self.args

    def start(self, timeout=None):
        if not self.managed:
            return super().start(timeout)
        if self.manager is None:
            self.manager = svcmgr.ServiceManager(self.workdir, self.socket, self.fdstore_max)
        self._spawn(timeout)
        if self not in proc.SERVICES:
            proc.SERVICES.append(self)
        if self.check_exit:
            runner.at_finish(self, "ttyhubd (%s) exited cleanly" % os.path.basename(self.workdir),
                             self.exited_cleanly)
        return self

    def _spawn(self, timeout=None):
        if self._log is None or self._log.closed:
            self._log = open(self.log_path, "ab")
        self.proc = self.manager.spawn(self.command(), self._log, self._log)
        if not self.manager.wait_ready(self.proc, self.start_timeout if timeout is None
                                       else timeout):
            raise AssertionError("ttyhubd did not send READY=1 (exit status %s):\n%s"
                                 % (self.proc.poll(), self.log()[-3000:]))

    def restart(self, sig=signal.SIGTERM, timeout=None, between=None, args=None):
        """Managed only: signal ttyhubd, wait for it to exit, call between() (the gap),
        respawn it with what the manager stored (and the arguments ARGS if given) and wait
        for READY=1.  Returns the old process's exit status."""
        assert self.managed, "restart() needs Daemon(..., managed=True)"
        self.proc.send_signal(sig)
        rc = self.proc.wait(self.stop_timeout)
        if sig == signal.SIGTERM and rc != 0:
            raise AssertionError("ttyhubd exited with %s on SIGTERM:\n%s"
                                 % (rc, self.log()[-3000:]))
        if between:
            between()
        if args is not None:
            self.args = self.prefix_args + list(args)
        self._spawn(timeout)
        return rc

    def stored_names(self):
        """Managed only: the names of the fds the manager keeps for ttyhubd, sorted."""
        return self.manager.stored_names()

    def stop(self):
        rc = super().stop()
        if self.manager is not None:
            self.manager.close()
            self.manager = None
        return rc

    def ready(self) -> bool:
        """The socket accepts a connection."""
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(self.socket)
            return True
        except OSError:
            return False

    def write_access(self, lines, owner=None):
        """Replace OWNER's lines of the access file (atomically, mode 0600).  The file holds
        every owner's lines, in the order the owners first wrote, so that two SSH fronts of
        one daemon keep their keys as they did with a file each."""
        self._access_parts[owner] = list(lines)
        tmp = self.access + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(line + "\n" for part in self._access_parts.values() for line in part))
        os.rename(tmp, self.access)

    def reload(self, timeout=20):
        """SIGHUP, then wait until the log says the access file was (re)loaded."""
        if not self.alive():
            raise AssertionError("ttyhubd is not running:\n" + self.log()[-3000:])
        before = len(ACCESS_LOADED.findall(self.log()))
        self.proc.send_signal(signal.SIGHUP)
        self.wait_for(lambda: len(ACCESS_LOADED.findall(self.log())) > before, timeout=timeout,
                      what="the access file to be reloaded")

    def pid(self) -> int:  # a method here (a property in proc.Service): the tests call d.pid()
        return self.proc.pid

    def cli(self, *args, timeout=20):
        """Run the ttyhub CLI against this daemon; returns CompletedProcess."""
        return subprocess.run([TTYHUB, "--broker", self.socket] + list(args),
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)

    def cli_cmd(self, *args):
        return [TTYHUB, "--broker", self.socket] + list(args)

    def list(self):
        r = self.cli("list", "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def console(self, name):
        for c in self.list()["consoles"]:
            if c["name"] == name:
                return c
        return None

    def wait_for(self, predicate, timeout=10, what="condition"):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s (last: %r)\n--- daemon log ---\n%s"
                             % (what, last, self.log()[-3000:]))


def frame_data(b):
    """A broker protocol data frame."""
    return b"D" + struct.pack(">I", len(b)) + b


def parse_output(payload):
    """(start, end) of an output frame's payload; the console bytes follow at [16:]."""
    if len(payload) < 16:
        raise AssertionError("output frame of %d bytes: no offsets" % len(payload))
    start, end = struct.unpack(">QQ", payload[:16])
    if end < start:
        raise AssertionError("output frame with end %d before start %d" % (end, start))
    return start, end


class BrokerClient:
    """A raw protocol client (frames + JSON) for driving ttyhubd directly.

    Console output comes in O frames (start and end offsets, then the bytes): the bytes
    are appended to self.data, each frame's (start, end) to self.frames, and self.end is
    the end of the last one (the offset to resume at), None before the first."""

    def __init__(self, path, hello=True, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.data = b""
        self.frames = []
        self.end = None
        self.messages = []
        if hello:
            self.send({"type": "hello", "version": 1, "client": "test"})
            self.expect_type("hello")

    def send_raw(self, b):
        self.sock.sendall(b)

    def send(self, obj):
        payload = json.dumps(obj).encode()
        self.send_raw(b"C" + struct.pack(">I", len(payload)) + payload)

    def send_data(self, b):
        self.send_raw(b"D" + struct.pack(">I", len(b)) + b)

    def _read_frame(self):
        while True:
            if len(self.buf) >= 5:
                t = self.buf[0:1]
                n = struct.unpack(">I", self.buf[1:5])[0]
                if len(self.buf) >= 5 + n:
                    payload = self.buf[5:5 + n]
                    self.buf = self.buf[5 + n:]
                    return t, payload
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("broker closed the connection")
            self.buf += chunk

    def pump(self):
        """Read one frame: output is appended to self.data; a control message is returned."""
        t, payload = self._read_frame()
        if t == b"O":
            start, end = parse_output(payload)
            self.frames.append((start, end))
            self.end = end
            self.data += payload[16:]
            return None
        if t != b"C":
            raise AssertionError("the broker sent a %r frame" % t)
        msg = json.loads(payload)
        self.messages.append(msg)
        return msg

    def next(self):
        """Next control message; output frames are accumulated in self.data."""
        while True:
            msg = self.pump()
            if msg is not None:
                return msg

    def expect_type(self, want):
        while True:
            msg = self.next()
            if msg["type"] == want:
                return msg
            if msg["type"] == "error" and want != "error":
                raise AssertionError("broker error while waiting for %s: %r" % (want, msg))

    def read_data_until(self, needle, timeout=10):
        deadline = time.monotonic() + timeout
        saved = self.sock.gettimeout()
        try:
            while needle not in self.data:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for %r in %r"
                                         % (needle, self.data[-500:]))
                self.sock.settimeout(left)
                try:
                    self.pump()
                except socket.timeout:
                    pass
        finally:
            self.sock.settimeout(saved)
        return self.data

    def close(self):
        self.sock.close()


def workdir(prefix):
    """A fresh temporary directory (short path: UNIX socket paths are limited)."""
    return tempfile.mkdtemp(prefix="th-" + prefix + "-", dir="/tmp")
