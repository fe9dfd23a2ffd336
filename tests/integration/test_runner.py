#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Self-test of the test runner (runner.py) and the process base (proc.py): a run fails when
it should.  No QEMU: each check writes a tiny test script, runs it with this Python, and looks
at its exit status and output.

Proved: a failing check fails the run; a run in which no check ran fails, even when the
automatic "exited cleanly" checks passed; a filter ($TTYHUB_CHECKS, or its alias
$TTYHUB_SSH_CHECKS) naming an unknown check fails; a filter runs only what it names; @check
keeps declaration order; require() fails with its message; a Service registers its exit
check by itself, and a service that exits non-zero on SIGTERM fails the run.
"""

import os
import subprocess
import sys
import tempfile
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import runner  # noqa: E402
from runner import check, require  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PRELUDE = f"""
import os, sys
sys.path.insert(0, {HERE!r})
import proc, runner
from runner import check, require
"""

# A service that exits 0 on SIGTERM (the clean case) or 3 (the dirty one).
SERVICE = """
class Sleeper(proc.Service):
    label = "sleeper"

    def __init__(self, wd, status):
        super().__init__(wd, os.path.join(wd, "sleeper.log"))
        self.status = status

    def command(self):
        return ["sh", "-c",
                f"trap 'exit {self.status}' TERM; echo ready; while :; do sleep 0.05; done"]

    def ready(self):
        return "ready" in self.log()   # the trap is set
"""


def run_script(body: str, env: dict[str, str] | None = None,
               service: bool = False) -> tuple[int, str]:
    """Run PRELUDE (+ SERVICE) + BODY as a test; (exit status, stdout and stderr)."""
    with tempfile.TemporaryDirectory(prefix="th-runner-", dir="/tmp") as wd:
        path = os.path.join(wd, "t.py")
        with open(path, "w") as f:
            f.write(PRELUDE + (SERVICE if service else "") + textwrap.dedent(body))
        e = {k: v for k, v in os.environ.items() if k not in runner.FILTER_VARS}
        e.update(env or {})
        e["WD"] = wd
        r = subprocess.run([sys.executable, path], capture_output=True, text=True, env=e,
                           timeout=60, stdin=subprocess.DEVNULL)
        return r.returncode, r.stdout + r.stderr


TWO = """
@check("the first check")
def t_one():
    print("ran one")

@check("the second check")
def t_two():
    print("ran two")

res = runner.Runner()
res.run_checks()
res.finish()
"""


@check("all checks pass: exit 0, with the summary line")
def passing():
    rc, out = run_script(TWO)
    require(rc == 0, out)
    require("2 passed, 0 failed" in out, out)


@check("@check keeps declaration order")
def order():
    rc, out = run_script(TWO)
    require(out.index("ran one") < out.index("ran two"), out)


@check("a failing check fails the run; the others still run")
def failing():
    rc, out = run_script("""
        res = runner.Runner()
        res.run("fails", lambda: require(False, "the reason"))
        res.run("passes", lambda: None)
        res.finish()
        """)
    require(rc == 1, out)
    require("FAIL fails" in out and "the reason" in out, out)
    require("ok   passes" in out and "1 passed, 1 failed" in out, out)


@check("a run in which no check ran fails")
def nothing_ran():
    rc, out = run_script("runner.Runner().finish()\n")
    require(rc == 1, out)
    require("FAIL no check ran" in out, out)


@check("automatic exit checks do not count as checks that ran")
def only_automatic():
    rc, out = run_script("""
        Sleeper(os.environ["WD"], 0).start()
        runner.Runner().finish()
        """, service=True)
    require(rc == 1, out)
    require("ok   sleeper (" in out and "exited cleanly" in out, out)
    require("FAIL no check ran" in out, out)


@check("a service registers its exit check: a clean exit passes")
def service_clean():
    rc, out = run_script("""
        s = Sleeper(os.environ["WD"], 0).start()
        res = runner.Runner()
        res.run("alive", lambda: require(s.alive()))
        res.finish()
        """, service=True)
    require(rc == 0, out)
    require("2 passed, 0 failed" in out, out)


@check("a service that exits non-zero on SIGTERM fails the run")
def service_dirty():
    rc, out = run_script("""
        s = Sleeper(os.environ["WD"], 3).start()
        res = runner.Runner()
        res.run("alive", lambda: require(s.alive()))
        res.finish()
        """, service=True)
    require(rc == 1, out)
    require("FAIL sleeper (" in out and "exit status 3" in out, out)


@check("a filter naming an unknown check fails the run")
def unknown_filter():
    for var in runner.FILTER_VARS:
        rc, out = run_script(TWO, {var: "t_one,t_typo"})
        require(rc == 1, f"{var}: {out}")
        require("names no check: t_typo" in out, f"{var}: {out}")
        require("ran one" in out and "ran two" not in out, f"{var}: {out}")


@check("a filter runs only the checks it names (by function name or sentence)")
def filter_selects():
    for value in ("t_two", "the second check"):
        rc, out = run_script(TWO, {"TTYHUB_CHECKS": value})
        require(rc == 0, f"{value}: {out}")
        require("ran two" in out and "ran one" not in out, f"{value}: {out}")
        require("skip the first check" in out, f"{value}: {out}")


@check("a filter naming only unknown checks fails (nothing ran)")
def filter_everything_away():
    rc, out = run_script(TWO, {"TTYHUB_SSH_CHECKS": "t_nope"})
    require(rc == 1, out)
    require("FAIL no check ran" in out, out)


if __name__ == "__main__":
    # This test's own checks are not filtered: the filter variables are for the child runs.
    for var in runner.FILTER_VARS:
        os.environ.pop(var, None)
    res = runner.Runner()
    res.run_checks()
    res.finish()
