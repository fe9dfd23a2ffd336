#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The gateway across a real link that is cut (issue 16), root only.

Host h1's ttyhub-sshd runs in a network namespace of its own (`ip netns`), reached from the
gateway over a veth pair (10.231.x.1 on the gateway's side, 10.231.x.2 in the namespace);
its ttyhubd stays in ours (its UNIX socket is a file: namespaces of the network do not hide
it).  h2 is an ordinary host on 127.0.1.2.  The gateway runs with --gateway-keepalive 1 (2 under
the sanitizers), so three silent intervals mean a dead link.

* A user attached to h1/fg through the gateway; `ip link set down` on h1's end of the veth:
  no FIN, no RST, packets just vanish.  The gateway finds out by keepalive alone: list shows
  h1 unreachable with "no answer for N s" while h2 is still listed, and the user is told
  "lost the connection to host h1".
* `ip link set up` again: h1 is up on the gateway again and the user's session resumes with
  no line lost or repeated.

Without root, or where `unshare -n true` or `ip netns add` fails, the test is skipped (exit
status 77, which ctest reports as skipped) with a message saying why.
"""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwhub  # noqa: E402
import hub  # noqa: E402
import pattern  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402

SKIP = 77
LINE = 64
KEEPALIVE = 2 if hub.SANITIZED else 1  # seconds; a loaded ASan build gets more room
ATTACHED = rb"\[ttyhub\] attached to (\S+) (read-write|read-only)"


class Ctx:
    pass


ctx = Ctx()


def skip(why):
    print("SKIP: %s" % why, flush=True)
    sys.exit(SKIP)


def sh(*argv):
    """Run a command; AssertionError with its output unless it succeeds."""
    r = subprocess.run(list(argv), capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    if r.returncode != 0:
        raise AssertionError("%s: exit %s: %s" % (" ".join(argv), r.returncode,
                                                  (r.stdout + r.stderr).decode().strip()))
    return r


def can_netns():
    """None when network namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "not root: network namespaces and veth pairs need root"
    r = subprocess.run(["unshare", "-n", "true"], capture_output=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        return "`unshare -n true` failed: %s" % (r.stderr.decode().strip() or r.returncode)
    probe = "thgwp%d" % os.getpid()
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True)
    if r.returncode != 0:
        return "`ip netns add` failed: %s" % r.stderr.decode().strip()
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


class Link:
    """A network namespace NS and a veth pair: OUTER (ours) 10.231.N.1, INNER (in NS)
    10.231.N.2."""

    def __init__(self):
        pid = os.getpid()
        self.ns = "thgw%d" % pid
        self.outer, self.inner = "thgo%d" % pid, "thgi%d" % pid
        net = 16 + pid % 200
        self.outer_addr, self.inner_addr = "10.231.%d.1" % net, "10.231.%d.2" % net
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.outer, "type", "veth", "peer", "name", self.inner,
           "netns", self.ns)
        sh("ip", "addr", "add", self.outer_addr + "/24", "dev", self.outer)
        sh("ip", "link", "set", self.outer, "up")
        sh("ip", "-n", self.ns, "addr", "add", self.inner_addr + "/24", "dev", self.inner)
        sh("ip", "-n", self.ns, "link", "set", self.inner, "up")
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")

    def wrap(self):
        return ["ip", "netns", "exec", self.ns]

    def set(self, state):
        """Cut ("down") or restore ("up") the link, on the host's side."""
        sh("ip", "-n", self.ns, "link", "set", self.inner, state)

    def remove(self):
        """Delete the namespace (and with it the veth pair); complain if that fails."""
        for argv in (["ip", "netns", "del", self.ns], ["ip", "link", "del", self.outer]):
            r = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL)
            if r.returncode != 0 and b"Cannot find" not in r.stderr:
                print("warning: %s: %s" % (" ".join(argv), r.stderr.decode().strip()),
                      flush=True)


def t_host_across_veth():
    """The harness itself: h1's ttyhub-sshd listens in the namespace only, and answers
    across the veth pair; cutting the link makes it unreachable, restoring it reachable."""
    h1 = ctx.hubs.host("h1")
    r = h1.run("direct", "console", "list", timeout=60)
    assert r.returncode == 0 and b"fg" in r.stdout, r
    assert not gwhub.probe("127.0.0.1", h1.front.port, timeout=1)
    ctx.link.set("down")
    try:
        assert not gwhub.probe(h1.address, h1.front.port, timeout=2)
    finally:
        ctx.link.set("up")
    runner.wait_until(lambda: gwhub.probe(h1.address, h1.front.port), 30, "h1 reachable again")


def t_cut_detected():
    """Cut the link under an attached user: the gateway finds out by keepalive alone and
    lists h1 unreachable ("no answer for N s") while h2 is still listed."""
    gw = ctx.gw
    gw.wait_up(["h1", "h2"])
    c = ctx.client = gwhub.SshClient(gw.ssh_cmd("alice", "h1/fg+ro", tty=False),
                                     name="ssh[alice h1/fg]")
    ctx.start = c.wait_for(ATTACHED).end()
    c.lines_after(ctx.start, 30)
    ctx.mark = len(c.data())
    t0 = time.monotonic()
    ctx.link.set("down")
    last = {}

    def dead():
        # A list may first show h1 unreachable for its 2 s deadline; the keepalive's verdict
        # says "no answer for N s".
        last["states"] = gw.host_states("alice")
        state, why = last["states"]["h1"]
        return state == "unreachable" and re.search(r"no answer for \d+ s", why or "")
    try:
        runner.wait_until(dead, 120, "h1 listed unreachable by keepalive", interval=0.5)
    except AssertionError as e:
        raise AssertionError("%s; last %r" % (e, last.get("states"))) from None
    print("figure: a cut link listed unreachable after %.1f s (keepalive %d s, 3 missed)"
          % (time.monotonic() - t0, KEEPALIVE), flush=True)
    states = last["states"]
    # Keepalive, not TCP, found it: TCP's retransmission gives up after minutes.
    assert states["h2"][0] == "up", states
    names = {x["name"] for x in gw.list("alice")["consoles"]}
    assert "h2/web01" in names and "h1/fg" not in names, sorted(names)


def t_user_told_and_resumed():
    """The attached user is told the host was lost; the link up again, h1 is up and the
    session resumes with every line once."""
    c = getattr(ctx, "client", None)
    assert c is not None, "no session (the previous check failed before it started one)"
    try:
        lost = c.wait_for(rb"\[ttyhub\] lost the connection to host h1; reconnecting\r?\n",
                          start=ctx.mark, timeout=60)
        ctx.link.set("up")
        back = c.wait_for(rb"\[ttyhub\] [^\n]*nothing lost\r?\n", start=lost.end(),
                          timeout=180)
        c.lines_after(back.end(), 30)
        ctx.gw.wait_up(["h1", "h2"])
        assert c.proc.poll() is None, "the session through the gateway ended"
        data = sshhub.console_bytes(c.data()[ctx.start:], LINE)
        r = pattern.check_lines(data, tag="fg", line_length=LINE)
        if r["gaps"] or r["reorders"] or r["corrupt"] or r["lines"] < 60:
            raise AssertionError("the stream across the cut: %r\nlast bytes %r"
                                 % (r, data[-600:]))
    finally:
        c.close()
        ctx.link.set("up")


def main():
    why = can_netns()
    if why:
        skip(why)
    res = runner.Runner()
    wd = hub.workdir("gateway-netns")
    ctx.link = Link()
    hubs = ctx.hubs = gwhub.GwHub(wd, users=("alice", "direct"))
    try:
        hubs.add_host("h1", fakes=("fg",), address=ctx.link.inner_addr, wrap=ctx.link.wrap(),
                      user_lines={"direct": 'consoles="*:ro"'})
        hubs.add_host("h2", fakes=("web01",))
        res.on_failure = lambda: print(hubs.logs(), flush=True)
        hubs.start_hosts()
        res.run("h1 serves in its namespace, across the veth", t_host_across_veth)
        if not gwhub.gateway_supported():
            res.failed += 1
            print("FAIL %s has no --gateway" % gwhub.sshhub.SSHD, flush=True)
        else:
            ctx.gw = hubs.start_gateway({"alice": 'consoles="*:rw"'},
                                        front_args=["--gateway-keepalive", str(KEEPALIVE)])
            try:
                res.run("a cut link is found by keepalive and h1 listed unreachable",
                        t_cut_detected)
                res.run("the user is told, and the session resumes when the link is back",
                        t_user_told_and_resumed)
            finally:
                ctx.link.set("up")
                if getattr(ctx, "client", None) is not None:
                    ctx.client.close()
    except Exception as e:  # noqa: BLE001 - a set-up failure is a failed run, with logs
        res.failed += 1
        print("FAIL setting up: %s\n%s" % (e, hubs.logs()), flush=True)
    finally:
        for h in hubs.hosts:
            h.signal(signal.SIGCONT)
        hubs.stop()
        ctx.link.remove()
    res.finish(wd)


if __name__ == "__main__":
    main()
