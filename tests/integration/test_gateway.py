#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The gateway (issue 16) end to end, on one machine: three hosts, each its own ttyhubd and
ttyhub-sshd on its own loopback address (gwhub.py), and one gateway (ttyhubd --no-consoles +
ttyhub-sshd --gateway) in front of them, reached with the real OpenSSH client.

  h1  127.0.1.1  fake guests web01 and db01; its gateway line allows only web*
  h2  127.0.1.2  a real QEMU guest "vm" (vm:serial0) and a fake guest web01
  h3  127.0.1.3  a fake guest fg printing numbered lines (the resume and fault checks)

Users (keys): alice may do everything on the gateway (consoles="*:rw",break); bob is
read-only there; carol is read-write there but has her own read-only line on h2 for vm*
(the host's word counts too); direct has lines on the hosts only, to watch and take over
there without the gateway; mallory is known nowhere.

What is proved (the issue's list, the network-namespace check aside: test_gateway_netns):
* list on the gateway merges every host's consoles as HOST/NAME with a host field, and every
  host is up; a console a host's gateway line does not allow is not listed;
* attach to the guest on the second host by its bare name, `echo $((6*7))` prints 42, seen
  by a watcher through the gateway and a watcher directly on the host;
* an ambiguous bare name is refused with the qualified choices;
* h1's gateway line (web*) refuses db01 through the gateway although the gateway's own access
  file allows *; a read-only user's keystrokes never reach a guest; the host's own line of a
  user caps what the gateway grants;
* takeover notices pass through, and the host's audit log names the user and the gateway;
* a host stopped with SIGSTOP: list returns within its deadline, that host unreachable and
  the others listed;
* a host killed (SIGKILL of its ttyhub-sshd) and its ttyhubd restarted mid-session: the user
  is told, and the session resumes with no line lost or repeated;
* a changed host key: the host is unreachable with the offered and pinned fingerprints, and
  attach says so; also when the offered fingerprint starts with '/' (one key in 64), which
  must not be taken for a path and hidden.
"""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guest as G  # noqa: E402
import gwhub  # noqa: E402
import hub  # noqa: E402
import pattern  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402
from runner import check  # noqa: E402

LINE = 64
FG_RATE = 64 * 50  # h3's fg: 50 numbered lines a second
RO_HINT = rb"\[ttyhub\] read-only"
ATTACHED = rb"\[ttyhub\] attached to (\S+) (read-write|read-only)"
# A bound on how long `list` may take with a frozen host: its 2 s deadline, plus the SSH
# login and a loaded machine's slack (more under the sanitizers).
LIST_SLACK_S = 20 if hub.SANITIZED else 8

GW_LINES = {
    "alice": 'consoles="*:rw",break',
    "bob": 'consoles="*:ro"',
    "carol": 'consoles="*:rw"',
}


class Ctx:
    pass


ctx = Ctx()


def answer(text):
    """The output line of `echo ...` (not its echo): the text alone on a line."""
    return rb"(?m)^" + re.escape(text.encode()) + rb"\r*$"


def gw_pty(user, login):
    """OpenSSH with USER's key to the gateway as LOGIN, on a pty."""
    p = G.Pty(ctx.gw.ssh_cmd(user, login))
    p.name = "ssh[%s as %s via gateway]" % (user, login)
    return p


def gw_client(user, login):
    return gwhub.SshClient(ctx.gw.ssh_cmd(user, login, tty=False),
                           name="ssh[%s as %s via gateway]" % (user, login))


def attached(p, role=None, timeout=60):
    m = p.expect(ATTACHED, timeout=timeout)
    if role is not None and m.group(2).decode() != role:
        raise AssertionError("%s: attached %s, expected %s:\n%r"
                             % (p.name, m.group(2).decode(), role, p.transcript[-600:]))
    return m


def idle(host, console, timeout=30):
    """Wait until nobody is attached to CONSOLE on HOST (the previous check's sessions are
    gone), so one failure does not cascade."""
    d = ctx.hubs.host(host).daemon

    def free():
        c = d.console(console)
        return c is not None and c["writer"] is None and c["watchers"] == 0
    d.wait_for(free, timeout=timeout, what="nobody attached to %s on %s" % (console, host))


def names_of(listing):
    return {c["name"]: c for c in listing.get("consoles", [])}


# ---------------------------------------------------------------- checks


def t_hosts_direct():
    """The harness itself: every host serves its consoles on its own address, and the QEMU
    guest on h2 answers there (no gateway involved)."""
    import json  # noqa: PLC0415
    for h in ctx.hubs.hosts:
        r = h.run("direct", "console", "list", "--json")
        assert r.returncode == 0, (h.name, r)
        names = {c["name"] for c in json.loads(r.stdout)["consoles"]}
        assert names == set(h.consoles()), (h.name, names)
    idle("h2", "vm:serial0")
    p = G.Pty(ctx.hubs.host("h2").ssh_cmd("direct", "vm"))
    p.name = "ssh[direct as vm on h2]"
    try:
        attached(p, "read-write")
        G.sync_shell(p, timeout=120)
        p.send("echo $((7*6))\r")
        p.expect(answer("42"), timeout=30)
    finally:
        p.close()


@check("list on the gateway merges every host's consoles as HOST/NAME")
def t_merged_list():
    listing = ctx.gw.list("alice")
    hosts = {h["name"]: h for h in listing.get("hosts", [])}
    assert set(hosts) == {"h1", "h2", "h3"}, listing.get("hosts")
    for name, h in hosts.items():
        assert h.get("state") == "up", (name, h)
    names = names_of(listing)
    for want in ("h1/web01", "h2/vm:serial0", "h2/web01", "h3/fg"):
        assert want in names, (want, sorted(names))
        assert names[want].get("host") == want.split("/")[0], names[want]
    # h1's gateway line allows web* only: db01 is not there for anyone through the gateway.
    assert "h1/db01" not in names, sorted(names)
    assert not [n for n in names if "/" not in n], sorted(names)
    r = ctx.gw.run("alice", "list")
    text = r.stdout.decode(errors="replace")
    assert r.returncode == 0, (r.returncode, text, r.stderr)
    for want in ("h1/web01", "h2/vm", "h3/fg"):
        assert want in text, (want, text)
    assert "unreachable" not in text, text


@check("attach to the guest on the second host through the gateway: 42, seen by both "
       "watchers")
def t_attach_second_host():
    idle("h2", "vm:serial0")
    direct = gw = writer = None
    try:
        # A watcher directly on h2, one through the gateway, then the writer by bare name.
        direct = G.Pty(ctx.hubs.host("h2").ssh_cmd("direct", "vm+ro"))
        direct.name = "ssh[direct on h2]"
        attached(direct, "read-only")
        gw = gw_pty("bob", "h2/vm+ro")
        attached(gw, "read-only")
        writer = gw_pty("alice", "vm")
        m = attached(writer, "read-write")
        assert b"vm" in m.group(1), m.group(0)
        # Fan-out stays on the host: the two users through the gateway are one writer and
        # one watcher there, beside the direct watcher.
        c = ctx.hubs.host("h2").daemon.console("vm:serial0")
        assert c["writer"] is not None and c["watchers"] == 2, c
        G.sync_shell(writer, timeout=120)
        writer.send("echo $((6*7))\r")
        writer.expect(answer("42"), timeout=30)
        gw.expect(answer("42"), timeout=30)
        direct.expect(answer("42"), timeout=30)
    finally:
        for p in (writer, gw, direct):
            if p is not None:
                p.close()


@check("an ambiguous bare name is refused with the qualified choices")
def t_ambiguous_name():
    r = ctx.gw.run("alice", login="web01", timeout=60)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode != 0, (r.returncode, out)
    assert "'web01' is on more than one host" in out, out
    assert "h1/web01" in out and "h2/web01" in out, out
    # The qualified name works.
    idle("h1", "web01")
    p = gw_pty("alice", "h1/web01")
    try:
        attached(p, "read-write")
        p.expect(rb"web01 \d{12} ", timeout=30)
    finally:
        p.close()


@check("the host's gateway line (web*) refuses db01 although the gateway allows *")
def t_gateway_line_limits():
    h1 = ctx.hubs.host("h1")
    r = ctx.gw.run("alice", login="h1/db01", timeout=60)
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode != 0, (r.returncode, out)
    assert "db01" in out and ("no console" in out or "unknown" in out), out
    # The path itself works: web01 on the same host takes alice's keystrokes, while nothing
    # ever reached db01.
    idle("h1", "web01")
    c = gw_client("alice", "h1/web01")
    try:
        c.wait_for(ATTACHED)
        c.send(b"gw-limit-web01\n")
        runner.wait_until(lambda: b"gw-limit-web01" in h1.fakes["web01"].input(), 30,
                          "alice's keystrokes on web01")
    finally:
        c.close()
    assert h1.fakes["db01"].input() == b"", h1.fakes["db01"].input()[-200:]
    for user in ("alice", "bob", "carol"):
        assert "h1/db01" not in names_of(ctx.gw.list(user)), user


@check("a read-only user cannot write through the gateway; the host's own line caps the "
       "gateway's grant")
def t_read_only():
    h1 = ctx.hubs.host("h1")
    idle("h1", "web01")
    bob = alice = None
    try:
        bob = gw_client("bob", "h1/web01")
        m = bob.wait_for(ATTACHED)
        assert m.group(2) == b"read-only", m.group(0)
        bob.send(b"bob-was-here\n")
        bob.wait_for(RO_HINT, start=m.end())
        # bob cannot take the writer role either: alice, coming after his Ctrl-E c f,
        # writes and is never told that someone took write access.
        bob.send(b"\x05cf")
        alice = gw_client("alice", "h1/web01")
        a = alice.wait_for(ATTACHED)
        assert a.group(2) == b"read-write", a.group(0)
        alice.send(b"alice-after-bob\n")
        runner.wait_until(lambda: b"alice-after-bob" in h1.fakes["web01"].input(), 30,
                          "alice's keystrokes on web01")
        got = h1.fakes["web01"].input()
        assert b"bob-was-here" not in got and b"\x05" not in got, got[-200:]
        assert b"took write access" not in alice.data(), alice.data()[-600:]
    finally:
        for c in (bob, alice):
            if c is not None:
                c.close()
    # carol: read-write on the gateway, but h2's own line for her key says vm*:ro.
    idle("h2", "vm:serial0")
    listing = names_of(ctx.gw.list("carol"))
    assert "h2/vm:serial0" in listing, sorted(listing)
    assert "h2/web01" not in listing, sorted(listing)  # h2's line for carol: vm* only
    assert "h1/web01" in listing and "h3/fg" in listing, sorted(listing)
    p = gw_pty("carol", "h2/vm")
    try:
        attached(p, "read-only")
    finally:
        p.close()
    # mallory is known to no access file: the gateway refuses her login.
    r = ctx.gw.run("mallory", "list", timeout=60)
    assert r.returncode == 255 and b"Permission denied" in r.stderr, (r.returncode, r.stderr)


@check("takeover notices pass through the gateway; the host's audit names user and gateway")
def t_takeover_and_audit():
    h3 = ctx.hubs.host("h3")
    idle("h3", "fg")
    alice = direct = None
    try:
        alice = gw_client("alice", "h3/fg")
        m = alice.wait_for(ATTACHED)
        assert m.group(2) == b"read-write", m.group(0)
        direct = gwhub.SshClient(h3.ssh_cmd("direct", "fg+force", tty=False),
                                 name="ssh[direct fg+force on h3]")
        direct.wait_for(ATTACHED)
        alice.wait_for(rb"\[ttyhub\] [^\n]*took write access", start=m.end())
    finally:
        for c in (direct, alice):
            if c is not None:
                c.close()
    log = h3.daemon.log()
    fp_user, fp_gw = ctx.hubs.fingerprint("alice"), gwhub.sshhub.fingerprint(ctx.hubs.gw_key)
    both = [ln for ln in log.splitlines() if fp_user in ln and fp_gw in ln]
    assert both, "no h3 ttyhubd line names %s and %s:\n%s" % (fp_user, fp_gw, log[-3000:])
    assert "via gateway" in log, log[-3000:]
    gwlog = ctx.gw.front.log() + ctx.gw.daemon.log()
    assert fp_user in gwlog, "the gateway's logs never name %s:\n%s" % (fp_user,
                                                                        gwlog[-3000:])


@check("a host stopped with SIGSTOP: list returns within its deadline, that host unreachable")
def t_sigstop_host():
    h3 = ctx.hubs.host("h3")
    ctx.gw.wait_up(["h1", "h2", "h3"])
    slowest = [0.0]
    last = {}

    def h3_unreachable():
        t0 = time.monotonic()
        listing = ctx.gw.list("alice", timeout=120)
        dt = time.monotonic() - t0
        slowest[0] = max(slowest[0], dt)
        last["listing"] = listing
        return {h["name"]: h for h in listing["hosts"]}["h3"].get("state") == "unreachable"

    h3.signal(signal.SIGSTOP)
    try:
        # The gateway may answer from its short cache first: ask until h3 shows unreachable.
        runner.wait_until(h3_unreachable, 120, "h3 listed unreachable", interval=0.2)
        listing = last["listing"]
        hosts = {h["name"]: h for h in listing["hosts"]}
        assert hosts["h1"]["state"] == "up" and hosts["h2"]["state"] == "up", hosts
        assert hosts["h3"].get("error"), hosts["h3"]
        names = names_of(listing)
        assert "h1/web01" in names and "h2/vm:serial0" in names, sorted(names)
        assert not [n for n in names if n.startswith("h3/")], sorted(names)
        assert slowest[0] < gwhub.LIST_DEADLINE_MS / 1000 + LIST_SLACK_S, \
            "a list took %.1f s with h3 frozen" % slowest[0]
        t0 = time.monotonic()
        r = ctx.gw.run("alice", "list", timeout=120)
        dt = time.monotonic() - t0
        text = r.stdout.decode(errors="replace")
        assert r.returncode == 0, (r.returncode, text, r.stderr)
        assert re.search(r"(?m)^h3: unreachable \(.+\)", text), text
        assert "h1/web01" in text, text
        assert dt < gwhub.LIST_DEADLINE_MS / 1000 + LIST_SLACK_S, "text list took %.1f s" % dt
        print("figure: list with a frozen host: slowest %.2f s (deadline %g s)"
              % (max(slowest[0], dt), gwhub.LIST_DEADLINE_MS / 1000), flush=True)
    finally:
        h3.signal(signal.SIGCONT)
    ctx.gw.wait_up(["h1", "h2", "h3"])


@check("a host killed and restarted mid-session: the session resumes, nothing lost or "
       "repeated")
def t_host_killed_resumes():
    h3 = ctx.hubs.host("h3")
    ctx.gw.wait_up(["h3"])
    idle("h3", "fg")
    c = gw_client("alice", "h3/fg+ro")
    try:
        start = c.wait_for(ATTACHED).end()
        c.lines_after(start, 50)
        mark = len(c.data())
        # The host's entry point dies abruptly; its ttyhubd restarts (keeping its rings)
        # while nothing serves SSH there; then ttyhub-sshd comes back on the same port.
        h3.front.proc.send_signal(signal.SIGKILL)
        h3.front.proc.wait(30)
        h3.front.stop()  # already dead: closes its log
        runner.wait_until(lambda: ctx.gw.host_states("alice")["h3"][0] == "unreachable", 60,
                          "the gateway to list h3 unreachable", interval=0.5)
        h3.daemon.restart(sig=signal.SIGTERM)
        h3.front.start()
        back = c.wait_for(rb"\[ttyhub\] [^\n]*nothing lost\r?\n", start=mark, timeout=120)
        lost = c.wait_for(rb"\[ttyhub\] lost the connection to host h3; reconnecting\r?\n",
                          start=mark, timeout=1)
        assert lost.start() < back.start(), c.data()[mark:back.end()][-600:]
        c.lines_after(back.end(), 50)
        assert c.proc.poll() is None, "the SSH session through the gateway ended"
        out = c.data()
        # The user is told twice: the loss, and the exact resume; nothing else.
        notices = [n.rstrip(b"\r") for n in re.findall(rb"\[ttyhub\] [^\n]*", out[mark:])]
        want = {lost.group(0).rstrip(b"\r\n"), back.group(0).rstrip(b"\r\n")}
        assert set(notices) == want and notices.count(back.group(0).rstrip(b"\r\n")) == 1, \
            notices
        print("figure: %d lines told of the host's restart" % len(notices), flush=True)
        data = sshhub.console_bytes(out[start:], LINE)
        r = pattern.check_lines(data, tag="fg", line_length=LINE)
        if r["gaps"] or r["reorders"] or r["corrupt"] or r["lines"] < 100:
            raise AssertionError("the stream across the host's restart: %r\nlast bytes %r"
                                 % (r, data[-600:]))
    finally:
        c.close()
        if not h3.front.alive():  # failed half-way: the next checks need h3
            h3.front.stop()
            h3.front.start()


@check("a changed host key: the host is unreachable with both fingerprints, attach says so")
def t_changed_host_key():
    changed_host_key(False)


@check("a changed host key whose fingerprint starts with '/' is named in full, not as a path")
def t_changed_host_key_slash():
    changed_host_key(True)


def changed_host_key(slash_first):
    """h3 presents a new host key (its fingerprint starting with '/' or not): list shows h3
    unreachable with the offered and the pinned fingerprints, attach says the same; then h3
    gets its pinned key back."""
    h3 = ctx.hubs.host("h3")
    ctx.gw.wait_up(["h3"])
    pinned = h3.front.fingerprint()
    saved = {}
    for p in (h3.front.host_key, h3.front.host_key + ".pub"):
        with open(p, "rb") as f:
            saved[p] = f.read()
    h3.front.stop()
    h3.front.new_host_key(slash_first=slash_first)
    offered = h3.front.fingerprint()
    assert offered != pinned
    try:
        h3.front.start()
        want = ("host key does not match the pinned key (offered %s, pinned %s)"
                % (offered, pinned))
        last = {}

        def refused():
            last["hosts"] = ctx.gw.host_states("alice")
            state, why = last["hosts"].get("h3", (None, None))
            if state == "unreachable" and "host key does not match" in (why or "") \
                    and want not in why:
                raise AssertionError("h3's why is %r, not %r" % (why, want))
            return state == "unreachable" and why is not None and want in why
        try:
            runner.wait_until(refused, 120, "h3 unreachable for its host key", interval=0.5)
        except AssertionError as e:
            raise AssertionError("%s; last %r" % (e, last.get("hosts"))) from None
        r = ctx.gw.run("alice", login="h3/fg", timeout=60)
        out = (r.stdout + r.stderr).decode(errors="replace")
        assert r.returncode != 0, (r.returncode, out)
        assert "host h3 is unreachable: " + want in out, out
    finally:
        h3.front.stop()
        for p, b in saved.items():
            with open(p, "wb") as f:
                f.write(b)
        h3.front.start()
    ctx.gw.wait_up(["h1", "h2", "h3"])


def main():
    res = runner.Runner()
    for path in (gwhub.sshhub.SSHD, hub.TTYHUBD, hub.FAKE_GUEST):
        if not os.access(path, os.X_OK):
            print("FAIL %s is missing (build it first)" % path, flush=True)
            sys.exit(1)
    wd = hub.workdir("gateway")
    hubs = ctx.hubs = gwhub.GwHub(wd, users=("alice", "bob", "carol", "direct", "mallory"))
    direct = 'consoles="*:rw"'
    hubs.add_host("h1", fakes=("web01", "db01"), gateway_line='consoles="web*:rw",break',
                  user_lines={"direct": direct})
    hubs.add_host("h2", fakes=("web01",), qemu="vm",
                  user_lines={"direct": direct, "carol": 'consoles="vm*:ro"'})
    hubs.add_host("h3", fakes=("fg",), fake_rate=FG_RATE, user_lines={"direct": direct})
    res.on_failure = lambda: print(hubs.logs(), flush=True)
    try:
        hubs.start_hosts()
        res.run("every host serves its consoles directly on its own address", t_hosts_direct)
        if not gwhub.gateway_supported():
            res.failed += 1
            print("FAIL %s has no --gateway (the gateway mode is not built in)"
                  % gwhub.sshhub.SSHD, flush=True)
        else:
            ctx.gw = hubs.start_gateway(GW_LINES)
            ctx.gw.wait_up(["h1", "h2", "h3"])
            res.run_checks()
    except Exception as e:  # noqa: BLE001 - a set-up failure is a failed run, with logs
        res.failed += 1
        print("FAIL setting up: %s\n%s" % (e, hubs.logs()), flush=True)
    finally:
        hubs.stop()
    res.finish(wd)


if __name__ == "__main__":
    main()
