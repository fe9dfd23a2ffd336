# SPDX-License-Identifier: MIT
"""The one test runner of the integration tests (and of scripts/demo.py's checks).

A test is a list of checks: a sentence saying what is proved, and a function that raises
(AssertionError, usually through ``assert`` or ``require``) when it is not.  Checks are
declared in order with the ``@check("sentence")`` decorator (or ``@check`` alone: the
function's name is the sentence), passed as a ``[(sentence, fn), ...]`` table, or run one by
one with ``Runner.run(sentence, fn, *args)`` between setup steps.  Every check runs even when
an earlier one failed; a failure prints its traceback.

Automatic checks: every proc.Service started registers, through ``at_finish()``, a check
that it exited cleanly (status 0 on SIGTERM, no sanitizer report).  ``Runner.finish()``
stops those services (newest first: a front before the daemon it talks to) and runs these
checks after the test's own, so no test has to remember to.

Failure rules, so that a run cannot pass by proving nothing:
- ``$TTYHUB_CHECKS`` (alias ``$TTYHUB_SSH_CHECKS``), a comma-separated list of check
  function names or sentences, runs only those checks (while debugging).  A name that
  matches no check of the run fails the run: a typo must not filter every check away.
- A run in which no real check ran fails; the automatic exit checks do not count.
- Any failing check fails the run.  finish() prints "N passed, M failed" and exits 1 or 0.
"""

import os
import shutil
import sys
import time
import traceback
from typing import Callable, NoReturn, Optional, Sequence, Union

#: Environment variables that filter the checks; the second is an older name kept working.
FILTER_VARS = ("TTYHUB_CHECKS", "TTYHUB_SSH_CHECKS")

Check = Callable[..., object]

_declared: list[tuple[str, Check]] = []      # @check, in declaration order
_finals: list[tuple[str, Callable[[], None]]] = []  # automatic checks (service exits)
_final_keys: set[int] = set()
_matched: set[str] = set()   # filter names some check matched (nested runners included)


def check(arg: Union[str, Check]) -> Callable:
    """Declare a check, in order: ``@check("sentence")`` or ``@check`` (name = sentence)."""
    if callable(arg):
        _declared.append((arg.__name__, arg))
        return arg

    def declare(fn: Check) -> Check:
        _declared.append((arg, fn))
        return fn
    return declare


def require(cond: object, msg: object = "") -> None:
    """Raise AssertionError(msg) unless cond; an ``assert`` usable inside a lambda."""
    if not cond:
        raise AssertionError(msg)


def wait_until(pred: Callable[[], object], timeout: float, what: str,
               interval: float = 0.02) -> None:
    """Poll pred() until it is true; AssertionError naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %g s waiting for %s" % (timeout, what))
        time.sleep(interval)


def at_finish(owner: object, name: str, fn: Callable[[], None]) -> None:
    """Register an automatic check, run by Runner.finish() (once per owner)."""
    if id(owner) in _final_keys:
        return
    _final_keys.add(id(owner))
    _finals.append((name, fn))


def check_filter() -> Optional[list[str]]:
    """The names in $TTYHUB_CHECKS (or $TTYHUB_SSH_CHECKS), or None: run every check."""
    for var in FILTER_VARS:
        value = os.environ.get(var)
        if value:
            return [n.strip() for n in value.split(",") if n.strip()]
    return None


class Runner:
    """Runs checks, counts them, and decides the exit status.

    on_failure: called (no arguments) after a check failed, e.g. to print daemon log tails.
    after_each: called (no arguments) after every check of the test, passed or failed.
    """

    def __init__(self, on_failure: Optional[Callable[[], None]] = None) -> None:
        self.passed = 0        # every passed check, the automatic ones included
        self.failed = 0
        self.real = 0          # checks of the test itself that ran (passed or failed)
        self.on_failure = on_failure
        self.after_each: Optional[Callable[[], None]] = None
        self.only = check_filter()

    def selected(self, name: str, fn: Check) -> bool:
        """Whether the filter (if any) lets this check run; remembers what it matched."""
        if self.only is None:
            return True
        hits = {n for n in self.only if n in (name, getattr(fn, "__name__", ""))}
        _matched.update(hits)
        return bool(hits)

    def _call(self, name: str, fn: Check, args: Sequence[object]) -> bool:
        t0 = time.monotonic()
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            self.failed += 1
            print(f"FAIL {name} ({time.monotonic() - t0:.1f}s): {e}", flush=True)
            traceback.print_exc(file=sys.stdout)
            if self.on_failure is not None:
                try:
                    self.on_failure()
                except Exception:  # noqa: BLE001 - the hook must not hide the failure
                    traceback.print_exc(file=sys.stdout)
            sys.stdout.flush()
            return False
        self.passed += 1
        print(f"ok   {name} ({time.monotonic() - t0:.1f}s)", flush=True)
        return True

    def run(self, name: str, fn: Check, *args: object) -> bool:
        """Run one check (unless filtered out); True when it passed or was skipped."""
        if not self.selected(name, fn):
            print(f"skip {name}", flush=True)
            return True
        self.real += 1
        try:
            return self._call(name, fn, args)
        finally:
            if self.after_each is not None:
                self.after_each()

    def run_checks(self, checks: Optional[Sequence[tuple[str, Check]]] = None) -> None:
        """Run a table of (sentence, fn), by default every @check declared so far."""
        for name, fn in (_declared if checks is None else checks):
            self.run(name, fn)

    def run_finals(self) -> None:
        """Stop every registered service (newest first) and check how each exited."""
        finals = list(reversed(_finals))
        _finals.clear()
        _final_keys.clear()
        for name, fn in finals:
            self._call(name, fn, ())

    def problems(self) -> list[str]:
        """Why this run fails although no check may have failed."""
        out = []
        if self.only is not None:
            unknown = [n for n in self.only if n not in _matched]
            if unknown:
                out.append(f"{' or '.join(FILTER_VARS)} names no check: {', '.join(unknown)}")
        if self.real == 0:
            out.append("no check ran")
        return out

    def status(self) -> int:
        """0 when every check passed, at least one real check ran and the filter is sound."""
        return 1 if self.failed or self.problems() else 0

    def finish(self, workdir: Optional[str] = None) -> NoReturn:
        """Run the automatic checks, print the summary line, exit.  workdir is removed when
        the run passed and kept (and printed) otherwise."""
        self.run_finals()
        for p in self.problems():
            print(f"FAIL {p}", flush=True)
        status = self.status()
        if workdir and status == 0:
            shutil.rmtree(workdir, ignore_errors=True)
        elif workdir:
            print("work directory kept:", workdir)
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        sys.exit(status)
