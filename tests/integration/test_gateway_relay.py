#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The `ttyhub-broker` SSH subsystem of ttyhub-sshd (issue 16): the relay a gateway's
upstream streams use, driven with the real OpenSSH client as the gateway
(`ssh -s -p PORT -i GATEWAY_KEY HOST ttyhub-broker`, its stdin and stdout one end of a
socketpair) and the broker protocol spoken through it with hub.BrokerClient's frame code.
Fake guests (fake-guest --input-log) held by ttyhubd:

* the gateway key's stream starts with ttyhubd's answer to the hello the relay sent for it
  (its fingerprint); a speak-for hello for a user follows when ttyhubd supports it (see
  below); `list` shows the console; `attach` gets `attached` and O frames with the guest's
  output; keystrokes in D frames reach the guest;
* a key without the `gateway` option is refused ("subsystem request failed") and audited;
* closing the SSH side (the client killed) closes the relay's broker connection: ttyhubd's
  count of connected sockets and the console's attachments go back;
* the gateway's EOF is passed on: ttyhubd closes, and the channel ends with status 0;
* flow control: a relay whose gateway stops reading while a guest writes fast holds
  ttyhub-sshd's memory bounded, and the stream goes on when it reads again; while ttyhubd is
  stopped (SIGSTOP) the relay stops taking the gateway's bytes (OpenSSH's window closes),
  and after SIGCONT every byte reaches the guest, in order;
* audit lines name the gateway key's fingerprint on open and close.

The access line of the gateway key has the `gateway` option (ttyhub-access(5)); a ttyhubd
that predates it skips the line and the gateway key cannot log in at all.  The speak-for
hello (docs/protocol.md "Gateways") is checked when ttyhubd has --no-consoles (the same
change brought both); an older ttyhubd answers it "hello was already sent", and the stream
stays the gateway key's own.
"""

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402
from runner import check, require, wait_until  # noqa: E402

SUBSYSTEM = "ttyhub-broker"
# name -> access options; "gw" is the gateway's key.
KEYS = {
    "gw": 'gateway,consoles="web*:rw"',
    "alice": 'consoles="web*:rw"',
}
GUESTS = ("web01", "web02", "webbulk")
# The bulk guest's rate: fast enough that a reader that stops falls behind at once.
BULK_RATE = 4 * 1024 * 1024
# Keystrokes a gateway sends while ttyhubd is stopped, and how long without progress means
# the relay stopped taking them (a loaded machine only makes the check easier to pass).
KEYS_TOTAL = 24 * 1024 * 1024
STALL_S = 2.0
# Output the guest writes while the relay's reader is stopped.
BULK_WAIT = 32 * 1024 * 1024
# ttyhub-sshd's memory may grow by this much while a relay's reader is stopped (its queues are
# 192 KiB, libssh's is bounded at 256 KiB; the rest is allocator slack).
RSS_SLACK_KIB = 16 * 1024


class Ctx:
    pass


ctx = Ctx()


def key(name):
    return ctx.keys[name][0]


def line(name):
    return KEYS[name] + " " + ctx.keys[name][1]


class Relay(hub.BrokerClient):
    """A gateway's stream: `ssh -s ... ttyhub-broker` with KEY, whose stdin and stdout are
    one end of a socketpair; the broker protocol (hub.BrokerClient) on the other end."""

    def __init__(self, name, timeout=20):
        ours, theirs = socket.socketpair()
        argv = sshhub.ssh_cmd(ctx.front, key(name), "gateway", SUBSYSTEM, tty=False)
        argv.insert(1, "-s")
        self.name = name
        self.errlog = open(os.path.join(ctx.wd, "ssh-%s-%d.err" % (name, len(ctx.opened))),
                           "w+b")
        self.proc = subprocess.Popen(argv, stdin=theirs, stdout=theirs, stderr=self.errlog)
        theirs.close()
        self.sock = ours
        self.sock.settimeout(timeout)
        self.buf = b""
        self.data = b""
        self.frames = []
        self.end = None
        self.messages = []
        ctx.opened.append(self)

    def stderr(self):
        self.errlog.seek(0)
        return self.errlog.read().decode(errors="replace")

    def close(self):
        """Close our end (ssh sees EOF on stdin) and make sure ssh is gone."""
        self.sock.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.errlog.close()


def close_opened():
    while ctx.opened:
        ctx.opened.pop().close()


def input_log(name):
    try:
        with open(os.path.join(ctx.wd, name + ".input"), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def steady_sockets():
    """broker_sockets() once it has not changed for 0.5 s (a CLI connection of an earlier
    check, say, is closed by then), or after 10 s whatever it is."""
    last, since = broker_sockets(), time.monotonic()
    deadline = since + 10
    while time.monotonic() < deadline:
        time.sleep(0.05)
        n = broker_sockets()
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= 0.5:
            break
    return last


def broker_sockets():
    """How many sockets ttyhubd holds (listening, guests, clients)."""
    n = 0
    fd_dir = "/proc/%d/fd" % ctx.d.pid()
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(os.path.join(fd_dir, fd)).startswith("socket:"):
                n += 1
        except FileNotFoundError:
            pass  # closed meanwhile
    return n


def idle(name):
    c = ctx.d.console(name)
    return c is not None and c["writer"] is None and c["watchers"] == 0


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def sshd_log():
    return ctx.front.log()


def speak_for_supported():
    """ttyhubd knows the gateway additions (the speak-for hello came with --no-consoles)."""
    out = subprocess.run([hub.TTYHUBD, "--help"], capture_output=True, timeout=20)
    return b"--no-consoles" in out.stdout + out.stderr


def speak_for(r, user="alice", grant='consoles="web*:rw"'):
    """Send the gateway's second hello, for USER's key; returns ttyhubd's answer."""
    r.send({"type": "hello", "version": 1, "client": "gateway-test",
            "principal": {"key": ctx.keys[user][1].rsplit(" ", 1)[0],
                          "from": "192.0.2.7", "grant": grant,
                          "comment": user + " via test"}})
    return r.next()


def open_stream(name="gw", as_user=True):
    """A relay through which ttyhubd answered the gateway key's hello; returns it.

    as_user: when ttyhubd has the speak-for hello, the stream then speaks for alice, as a
    gateway's streams do (her rights there equal the gateway line's: web*:rw)."""
    r = Relay(name)
    try:
        hello = r.expect_type("hello")
    except (EOFError, OSError) as e:
        raise AssertionError("no hello through the relay (%s); ssh said: %s"
                             % (e, r.stderr())) from e
    require(hello.get("principal", {}).get("fingerprint") == ctx.fp[name],
            "the hello answered is not the %s key's: %r" % (name, hello))
    if as_user and ctx.speak_for:
        m = speak_for(r)
        require(m["type"] == "hello", "ttyhubd refused the speak-for hello: %r" % m)
    return r


def attach(r, console, mode="rw"):
    r.send({"type": "attach", "console": console, "mode": mode, "replay": 0})
    m = r.expect_type("attached")
    require(m.get("console") == console, "attached to %r, not %s" % (m, console))
    return m


# ---------------------------------------------------------------- checks


@check("the relay starts with ttyhubd's answer to the hello for the gateway key")
def t_hello():
    r = open_stream(as_user=False)
    hello = r.messages[0]
    require(hello["type"] == "hello" and hello.get("server") == "ttyhubd",
            "the first message through the relay is not ttyhubd's hello: %r" % hello)
    require("gw@ttyhub-test" in hello.get("you", "") or
            hello["principal"].get("comment") == "gw@ttyhub-test",
            "the hello does not name the gateway key: %r" % hello)


@check("a speak-for hello for a user goes through the relay (when ttyhubd supports it)")
def t_speak_for():
    r = open_stream(as_user=False)
    m = speak_for(r)
    if ctx.speak_for:
        require(m["type"] == "hello", "ttyhubd refused the speak-for hello: %r" % m)
        require("via gateway" in m.get("you", ""), "the answer does not say via gateway: %r"
                % m)
        r.send({"type": "list"})
        lst = r.expect_type("list")
        require(any(c["name"] == "web01" for c in lst["consoles"]),
                "the user sees no web01 through the gateway: %r" % lst)
        # What the gateway grants narrows the rights on the host, through the relay too.
        r = open_stream(as_user=False)
        m = speak_for(r, grant='consoles="web01:ro"')
        require(m["type"] == "hello", "ttyhubd refused the speak-for hello: %r" % m)
        r.send({"type": "list"})
        seen = {c["name"]: c["access"] for c in r.expect_type("list")["consoles"]}
        require(seen == {"web01": "ro"}, "a web01:ro grant through the relay lists %r" % seen)
    else:
        # An older ttyhubd: one hello per connection, the stream stays the gateway key's.
        require(m["type"] == "error" and m.get("code") == "bad-request",
                "a second hello was not refused by a ttyhubd without gateways: %r" % m)
        print("NOTE ttyhubd has no speak-for hello yet: only the refusal was checked",
              flush=True)


@check("list through the relay shows the consoles the gateway line allows")
def t_list():
    r = open_stream()
    r.send({"type": "list"})
    lst = r.expect_type("list")
    names = sorted(c["name"] for c in lst["consoles"])
    require("web01" in names and "web02" in names, "list through the relay: %r" % names)


@check("attach through the relay: attached, then O frames with the guest's output")
def t_attach_output():
    r = open_stream()
    attach(r, "web01")
    r.read_data_until(b"web01-tag", timeout=30)
    require(r.frames and all(e >= s for s, e in r.frames), "frames: %r" % r.frames[:5])
    # Offsets are contiguous: nothing lost or repeated by the relay.
    for (s0, e0), (s1, e1) in zip(r.frames, r.frames[1:]):
        require(s1 == e0, "O frames not contiguous: [%d,%d) then [%d,%d)" % (s0, e0, s1, e1))


@check("keystrokes in D frames through the relay reach the guest")
def t_keys():
    r = open_stream()
    attach(r, "web02")
    marker = b"relay-keys-%d\n" % os.getpid()
    r.send_data(marker)
    wait_until(lambda: marker in input_log("web02"), 20, "the keystrokes in web02's input")


@check("a key without the gateway option is refused the subsystem, and audited")
def t_refused():
    argv = sshhub.ssh_cmd(ctx.front, key("alice"), "gateway", SUBSYSTEM, tty=False)
    argv.insert(1, "-s")
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    err = p.stderr.decode(errors="replace")
    require(p.returncode != 0, "ssh -s %s with alice's key exited 0: %r" % (SUBSYSTEM, err))
    require("subsystem request failed" in err, "ssh did not say the request failed: %r" % err)
    require(p.stdout == b"", "alice's refused stream carried bytes: %r" % p.stdout[:200])
    wait_until(lambda: re.search(r"audit: gateway-stream-refused .*key=%s .*not a gateway key"
                                 % re.escape(ctx.fp["alice"]), sshd_log()),
               20, "the refusal's audit line")


@check("killing the SSH side closes the broker connection (ttyhubd's sockets go back)")
def t_close_closes_broker():
    wait_until(lambda: idle("web01"), 20, "web01 idle before")
    before = steady_sockets()
    r = open_stream()
    attach(r, "web01")
    require(broker_sockets() == before + 1,
            "ttyhubd holds %d sockets with one relay, %d before" % (broker_sockets(), before))
    require(not idle("web01"), "the relay's attach does not show on web01")
    r.proc.send_signal(signal.SIGKILL)
    r.proc.wait(timeout=20)
    # At most: a connection of an earlier check (a CLI's) may close meanwhile too.
    wait_until(lambda: broker_sockets() <= before, 20,
               "ttyhubd's sockets to go back to %d" % before)
    wait_until(lambda: idle("web01"), 20, "web01 idle after")
    wait_until(lambda: re.search(r"audit: gateway-stream-close .*key=%s .*reason=" %
                                 re.escape(ctx.fp["gw"]), sshd_log()),
               20, "the close's audit line")


@check("the gateway's EOF is passed on: ttyhubd closes and the channel ends with status 0")
def t_eof():
    before = steady_sockets()
    r = open_stream()
    r.send({"type": "list"})
    r.expect_type("list")
    r.sock.shutdown(socket.SHUT_WR)  # ssh reads EOF on stdin and sends EOF on the channel
    rest = b""
    while True:
        chunk = r.sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    require(r.proc.wait(timeout=20) == 0, "ssh exited %s after EOF: %s"
            % (r.proc.returncode, r.stderr()))
    # At most: a connection of an earlier check (a CLI's) may close meanwhile too.
    wait_until(lambda: broker_sockets() <= before, 20,
               "ttyhubd's sockets to go back to %d" % before)


@check("a stopped gateway reader holds ttyhub-sshd's memory bounded; the stream goes on")
def t_flow_control():
    r = open_stream()
    attach(r, "webbulk", mode="ro")
    r.read_data_until(b"webbulk-tag", timeout=30)
    sshd_pid = ctx.front.proc.pid
    rss0 = rss_kib(sshd_pid)
    # From here on we stop reading: ssh's stdout fills, ssh stops reading the channel, its
    # window closes.  A direct client counts the guest's output meanwhile: after BULK_WAIT
    # bytes a relay that read ttyhubd without bound would have grown by about that much.
    direct = hub.BrokerClient(ctx.d.socket)
    try:
        direct.send({"type": "attach", "console": "webbulk", "mode": "ro", "replay": 0})
        direct.expect_type("attached")
        first = last = None
        while first is None or last < first + BULK_WAIT:
            t, payload = direct._read_frame()  # the bytes themselves are not kept
            if t == b"O":
                start, end = hub.parse_output(payload)
                first = start if first is None else first
                last = end
    finally:
        direct.close()
    grown = rss_kib(sshd_pid) - rss0
    require(grown < RSS_SLACK_KIB, "ttyhub-sshd grew by %d KiB while the relay's reader was "
            "stopped for %d MiB of output" % (grown, BULK_WAIT >> 20))
    # Reading again: the stream goes on (ttyhubd may skip what its ring lost meanwhile).
    got = len(r.data)
    deadline = time.monotonic() + 60
    while len(r.data) < got + 1024 * 1024:
        require(time.monotonic() < deadline, "the stream did not go on after reading again")
        msg = r.pump()
        require(msg is None or msg.get("type") != "detached",
                "detached while catching up: %r" % msg)


@check("a stalled ttyhubd stops the relay taking the gateway's bytes; they all arrive after")
def t_flow_to_broker():
    r = open_stream()
    attach(r, "web02")
    before = len(input_log("web02"))
    sshd_pid = ctx.front.proc.pid
    rss0 = rss_kib(sshd_pid)
    # Keystrokes in D frames, far more than every queue on the way holds.
    frames = KEYS_TOTAL // 60000
    stream = hub.frame_data(b"k" * 60000) * frames
    marker = b"relay-after-stall-%d\n" % os.getpid()
    sent = 0
    os.kill(ctx.d.pid(), signal.SIGSTOP)
    try:
        # Send until nothing more is taken for STALL_S: the relay holds its queue full.
        r.sock.setblocking(False)
        while sent < len(stream):
            _, writable, _ = select.select([], [r.sock], [], STALL_S)
            if not writable:
                break
            try:
                sent += r.sock.send(stream[sent:sent + 65536])
            except BlockingIOError:
                pass
        grown = rss_kib(sshd_pid) - rss0
    finally:
        os.kill(ctx.d.pid(), signal.SIGCONT)
        r.sock.setblocking(True)
    require(sent < len(stream), "all %d MiB were taken while ttyhubd was stopped"
            % (len(stream) >> 20))
    require(grown < RSS_SLACK_KIB, "ttyhub-sshd grew by %d KiB while ttyhubd was stopped "
            "(%d KiB sent)" % (grown, sent >> 10))
    # Nothing was lost: the rest and a marker follow, and the guest gets every byte in order.
    r.sock.sendall(stream[sent:] + hub.frame_data(marker))
    wait_until(lambda: marker in input_log("web02"), 120, "the marker in web02's input")
    got = input_log("web02")[before:]
    want = b"k" * (frames * 60000) + marker
    require(got == want, "web02 got %d bytes, not the %d sent, in order" % (len(got), len(want)))


def main():
    res = runner.Runner()
    if not os.access(sshhub.SSHD, os.X_OK):
        print("FAIL %s is missing (build it first)" % sshhub.SSHD, flush=True)
        sys.exit(1)
    wd = ctx.wd = hub.workdir("gwrelay")
    ctx.opened = []
    ctx.speak_for = speak_for_supported()
    guests, args = [], []
    for name in GUESTS:
        sock = os.path.join(wd, name + ".sock")
        rate = BULK_RATE if name == "webbulk" else 200
        guests.append(subprocess.Popen(
            [hub.FAKE_GUEST, "--socket", sock, "--rate", str(rate), "--tag", name + "-tag",
             "--input-log", os.path.join(wd, name + ".input")], stdin=subprocess.DEVNULL))
        args += ["--console", "%s=%s" % (name, sock)]
    d = ctx.d = hub.Daemon(wd, "--front-user", "root", *args).start()
    try:
        for name in GUESTS:
            d.wait_for(lambda n=name: (d.console(n) or {}).get("state") == "connected",
                       timeout=30, what=name + " connected")
        ctx.keys = {n: sshhub.make_key(wd, n) for n in KEYS}
        ctx.fp = {n: sshhub.fingerprint(ctx.keys[n][0]) for n in KEYS}
        ctx.front = sshhub.SshFront(os.path.join(wd, "sshd"), d.socket, [line(n) for n in KEYS])
        if 'unknown option "gateway"' in d.log():
            # Say why every check is about to fail, rather than let them say "denied".
            print("FAIL this ttyhubd has no `gateway` access option (ttyhub-access(5)); the "
                  "gateway key cannot log in", flush=True)
        res.on_failure = lambda: print(
            "--- ttyhub-sshd log tail ---\n%s\n--- ttyhubd log tail ---\n%s"
            % (ctx.front.log()[-2500:], d.log()[-2500:]), flush=True)
        res.after_each = close_opened
        res.run_checks()
    finally:
        close_opened()
        d.stop()
        for g in guests:
            g.terminate()
            g.wait()
    res.finish(wd)


if __name__ == "__main__":
    main()
