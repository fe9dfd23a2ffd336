# SPDX-License-Identifier: MIT
"""Real guests and terminals for ttyhub's integration tests (stdlib only, Python 3.11).

Run tests with /usr/bin/python3 (Debian's; it sees Debian's python3-* packages).

The model:

* ``assets()`` builds, once per process, a tiny Linux guest (Debian cloud kernel + busybox
  initramfs) with ``tests/guest/build-guest.sh`` and returns ``(kernel, initrd)``.  The guest
  prints ``guest up`` on ttyS0 when booted, runs ``sh -i`` (prompt ``# ``) on ttyS0 and, when a
  virtio console exists, on hvc0, where it first prints ``hvc0 up``.

* ``Guest`` runs one QEMU (TCG; KVM only with ``TTYHUB_TEST_KVM=1``) whose serial port, virtio
  console and QMP monitor are UNIX sockets in a work directory, named after the guest:
  ``NAME-serial0.sock``, ``NAME-console1.sock``, ``NAME-qmp.sock``.  These are the sockets a
  ttyhub broker connects to, exactly as libvirt would lay them out; ``domain_xml()`` describes
  the same guest as libvirt domain XML.  The harness talks QMP on its own second monitor
  (``NAME-qmp-harness.sock``) so that ``qmp()`` works while a broker holds ``NAME-qmp.sock``.

  QEMU drops console output while no client is connected to a chardev socket, so a test that
  must see boot output connects right after ``start()``, or passes ``extra_args=("-S",)`` and
  resumes the CPU with ``guest.qmp({"execute": "cont"})`` once its client is connected.

* ``Pty`` runs a command (a ttyhub client, ssh, ...) on a new pseudo-terminal as a user would,
  and ``SocketConsole`` connects straight to a chardev socket (for the harness's self-test and
  for checking what really reached the guest).  Both share ``expect()`` semantics with pexpect:
  the whole output is kept in ``transcript`` and each ``expect()`` searches only the output after
  the end of the previous match; patterns are regular expressions (``expect_exact()`` for
  literal text); a timeout or end of stream raises AssertionError with the transcript's tail.

* ``sync_shell(console)`` brings a guest shell to a known state: it pokes the console with
  newlines until a prompt shows up, then runs a command whose *output* (not its echo) is unique,
  so that any stale prompts are consumed and the next ``expect()`` starts on fresh output.

Typical use::

    with Guest(workdir, "vm1", virtio_console=True) as g:
        with SocketConsole(g.serial_sock) as con:
            sync_shell(con)
            con.send("echo $((6*7))\\n")
            con.expect(r"^42\\r?$")          # the output line, not the echoed command
            con.expect(PROMPT)
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import os
import re
import select
import shlex
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
import uuid
from pathlib import Path
from typing import Iterable, Sequence
from xml.sax.saxutils import escape as _xml_escape

__all__ = [
    "BUILD_GUEST",
    "PROMPT",
    "assets",
    "Guest",
    "Pty",
    "SocketConsole",
    "sync_shell",
]

HERE = Path(__file__).resolve().parent
BUILD_GUEST = HERE.parent / "guest" / "build-guest.sh"

#: The guest shells' prompt at the end of the output so far (a compiled bytes pattern).
#: PS1 is "# "; busybox ash's line editor then asks the terminal for the cursor position
#: (ESC [ 6 n) unless input is already pending, so that query may follow the prompt.
PROMPT = re.compile(rb"# (?:\x1b\[6n)?$", re.MULTILINE)

#: Kernel command line: quiet, because the kernel's printk to a TCG 16550 is slow (~0.45 MB/s)
#: and would interleave with test output; panic=-1 + QEMU's -no-reboot make a panic end QEMU.
DEFAULT_APPEND = "console=ttyS0 panic=-1 quiet loglevel=1"

QEMU = "qemu-system-x86_64"
MEMORY_MB = 256

# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
_SUN_PATH_MAX = 107

_assets_lock = threading.Lock()
_assets_cache: tuple[str, str] | None = None


def assets() -> tuple[str, str]:
    """Return ``(kernel, initrd)`` paths, building the guest once per process if needed.

    Runs ``tests/guest/build-guest.sh``; its progress goes to this process's stderr.  Raises
    RuntimeError if the build fails.
    """
    global _assets_cache
    with _assets_lock:
        if _assets_cache is None:
            res = subprocess.run(
                ["bash", str(BUILD_GUEST)],
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                check=False,
            )
            lines = res.stdout.decode().splitlines()
            if res.returncode != 0 or len(lines) != 2:
                raise RuntimeError(
                    f"{BUILD_GUEST} failed (exit {res.returncode}, stdout {lines!r})"
                )
            kernel, initrd = lines
            for p in (kernel, initrd):
                if not os.path.isfile(p):
                    raise RuntimeError(f"{BUILD_GUEST} printed {p}, which is not a file")
            _assets_cache = (kernel, initrd)
        return _assets_cache


def _tail(data: bytes, n: int = 2000) -> str:
    """The last n bytes of data, for error messages."""
    text = data[-n:].decode("utf-8", "backslashreplace")
    return ("...[%d bytes before]...\n" % (len(data) - n) if len(data) > n else "") + text


def _compile(pattern: str | bytes | re.Pattern) -> re.Pattern:
    """A bytes regular expression from str or bytes (re.MULTILINE) or a compiled pattern."""
    if isinstance(pattern, re.Pattern):
        if isinstance(pattern.pattern, str):
            return re.compile(pattern.pattern.encode(), pattern.flags & ~re.UNICODE)
        return pattern
    if isinstance(pattern, str):
        pattern = pattern.encode()
    if isinstance(pattern, (bytes, bytearray)):
        return re.compile(bytes(pattern), re.MULTILINE)
    raise TypeError(f"expect() pattern must be str, bytes or re.Pattern, not {type(pattern)}")


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


class _Expecter:
    """Transcript keeping and pexpect-like matching over a byte stream.

    Subclasses implement ``_read(timeout) -> bytes | None`` (None: end of stream, b"": nothing
    within timeout) and ``send()``.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self.eof = False
        self.name = "stream"

    # -- subclass interface --

    def _read(self, timeout: float) -> bytes | None:
        raise NotImplementedError

    def send(self, data: bytes | str) -> None:
        raise NotImplementedError

    # -- public --

    @property
    def transcript(self) -> bytes:
        """Everything read so far."""
        return bytes(self._buf)

    @property
    def pos(self) -> int:
        """Offset in ``transcript`` where the next ``expect()`` starts searching."""
        return self._pos

    def _pump(self, deadline: float) -> bool:
        """Read once, waiting until deadline at most.  False at end of stream."""
        if self.eof:
            return False
        data = self._read(max(0.0, deadline - time.monotonic()))
        if data is None:
            self.eof = True
            return False
        self._buf += data
        return True

    def expect(self, pattern: str | bytes | re.Pattern, timeout: float = 10) -> re.Match:
        """Wait for pattern in the output after the previous match; return the match.

        ``pattern`` is a regular expression, as in pexpect: ``str`` (UTF-8 encoded) or
        ``bytes``, compiled with re.MULTILINE and matched against the bytes read, or a compiled
        pattern.  Use ``expect_exact()`` for literal text.  ``^`` matches after a newline, not
        at the search start.  Match positions are transcript offsets.  Raises AssertionError,
        with the tail of the transcript, on timeout or end of stream.
        """
        return self._expect(_compile(pattern), timeout)

    def expect_exact(self, text: str | bytes, timeout: float = 10) -> re.Match:
        """Like ``expect()``, for literal text."""
        return self._expect(re.compile(re.escape(_as_bytes(text))), timeout)

    def _expect(self, rx: re.Pattern, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self._buf, self._pos)
            if m:
                self._pos = m.end()
                return m
            if time.monotonic() >= deadline:
                why = f"timeout ({timeout:g} s)"
                break
            if not self._pump(deadline):
                why = "end of stream"
                break
        raise AssertionError(
            f"{self.name}: {rx.pattern!r} not seen after offset {self._pos}: {why}; "
            f"transcript tail:\n{_tail(bytes(self._buf))}"
        )

    def expect_eof(self, timeout: float = 10) -> None:
        """Wait for the end of the stream (child closed its tty, peer closed the socket)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.name}: no end of stream within {timeout:g} s; transcript tail:\n"
                    f"{_tail(bytes(self._buf))}"
                )
            self._pump(deadline)
        self._pos = len(self._buf)

    def expect_absent(self, pattern: str | bytes | re.Pattern, duration: float = 1.0) -> None:
        """Read for ``duration`` seconds and assert pattern does not appear after ``pos``.

        For negative tests (e.g. input of a read-only client must not reach the guest).  Does
        not move ``pos``.
        """
        rx = _compile(pattern)
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline and self._pump(deadline):
            pass
        m = rx.search(self._buf, self._pos)
        if m:
            raise AssertionError(
                f"{self.name}: {rx.pattern!r} appeared at offset {m.start()}; "
                f"transcript tail:\n{_tail(bytes(self._buf))}"
            )

    def read_for(self, duration: float) -> bytes:
        """Read for ``duration`` seconds (or to end of stream); return the new bytes."""
        start = len(self._buf)
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline and self._pump(deadline):
            pass
        return bytes(self._buf[start:])

    def skip(self) -> None:
        """Move ``pos`` to the end of what has been read so far."""
        self._pos = len(self._buf)


class Pty(_Expecter):
    """A command on a new pseudo-terminal, its controlling tty, as if run by a user.

    The child gets a new session (``setsid``), the pty slave as stdin/stdout/stderr and
    controlling terminal, ``TERM=xterm`` and a ``rows`` x ``cols`` window.  Output is read from
    the master side; ``expect()`` copes with the child having exited (EOF/EIO).
    """

    def __init__(
        self,
        argv: Sequence[str],
        rows: int = 24,
        cols: int = 80,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        self.argv = list(argv)
        self.name = f"pty[{os.path.basename(self.argv[0])}]"
        master, slave = os.openpty()
        try:
            self._set_winsize(slave, rows, cols)
            cenv = dict(os.environ if env is None else env)
            cenv["TERM"] = "xterm"
            self.proc = subprocess.Popen(
                self.argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=cwd,
                env=cenv,
                start_new_session=True,
                # Runs in the child after setsid() and the dup2()s: fd 0 becomes the ctty.
                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            )
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        os.close(slave)
        os.set_blocking(master, False)
        self.fd: int | None = master

    @staticmethod
    def _set_winsize(fd: int, rows: int, cols: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def resize(self, rows: int, cols: int) -> None:
        """Change the window size; the kernel sends SIGWINCH to the foreground group."""
        if self.fd is None:
            raise ValueError("pty closed")
        self._set_winsize(self.fd, rows, cols)

    def _read(self, timeout: float) -> bytes | None:
        if self.fd is None:
            return None
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return b""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return b""
        except OSError as e:
            if e.errno == errno.EIO:  # Linux: every slave fd is closed
                return None
            raise
        return data if data else None

    def send(self, data: bytes | str) -> None:
        """Write data to the terminal (as typed keys; use "\\r" for Enter on raw clients)."""
        if self.fd is None:
            raise ValueError("pty closed")
        data = _as_bytes(data)
        deadline = time.monotonic() + 10
        while data:
            try:
                n = os.write(self.fd, data)
                data = data[n:]
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.name}: terminal input stuck for 10 s")
                select.select([], [self.fd], [], 0.1)

    def wait(self, timeout: float = 10) -> int:
        """Wait for the child to exit and return its returncode (-N: killed by signal N).

        Output keeps being collected meanwhile, so a child blocked on a full pty still exits.
        Raises AssertionError on timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                return rc
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.name}: pid {self.proc.pid} still running after {timeout:g} s; "
                    f"transcript tail:\n{_tail(bytes(self._buf))}"
                )
            if self.eof:
                time.sleep(0.02)
            else:
                self._pump(min(deadline, time.monotonic() + 0.05))

    def kill(self, sig: int = signal.SIGTERM) -> None:
        """Send sig to the child (if it still runs)."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        """Kill the child's session if still running, reap it, close the master."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "Pty":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class SocketConsole(_Expecter):
    """A raw client of a chardev UNIX socket (QEMU serial/virtio console, or any stream socket).

    Connecting retries until the socket accepts or ``timeout`` passes.  What is sent reaches
    the guest's tty as is (send "\\n" for Enter; the guest tty maps "\\r" too).
    """

    def __init__(self, path: str | os.PathLike, timeout: float = 10) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.name = f"socket[{os.path.basename(self.path)}]"
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.path)
                break
            except OSError as e:
                s.close()
                if time.monotonic() >= deadline:
                    raise AssertionError(f"cannot connect to {self.path}: {e}") from e
                time.sleep(0.05)
        s.setblocking(False)
        self.sock: socket.socket | None = s

    def _read(self, timeout: float) -> bytes | None:
        if self.sock is None:
            return None
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return b""
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return b""
        except ConnectionResetError:
            return None
        return data if data else None

    def send(self, data: bytes | str) -> None:
        if self.sock is None:
            raise ValueError("socket closed")
        self.sock.settimeout(10)
        try:
            self.sock.sendall(_as_bytes(data))
        finally:
            self.sock.setblocking(False)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> "SocketConsole":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_sync_counter = itertools.count(1)
_domid_counter = itertools.count(1)


def sync_shell(console: _Expecter, timeout: float = 60, interval: float = 1.0) -> None:
    """Bring a guest shell reached through ``console`` to a fresh prompt.

    Sends a newline every ``interval`` seconds until a prompt shows up (the guest may still be
    booting, and QEMU may have dropped the first prompt while no client was connected), then
    runs ``echo SYNC$((N+1))`` for a unique N and waits for its output and the prompt after it.
    Afterwards ``console.pos`` is just past that prompt.  Raises AssertionError on timeout.
    """
    deadline = time.monotonic() + timeout
    prompt = PROMPT
    while True:
        console.send(b"\n")
        try:
            console.expect(prompt, timeout=min(interval, max(0.0, deadline - time.monotonic())))
            break
        except AssertionError:
            if time.monotonic() >= deadline or console.eof:
                raise
    n = next(_sync_counter) * 1000 + os.getpid() % 1000
    console.send(f"echo SYNC$(({n}+1))\n")
    console.expect(rf"SYNC{n + 1}\r?\n", timeout=max(1.0, deadline - time.monotonic()))
    console.expect(prompt, timeout=max(1.0, deadline - time.monotonic()))


class Guest:
    """One QEMU guest with its consoles on UNIX sockets in ``workdir``.

    ``Guest(workdir, name, serial=True, virtio_console=False, qmp=True, extra_args=())`` starts
    QEMU at once (pass ``start=False`` to only prepare, e.g. for ``domain_xml("define")``).
    QEMU's stdout/stderr go to ``WORKDIR/NAME-qemu.log`` (appended across restarts).

    Sockets (QEMU listens, ``server=on,wait=off``):
      serial_sock   NAME-serial0.sock   16550 on ttyS0, chardev id charserial0 (if serial)
      console_sock  NAME-console1.sock  virtconsole hvc0, chardev id charconsole1 (if virtio)
      qmp_sock      NAME-qmp.sock       QMP for the code under test (if qmp)
      NAME-qmp-harness.sock             QMP for ``qmp()`` (always)

    Environment: ``TTYHUB_TEST_KVM=1`` uses ``-accel kvm`` instead of TCG;
    ``TTYHUB_GUEST_APPEND`` replaces the kernel command line.
    """

    def __init__(
        self,
        workdir: str | os.PathLike,
        name: str,
        serial: bool = True,
        virtio_console: bool = False,
        qmp: bool = True,
        extra_args: Iterable[str] = (),
        *,
        start: bool = True,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name):
            raise ValueError(f"guest name {name!r}: use letters, digits and _.+-")
        self.workdir = os.path.abspath(os.fspath(workdir))
        self.name = name
        self.serial = serial
        self.virtio_console = virtio_console
        self.has_qmp = qmp
        self.extra_args = list(extra_args)
        self.uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, "ttyhub-test-guest:" + name))
        self.domid = next(_domid_counter)
        self.log_path = os.path.join(self.workdir, f"{name}-qemu.log")
        self._harness_qmp = os.path.join(self.workdir, f"{name}-qmp-harness.sock")
        for p in (self._sock("serial0"), self._harness_qmp):
            if len(os.fsencode(p)) > _SUN_PATH_MAX:
                raise ValueError(f"socket path too long for AF_UNIX ({len(p)} bytes): {p}")
        self.kernel, self.initrd = assets()
        self.append = os.environ.get("TTYHUB_GUEST_APPEND", DEFAULT_APPEND)
        self.proc: subprocess.Popen | None = None
        self.started_at: float | None = None
        self._log = None
        if start:
            self.start()

    # -- paths --

    def _sock(self, what: str) -> str:
        return os.path.join(self.workdir, f"{self.name}-{what}.sock")

    @property
    def serial_sock(self) -> str | None:
        return self._sock("serial0") if self.serial else None

    @property
    def console_sock(self) -> str | None:
        return self._sock("console1") if self.virtio_console else None

    @property
    def qmp_sock(self) -> str | None:
        return self._sock("qmp") if self.has_qmp else None

    def _sockets(self) -> list[str]:
        socks = [self.serial_sock, self.console_sock, self.qmp_sock, self._harness_qmp]
        return [s for s in socks if s]

    @property
    def pid(self) -> int | None:
        """QEMU's pid while it runs (or until reaped), else None."""
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- lifecycle --

    def command(self) -> list[str]:
        """The QEMU command line."""
        accel = "kvm" if os.environ.get("TTYHUB_TEST_KVM") == "1" else "tcg"
        cmd = [
            QEMU, "-accel", accel, "-name", self.name, "-uuid", self.uuid,
            "-m", str(MEMORY_MB), "-smp", "1", "-nodefaults", "-no-user-config",
            "-display", "none", "-no-reboot",
            "-kernel", self.kernel, "-initrd", self.initrd, "-append", self.append,
        ]
        if self.serial:
            cmd += [
                "-chardev",
                f"socket,id=charserial0,path={self.serial_sock},server=on,wait=off",
                "-serial", "chardev:charserial0",
            ]
        if self.virtio_console:
            cmd += [
                "-device", "virtio-serial-pci",
                "-chardev",
                f"socket,id=charconsole1,path={self.console_sock},server=on,wait=off",
                "-device", "virtconsole,chardev=charconsole1,id=console1",
            ]
        if self.has_qmp:
            cmd += ["-qmp", f"unix:{self.qmp_sock},server=on,wait=off"]
        cmd += ["-qmp", f"unix:{self._harness_qmp},server=on,wait=off"]
        return cmd + self.extra_args

    def start(self, timeout: float = 10) -> "Guest":
        """Start QEMU (no-op if running) and wait until its sockets exist.

        Stale socket files are removed first.  Raises RuntimeError, with the QEMU log tail, if
        QEMU exits or the sockets do not appear within timeout.
        """
        if self.running:
            return self
        self._reap()
        os.makedirs(self.workdir, exist_ok=True)
        socks = self._sockets()
        for s in socks:
            try:
                os.unlink(s)
            except FileNotFoundError:
                pass
        self._log = open(self.log_path, "ab")
        self._log.write(f"### {time.strftime('%F %T')} {shlex.join(self.command())}\n".encode())
        self._log.flush()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
        )
        deadline = time.monotonic() + timeout
        while not all(os.path.exists(s) for s in socks):
            if self.proc.poll() is not None:
                self._reap()
                raise RuntimeError(f"QEMU for {self.name} exited:\n{self.log_tail()}")
            if time.monotonic() >= deadline:
                self.kill()
                raise RuntimeError(
                    f"QEMU for {self.name}: sockets missing after {timeout:g} s:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.02)
        return self

    def send_signal(self, sig: int) -> None:
        """Send sig to QEMU without waiting (e.g. SIGSTOP/SIGCONT to freeze a guest)."""
        if self.running:
            self.proc.send_signal(sig)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 10) -> int | None:
        """Send sig to QEMU and wait for it to exit; return its returncode (-N: signal N).

        For terminating signals; SIGKILL follows if QEMU still runs after timeout.  Socket
        files are left behind, as after a real crash.
        """
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._reap()
        return rc

    def restart(self, timeout: float = 10) -> "Guest":
        """Kill QEMU (SIGKILL) and start it again on the same socket paths."""
        self.kill()
        return self.start(timeout)

    def stop(self, timeout: float = 10) -> None:
        """Terminate QEMU (SIGTERM, then SIGKILL after timeout) and remove its socket files."""
        if self.proc is not None:
            self.kill(signal.SIGTERM, timeout)
        for s in self._sockets():
            try:
                os.unlink(s)
            except FileNotFoundError:
                pass

    def _reap(self) -> None:
        """Forget an exited QEMU (keeps nothing open)."""
        if self.proc is not None and self.proc.poll() is not None:
            self.proc = None
        if self.proc is None and self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, n: int = 4000) -> str:
        """The end of NAME-qemu.log."""
        try:
            with open(self.log_path, "rb") as f:
                return _tail(f.read(), n)
        except OSError as e:
            return f"(no log: {e})"

    def __enter__(self) -> "Guest":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self) -> None:
        # Last resort against stray QEMUs; tests should call stop() or use "with".
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    # -- QMP --

    def qmp(self, command: dict, timeout: float = 10) -> dict:
        """Run one QMP command on the harness's own monitor and return QEMU's reply.

        Connects, reads the greeting, negotiates capabilities, sends ``command`` (a dict such as
        ``{"execute": "query-status"}``), skips events and returns the reply dict (with
        ``"return"`` or ``"error"``).  Raises AssertionError on timeout or a closed connection.
        """
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self._harness_qmp)
            f = s.makefile("rwb")

            def reply() -> dict:
                while True:
                    s.settimeout(max(0.01, deadline - time.monotonic()))
                    try:
                        line = f.readline()
                    except TimeoutError:
                        line = None
                    if not line:
                        raise AssertionError(
                            f"QMP {self.name}: no reply to {command!r} "
                            f"({'timeout' if line is None else 'connection closed'})"
                        )
                    msg = json.loads(line)
                    if "event" not in msg:
                        return msg

            greeting = reply()
            if "QMP" not in greeting:
                raise AssertionError(f"QMP {self.name}: unexpected greeting {greeting!r}")
            for cmd in ({"execute": "qmp_capabilities"}, command):
                f.write(json.dumps(cmd).encode() + b"\n")
                f.flush()
                msg = reply()
                if cmd is not command and "return" not in msg:
                    raise AssertionError(f"QMP {self.name}: qmp_capabilities: {msg!r}")
            f.close()
            return msg

    # -- libvirt view --

    def domain_xml(self, kind: str = "domain") -> str:
        """This guest as libvirt domain XML.

        kind:
          "domain"     live XML as virDomainGetXMLDesc returns it (id, <alias> elements)
          "domstatus"  the same inside <domstatus>, like /run/libvirt/qemu/NAME.xml
          "define"     inactive XML for ``virsh define`` (no id, no aliases); libvirt then
                       runs its own QEMU with the same socket paths (use start=False)

        Devices, as libvirt writes them: <serial type='unix'> isa-serial port 0 (serial0); a
        <console type='unix'> with <target type='serial' port='0'/> duplicating it; and, with
        a virtio console, <console type='unix'> <target type='virtio' port='1'/> (console1).
        """
        if kind not in ("domain", "domstatus", "define"):
            raise ValueError(f"domain_xml kind {kind!r}: domain, domstatus or define")
        live = kind != "define"

        def q(v: str) -> str:
            return _xml_escape(v, {"'": "&apos;", '"': "&quot;"})

        def alias(a: str) -> str:
            return f"      <alias name='{a}'/>\n" if live else ""

        dev = ""
        if self.serial:
            src = f"      <source mode='bind' path='{q(self.serial_sock)}'/>\n"
            dev += (
                "    <serial type='unix'>\n" + src +
                "      <target type='isa-serial' port='0'>\n"
                "        <model name='isa-serial'/>\n"
                "      </target>\n" + alias("serial0") +
                "    </serial>\n"
                "    <console type='unix'>\n" + src +
                "      <target type='serial' port='0'/>\n" + alias("serial0") +
                "    </console>\n"
            )
        if self.virtio_console:
            dev += (
                "    <console type='unix'>\n"
                f"      <source mode='bind' path='{q(self.console_sock)}'/>\n"
                "      <target type='virtio' port='1'/>\n" + alias("console1") +
                "    </console>\n"
            )
        domid = f" id='{self.domid}'" if live else ""
        xml = (
            f"<domain type='{'kvm' if os.environ.get('TTYHUB_TEST_KVM') == '1' else 'qemu'}'"
            f"{domid}>\n"
            f"  <name>{q(self.name)}</name>\n"
            f"  <uuid>{self.uuid}</uuid>\n"
            f"  <memory unit='KiB'>{MEMORY_MB * 1024}</memory>\n"
            f"  <currentMemory unit='KiB'>{MEMORY_MB * 1024}</currentMemory>\n"
            "  <vcpu placement='static'>1</vcpu>\n"
            "  <os>\n"
            "    <type arch='x86_64' machine='pc'>hvm</type>\n"
            f"    <kernel>{q(self.kernel)}</kernel>\n"
            f"    <initrd>{q(self.initrd)}</initrd>\n"
            f"    <cmdline>{q(self.append)}</cmdline>\n"
            "  </os>\n"
            "  <on_poweroff>destroy</on_poweroff>\n"
            "  <on_reboot>destroy</on_reboot>\n"
            "  <on_crash>destroy</on_crash>\n"
            "  <devices>\n"
            f"    <emulator>/usr/bin/{QEMU}</emulator>\n"
            + dev +
            "  </devices>\n"
            "</domain>\n"
        )
        if kind == "domstatus":
            pid = self.pid if self.pid is not None else 0
            inner = "".join("  " + line + "\n" for line in xml.splitlines())
            mon = self.qmp_sock or self._harness_qmp
            xml = (
                f"<domstatus state='running' reason='booted' pid='{pid}'>\n"
                f"  <monitor path='{q(mon)}' type='unix'/>\n"
                + inner +
                "</domstatus>\n"
            )
        return xml


if __name__ == "__main__":
    print("\n".join(assets()))
