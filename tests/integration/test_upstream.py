#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The gateway's SSH client sessions to its hosts (ssh-front/upstream.c), driven by
tests/upstream-driver against a real OpenSSH sshd on loopback whose `ttyhub-broker`
subsystem is /bin/cat (every stream echoes).  No ttyhubd: this proves the transport.

* a host whose pinned key matches comes up; bytes written to a stream come back;
* a host pinned to another key is DOWN with "host key does not match the pinned key
  (offered SHA256:..., pinned SHA256:...)" naming both fingerprints, a stream to it is
  refused (or, while a retry runs, ends at once), and the retries log it once;
* a host with no key of the pinned type says so, in the same words; a host that refuses
  the subsystem (its access line lacks `gateway`) is down, saying so; a closed port is
  "connection refused"; a gateway key the host does not know is
  "key refused by the host";
* many streams at once each get their own bytes back; closing them closes their channels
  (the host's /bin/cat processes end) and a half-close reaches the host as EOF;
* with the sshd and every session process SIGSTOPped (and bulk data in flight), keepalive
  finds the host dead ("no answer for N s"), every stream reads EOF, the gateway keeps
  answering; a stream opened while the retry hangs in CONNECTING waits, with the bytes
  written to it, and echoes once the host is back after SIGCONT; new streams echo again.

No time bound is tight: every wait is wait_until with a generous timeout.
"""

import collections
import os
import pwd
import re
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import net  # noqa: E402
import proc  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402
from runner import check, require, wait_until  # noqa: E402

DRIVER = os.path.join(hub.BUILD, "tests", "upstream-driver")
OPENSSH_SSHD = "/usr/sbin/sshd"
KEEPALIVE_S = 2
KEEPALIVE_COUNT = 3
# Long: a stream that waits for a connecting host must outlast the stop below.
CONNECT_TIMEOUT_S = 30
# Generous: a loaded machine or ASan may be slow, and nothing here measures time.
WAIT = 60
MANY = 40
# Far more than every buffer on the way (socketpairs, ours, libssh's, the SSH window).
BULK = 8 * 1024 * 1024


class Ctx:
    pass


ctx = Ctx()


def fingerprint(pub_path):
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", pub_path], check=True,
                         capture_output=True, text=True).stdout
    return out.split()[1]


def pids_below(pid):
    """pid and every descendant (from /proc)."""
    kids = collections.defaultdict(list)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids[ppid].append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cats_below(pid):
    """How many /bin/cat (the subsystem: one per open stream) run below pid."""
    n = 0
    for p in pids_below(pid):
        try:
            with open("/proc/%d/comm" % p) as f:
                n += f.read().strip() == "cat"
        except OSError:
            pass
    return n


class OpenSshd(proc.Service):
    """A private OpenSSH sshd on 127.0.0.1 whose `ttyhub-broker` subsystem is /bin/cat."""

    label = "sshd"

    def __init__(self, wd, hostkey, authorized, subsystem=True):
        os.makedirs(wd, exist_ok=True)
        super().__init__(wd, os.path.join(wd, "sshd.log"), check_exit=False)
        if os.getuid() == 0:
            os.makedirs("/run/sshd", exist_ok=True)  # privilege separation's chroot
        with open(os.path.join(wd, "authorized_keys"), "w") as f:
            f.write(authorized + "\n")
        self.port = net.free_port()
        self.config = os.path.join(wd, "sshd_config")
        with open(self.config, "w") as f:
            f.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s\n"
                    "AuthorizedKeysFile %s/authorized_keys\nPasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                    "PidFile none\nMaxStartups 100:30:200\nMaxSessions 200\nLogLevel VERBOSE\n"
                    "%s\n" % (self.port, hostkey, wd,
                               "Subsystem ttyhub-broker /bin/cat" if subsystem else ""))
        self.start()

    def command(self):
        return [OPENSSH_SSHD, "-D", "-e", "-f", self.config]

    def ready(self):
        return net.port_open(self.port)

    def signal_all(self, sig):
        """sig to the listener and every session process (each sshd child is its own
        session: a process group signal would miss them)."""
        for p in pids_below(self.pid):
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass


class Driver:
    """tests/upstream-driver: commands on its stdin, its events collected from its stdout."""

    def __init__(self, wd, name, hosts, key, *args):
        self.name = name
        self.log_path = os.path.join(wd, name + ".log")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([DRIVER, hosts, key, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log)
        self.lock = threading.Lock()
        self.lines = []
        self.data = collections.defaultdict(bytearray)
        self.eof = set()
        self.states = {}
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        runner.at_finish(self, "upstream-driver (%s) exited cleanly" % name, self.exited_cleanly)
        wait_until(lambda: "ready" in self.snapshot(), WAIT, "%s ready" % name)

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            with self.lock:
                self.lines.append(line)
                parts = line.split(" ", 3)
                if parts[0] == "data" and len(parts) >= 3:
                    self.data[parts[1]] += bytes.fromhex(parts[2])
                elif parts[0] == "eof":
                    self.eof.add(parts[1])
                elif parts[0] == "state" and len(parts) >= 3:
                    self.states[parts[1]] = (parts[2], parts[3] if len(parts) > 3 else "")

    def snapshot(self):
        with self.lock:
            return list(self.lines)

    def cmd(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def state(self, host):
        with self.lock:
            return self.states.get(host, ("?", ""))

    def got(self, sid):
        with self.lock:
            return bytes(self.data[sid])

    def has_eof(self, sid):
        with self.lock:
            return sid in self.eof

    def wait_line(self, pred, what):
        """The first output line that pred() accepts (waiting for it)."""
        found = []

        def look():
            found[:] = [ln for ln in self.snapshot() if pred(ln)][:1]
            return found
        wait_until(look, WAIT, "%s: %s" % (self.name, what))
        return found[0]

    def wait_state(self, host, state, why_re=None):
        def ok():
            s, why = self.state(host)
            return s == state and (why_re is None or re.search(why_re, why))
        wait_until(ok, WAIT, "%s: host %s %s %s (now %r)"
                   % (self.name, host, state, why_re or "", self.state(host)))
        return self.state(host)[1]

    def open(self, host, sid):
        self.cmd("open %s %s" % (host, sid))
        return self.wait_line(lambda ln: ln.split(" ")[:2] in (["opened", sid], ["refused", sid]),
                              "an answer to open %s" % sid)

    def echo(self, sid, text):
        before = len(self.got(sid))
        self.cmd("send %s %s" % (sid, text))
        want = (text + "\n").encode()
        wait_until(lambda: self.got(sid)[before:].startswith(want), WAIT,
                   "%s: %r echoed on %s (got %r)" % (self.name, text, sid, self.got(sid)[-80:]))

    def ask(self, what, host):
        """The driver's number for `what HOST` now (the answer after this question)."""
        n = len(self.snapshot())
        self.cmd("%s %s" % (what, host))
        found = []

        def answer():
            found[:] = [ln for ln in self.snapshot()[n:] if ln.startswith("%s %s " % (what, host))]
            return found
        wait_until(answer, WAIT, "%s: %s %s" % (self.name, what, host))
        return int(found[0].split()[2])

    def streams(self, host):
        return self.ask("streams", host)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def exited_cleanly(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        log = self.log()
        rc = self.proc.returncode
        if rc != 0 or "Sanitizer" in log or "runtime error:" in log:
            raise AssertionError("exit status %s; log tail:\n%s" % (rc, log[-4000:]))


@check("a host whose pinned key matches comes up and a stream echoes")
def pinned_ok():
    g = ctx.gw
    g.wait_state("good", "up")
    require(g.open("good", "s1") == "opened s1", "open refused")
    g.echo("s1", "hello through the gateway")
    g.echo("s1", "x" * 3000)
    require(g.streams("good") == 1, "one stream")


@check("a changed host key is refused with both fingerprints, and logged once")
def changed_key():
    g = ctx.gw
    want = ("host key does not match the pinned key (offered %s, pinned %s)"
            % (ctx.host_fp, ctx.other_fp))
    why = g.wait_state("changed", "down", re.escape(want))
    require(why == want, why)
    # A stream to it: refused with the why, or (a retry is under way) EOF at once.
    answer = g.open("changed", "c1")
    if answer.startswith("refused"):
        require(want in answer and answer.split()[2] == "113", answer)  # EHOSTUNREACH
    else:
        wait_until(lambda: g.has_eof("c1"), WAIT, "EOF on a stream to a refused host")
    # The retries (1 s, 2 s, ...) fail the same way: the log says it once.
    wait_until(lambda: g.ask("attempts", "changed") >= 3 and g.state("changed")[0] == "down",
               WAIT, "three attempts on the changed host", interval=0.2)
    logged = [ln for ln in g.log().splitlines()
              if "host changed " in ln and "host key does not match" in ln]
    require(len(logged) == 1, "logged %d times: %s" % (len(logged), logged))


@check("a host without a key of the pinned type is refused with the same why")
def other_type():
    ctx.gw.wait_state("othertype", "down", re.escape(
        "host key does not match the pinned key (the host has no ecdsa-sha2-nistp256 key, "
        "pinned %s)" % ctx.ecdsa_fp))


@check("a host that refuses the subsystem is down, saying so")
def no_subsystem():
    ctx.gw.wait_state("nosub", "down", re.escape(
        "the host refused the ttyhub-broker subsystem (is the gateway option on this key's "
        "access line?)"))


@check("a closed port is refused")
def closed_port():
    ctx.gw.wait_state("closed", "down", "^connection refused$")


@check("a gateway key the host does not know is refused")
def key_refused():
    ctx.stranger.wait_state("good", "down", "^key refused by the host$")
    answer = ctx.stranger.open("good", "k1")
    if not answer.startswith("refused"):
        wait_until(lambda: ctx.stranger.has_eof("k1"), WAIT, "EOF on a refused host")


@check("many streams at once each echo their own bytes; closing them closes the channels")
def many_streams():
    g = ctx.gw
    g.wait_state("good", "up")
    base = g.streams("good")
    for i in range(MANY):
        require(g.open("good", "m%d" % i) == "opened m%d" % i, "open m%d" % i)
    for i in range(MANY):
        g.cmd("send m%d line of stream %d" % (i, i))
    for i in range(MANY):
        want = ("line of stream %d\n" % i).encode()
        wait_until(lambda i=i, want=want: g.got("m%d" % i) == want, WAIT,
                   "m%d's own echo (got %r)" % (i, g.got("m%d" % i)))
    require(g.streams("good") == base + MANY, "streams counted")
    wait_until(lambda: cats_below(ctx.sshd.pid) >= base + MANY + 1, WAIT,
               "a /bin/cat per stream on the host")
    for i in range(MANY):
        g.cmd("close m%d" % i)
    wait_until(lambda: g.streams("good") == base, WAIT, "the streams gone")
    # Their channels closed: only the open streams' and the control stream's cats remain.
    wait_until(lambda: cats_below(ctx.sshd.pid) == base + 1, WAIT,
               "the closed streams' cats ending (now %d)" % cats_below(ctx.sshd.pid))


@check("bulk data both ways: every byte echoed in order through bounded buffers")
def bulk():
    g = ctx.gw
    size = BULK
    for sid in ("b1", "b2"):
        require(g.open("good", sid) == "opened " + sid, "open " + sid)
        g.cmd("quiet " + sid)
        g.cmd("bulk %s %d" % (sid, size))

    def counted(sid):
        """The driver's "got SID N OK|BAD" line after asking now."""
        n = len(g.snapshot())
        g.cmd("count " + sid)
        return g.wait_line(lambda ln: ln.startswith("got %s " % sid) and ln in g.snapshot()[n:],
                           "the count of " + sid).split()
    for sid in ("b1", "b2"):
        last = []
        wait_until(lambda sid=sid: last.append(counted(sid)) or int(last[-1][2]) >= size,
                   300, "%d bytes back on %s (%s)" % (size, sid, last[-1:]), interval=0.5)
        require(last[-1] == ["got", sid, str(size), "OK"], "%s: %s" % (sid, last[-1]))
        require(not g.has_eof(sid), sid + " ended")
        g.cmd("close " + sid)


@check("a half-close reaches the host as EOF and the stream ends")
def half_close():
    g = ctx.gw
    require(g.open("good", "h1") == "opened h1", "open")
    g.echo("h1", "last words")
    g.cmd("shut h1")
    wait_until(lambda: g.has_eof("h1"), WAIT, "EOF after the host's cat saw EOF")
    g.cmd("close h1")


@check("a stopped host is found dead by keepalive, its streams end, and it comes back")
def keepalive_and_reconnect():
    g = ctx.gw
    g.wait_state("good", "up")
    bulk = ["b%d" % i for i in range(8)]
    for sid in ["k2"] + bulk:
        require(g.open("good", sid) == "opened " + sid, "open " + sid)
        g.echo(sid, "before the stop")
    # Far more in flight than the socket buffers hold (each stream up to its SSH window)
    # when the host stops: the gateway must keep serving; a blocking write to the host
    # (libssh 0.10 makes its socket blocking once connected) would stop it.
    for sid in bulk:
        g.cmd("quiet " + sid)
        g.cmd("bulk %s %d" % (sid, 4 * BULK))
    ctx.sshd.signal_all(signal.SIGSTOP)
    try:
        g.cmd("send k2 into the void")
        require(g.ask("attempts", "good") >= 1, "the gateway answers while the host is stopped")
        g.wait_state("good", "down", "^no answer for %d s$" % (KEEPALIVE_S * KEEPALIVE_COUNT))
        wait_until(lambda: all(g.has_eof(sid) for sid in ["k2"] + bulk), WAIT,
                   "EOF on every stream")
        require(g.streams("good") == 0, "no stream left")
        answer = g.open("good", "k4")
        require(answer.startswith("refused k4 113 no answer for") or answer == "opened k4",
                answer)
        # A retry hangs in CONNECTING (the kernel accepts, the stopped sshd says nothing):
        # a stream opened now waits for the session, bytes written to it too.
        waiting = None
        for n in range(5):
            g.wait_state("good", "connecting")
            if g.open("good", "w%d" % n) == "opened w%d" % n:
                waiting = "w%d" % n
                break
        require(waiting, "no stream could wait for a connecting host")
        g.cmd("send %s written while the host was away" % waiting)
    finally:
        ctx.sshd.signal_all(signal.SIGCONT)
    g.wait_state("good", "up")
    wait_until(lambda: g.got(waiting) == b"written while the host was away\n", WAIT,
               "the waiting stream's bytes echoed once the host is up (got %r)"
               % g.got(waiting))
    require(g.open("good", "k5") == "opened k5", "open after the host came back")
    g.echo("k5", "after the host came back")


def main():
    for path in (DRIVER, OPENSSH_SSHD):
        if not os.access(path, os.X_OK):
            print("FAIL %s is missing (build it first)" % path, flush=True)
            sys.exit(1)
    res = runner.Runner()
    wd = ctx.wd = hub.workdir("upstream")
    hostkey, _ = sshhub.make_key(wd, "hostkey")
    other, _ = sshhub.make_key(wd, "otherkey")
    gwkey, gwpub = sshhub.make_key(wd, "gateway")
    stranger, _ = sshhub.make_key(wd, "stranger")
    ctx.host_fp = fingerprint(hostkey + ".pub")
    ctx.other_fp = fingerprint(other + ".pub")
    ecdsa, _ = sshhub.make_key(wd, "ecdsakey", type="ecdsa")
    ctx.ecdsa_fp = fingerprint(ecdsa + ".pub")
    ctx.sshd = OpenSshd(os.path.join(wd, "sshd"), hostkey, gwpub)
    nosub = OpenSshd(os.path.join(wd, "sshd-nosub"), hostkey, gwpub, subsystem=False)

    def pinned(path):
        with open(path + ".pub") as f:
            return " ".join(f.read().split()[:2])
    hosts = os.path.join(wd, "hosts")
    with open(hosts, "w") as f:
        f.write("# NAME ADDRESS:PORT KEYTYPE BASE64\n")
        f.write("good 127.0.0.1:%d %s\n" % (ctx.sshd.port, pinned(hostkey)))
        f.write("changed 127.0.0.1:%d %s\n" % (ctx.sshd.port, pinned(other)))
        f.write("othertype 127.0.0.1:%d %s\n" % (ctx.sshd.port, pinned(ecdsa)))
        f.write("nosub 127.0.0.1:%d %s\n" % (nosub.port, pinned(hostkey)))
        f.write("closed 127.0.0.1:%d %s\n" % (net.free_port(), pinned(hostkey)))
    user = pwd.getpwuid(os.getuid()).pw_name
    args = ["--keepalive", str(KEEPALIVE_S), "--count", str(KEEPALIVE_COUNT),
            "--timeout", str(CONNECT_TIMEOUT_S), "--user", user]
    try:
        ctx.gw = Driver(wd, "gateway", hosts, gwkey, *args)
        ctx.stranger = Driver(wd, "stranger", hosts, stranger, *args)
        res.on_failure = lambda: print(
            "--- driver log tail ---\n%s\n--- driver output tail ---\n%s\n"
            "--- sshd log tail ---\n%s"
            % (ctx.gw.log()[-2000:], "\n".join(ctx.gw.snapshot()[-30:])[-3000:],
               ctx.sshd.log()[-2000:]), flush=True)
        res.run_checks()
    finally:
        ctx.sshd.signal_all(signal.SIGCONT)
        ctx.sshd.stop()
        nosub.stop()
    res.finish(wd)


if __name__ == "__main__":
    main()
