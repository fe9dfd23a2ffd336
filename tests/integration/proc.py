# SPDX-License-Identifier: MIT
"""One base class for every long-running process the tests, the benchmarks and the demo
start: ttyhubd (hub.Daemon), ttyhub-sshd (sshhub.SshFront), and the benchmarks' peers
(OpenSSH's sshd, conserver).

The model: a Service is one child process with one log file (its stdout and stderr, opened
for appending, so a restarted service keeps its history).  A subclass says how to start it
(``command()``) and when it is ready (``ready()``, polled until it is true or the process
exits); the base class owns the process, the log and the figures read from /proc.

Every Service started is remembered in ``SERVICES`` (``stop_all()`` ends them, for the
benchmarks' clean-up) and, when ``check_exit`` is true, registers with the runner a check
that its last run exited cleanly: status 0 on SIGTERM and no sanitizer report in its log.
runner.Runner.finish() stops the services and runs those checks; a test need not.

Stdlib only.
"""

import os
import re
import subprocess
import time
from typing import IO, Optional

import runner

SERVICES: list["Service"] = []  # every Service started, in order


def stop_all() -> None:
    """Stop every service started here (newest first); best effort."""
    for s in reversed(SERVICES):
        try:
            s.stop()
        except Exception:  # noqa: BLE001 - best effort clean-up
            pass


def proc_kib(pid: int, key: str, file: str = "status") -> int:
    """A "Key:  N kB" figure from /proc/PID/FILE, in KiB (0 if absent)."""
    with open(f"/proc/{pid}/{file}") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Service:
    """A child process with a log file.

    label: the program's name in messages and in the exit check ("ttyhubd").
    workdir: its directory (the exit check is named after its last component).
    log_path: where its stdout and stderr go.
    check_exit: register the "exited cleanly" check with the runner on start.
    cwd: the working directory of the process (None: ours).
    """

    label = "service"
    start_timeout = 10.0
    stop_timeout = 10.0

    def __init__(self, workdir: str, log_path: str, check_exit: bool = True,
                 cwd: Optional[str] = None) -> None:
        self.workdir = workdir
        self.log_path = log_path
        self.check_exit = check_exit
        self.cwd = cwd
        self.proc: Optional[subprocess.Popen] = None
        self._log: Optional[IO[bytes]] = None
        self.final_log = ""

    # -- to override --------------------------------------------------------------------

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        """True once the process serves (polled by start())."""
        return True

    def prepare(self) -> None:
        """Called by start() before the process is started (e.g. to pick a port)."""

    # -- life cycle ---------------------------------------------------------------------

    def start(self, timeout: Optional[float] = None) -> "Service":
        """Start the process and wait until ready(); raise AssertionError (with the log's
        tail) when it exits first or is not ready within TIMEOUT seconds."""
        self.prepare()
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log, cwd=self.cwd)
        if self not in SERVICES:
            SERVICES.append(self)
        if self.check_exit:
            runner.at_finish(self, f"{self.label} ({os.path.basename(self.workdir)}) "
                             "exited cleanly", self.exited_cleanly)
        deadline = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.label} exited with {self.proc.returncode}:\n"
                                     f"{self.log()[-3000:]}")
            if self.ready():
                return self
            if time.monotonic() >= deadline:
                raise AssertionError(f"{self.label} is not ready in time:\n"
                                     f"{self.log()[-3000:]}")
            time.sleep(0.02)

    def stop(self) -> Optional[int]:
        """SIGTERM (SIGKILL after stop_timeout s); returns the exit status (-N: killed by
        signal N), None if never started.  Keeps the whole log in final_log."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log and not self._log.closed:
            self._log.close()
            self.final_log = self.log()
        return self.proc.returncode if self.proc else None

    def exited_cleanly(self) -> None:
        """Stop, then raise AssertionError unless the exit status is 0 and the log holds no
        sanitizer report (the automatic check registered with the runner)."""
        self.stop()
        log = self.final_log
        rc = self.proc.returncode if self.proc else None
        if rc != 0 or "Sanitizer" in log or "runtime error:" in log:
            raise AssertionError(f"exit status {rc}; log tail:\n{log[-4000:]}")

    def __enter__(self) -> "Service":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection ---------------------------------------------------------------------

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError as e:
            return f"(no log: {e})"

    def wait_log(self, pattern: str, timeout: float = 10) -> "re.Match[str]":
        """Wait until the log matches the regular expression (multi-line); return the match."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.log(), re.M)
            if m:
                return m
            if time.monotonic() >= deadline:
                raise AssertionError(f"{pattern!r} not in the {self.label} log within "
                                     f"{timeout:g} s; log tail:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.label} was never started"
        return self.proc.pid

    def rss_kib(self) -> int:
        return proc_kib(self.proc.pid, "VmRSS")

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))
