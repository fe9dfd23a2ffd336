# SPDX-License-Identifier: MIT
"""An expecter over terminals and sockets for ttyhub's integration tests (stdlib only).

The model: ``Pty`` runs a command (a ttyhub client, ssh, ...) on a new pseudo-terminal as a
user would, and ``SocketConsole`` connects straight to a chardev socket (for the harness's
self-test and for checking what really reached the guest).  Both share ``expect()`` semantics
with pexpect: the whole output is kept in ``transcript`` and each ``expect()`` searches only the
output after the end of the previous match; patterns are regular expressions (``expect_exact()``
for literal text); a timeout or end of stream raises AssertionError with the transcript's tail.

``sync_shell(console)`` brings a guest shell to a known state: it pokes the console with
newlines until a prompt shows up, then runs a command whose *output* (not its echo) is unique,
so that any stale prompts are consumed and the next ``expect()`` starts on fresh output.

guest.py re-exports all of this (``guest.Pty`` etc.), next to the QEMU guests it drives.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
import re
import select
import signal
import socket
import struct
import subprocess
import termios
import time
from typing import Sequence

__all__ = ["PROMPT", "Pty", "SocketConsole", "sync_shell"]

#: The guest shells' prompt at the end of the output so far (a compiled bytes pattern).
#: PS1 is "# "; busybox ash's line editor then asks the terminal for the cursor position
#: (ESC [ 6 n) unless input is already pending, so that query may follow the prompt.
PROMPT = re.compile(rb"# (?:\x1b\[6n)?$", re.MULTILINE)


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
