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

* ``Pty``, ``SocketConsole``, ``sync_shell()`` and ``PROMPT`` (the expecter over terminals
  and chardev sockets) live in expect.py and are re-exported here.  domains.py writes the
  domain XML.

Typical use::

    with Guest(workdir, "vm1", virtio_console=True) as g:
        with SocketConsole(g.serial_sock) as con:
            sync_shell(con)
            con.send("echo $((6*7))\\n")
            con.expect(r"^42\\r?$")          # the output line, not the echoed command
            con.expect(PROMPT)
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Iterable

import domains
from expect import (  # noqa: F401 - re-exported (b_realguest.py subclasses _Expecter)
    PROMPT, Pty, SocketConsole, _Expecter, _tail, sync_shell)

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


_domid_counter = itertools.count(1)


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

        def alias(a: str) -> str | None:
            return a if live else None

        dev = []
        if self.serial:
            dev.append(domains.serial(self.serial_sock, alias=alias("serial0"), model=True))
            dev.append(domains.console(self.serial_sock, "serial", 0, alias=alias("serial0")))
        if self.virtio_console:
            dev.append(domains.console(self.console_sock, "virtio", 1, alias=alias("console1")))
        boot = domains.Boot(self.kernel, self.initrd, self.append, MEMORY_MB, f"/usr/bin/{QEMU}")
        xml = domains.domain_xml(self.name, dev, uuid=self.uuid,
                                 domid=self.domid if live else None, boot=boot)
        if kind == "domstatus":
            pid = self.pid if self.pid is not None else 0
            xml = domains.domstatus(xml, pid, self.qmp_sock or self._harness_qmp)
        return xml


if __name__ == "__main__":
    print("\n".join(assets()))
