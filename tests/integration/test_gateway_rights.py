#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A real ttyhubd enforces a gateway's rights over its UNIX socket (docs/protocol.md
"Gateways"), whatever the gateway asserts.

A raw broker connection from a front peer (the test's own user is --front-user) says hello
for the gateway's key, as a host's ttyhub-sshd does for the ttyhub-broker subsystem, then
speaks for users the way a gateway does.  Two synthetic guests (fake-guest with
--input-log) are the consoles web01 and db01.  The host's access file has the gateway's
line limited to web* and bob's own line, which gives only ro.

* the gateway line allows only web*: a user whose grant allows * gets unknown-console for
  db01 (byte for byte as for a console that does not exist), sees only web01 in list, and
  attaches web01 as the writer (its bytes reach the guest); ping is answered with pong;
* a ro grant cannot write (its bytes never reach the guest while a writer's do), take or
  break, and an attach asking for rw makes it a watcher;
* a user whose own line on the host is ro stays ro though the grant and the gateway line
  give rw; the hello names the user with the host's comment and the gateway;
* a second speak-for hello, a speak-for hello on a key without the gateway option, a
  malformed grant; authorize and web-link through the gateway are denied;
* after SIGHUP with the gateway option gone, the gateway's connections get `revoked` and
  are closed, and a new one may no longer speak for anyone;
* ttyhubd --no-consoles (a gateway's own broker) has no console, refuses source options,
  and answers authorize with the line's grant and the gateway flag.
"""

import os
import pwd
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402
from test_policy import closed, ctx, expect, input_log, key_of, raw_error  # noqa: E402


GATEWAY_LINE = 'gateway,consoles="web*:rw",break'
LINES = {
    "gw": GATEWAY_LINE,
    "bob": 'consoles="*:ro"',
    "plain": 'consoles="*:rw"',
}


def write_access(**changes):
    lines = dict(LINES, **changes)
    ctx.d.write_access([lines[k] + " " + ctx.pub[k] for k in sorted(lines) if lines[k]])


def gateway(addr="10.20.30.40"):
    """A connection that said hello for the gateway's key, as a host's ttyhub-sshd does."""
    c = hub.BrokerClient(ctx.d.socket, hello=False)
    c.send({"type": "hello", "version": 1, "client": "ttyhub-sshd",
            "principal": {"key": key_of(ctx.pub["gw"]), "from": addr}})
    h = expect(c, "hello")
    assert h["you"] == "gw@ttyhub-test (ssh %s)" % ctx.fp["gw"], h
    return c


def speak_for(c, user, grant, comment="asserted comment", addr="192.0.2.7"):
    """The second hello: the gateway speaks for USER with GRANT; returns the answer."""
    c.send({"type": "hello", "version": 1, "client": "ttyhub-sshd",
            "principal": {"key": key_of(ctx.pub[user]), "from": addr, "grant": grant,
                          "comment": comment}})
    return c.next()


def user_via(user, grant, **kw):
    c = gateway()
    h = speak_for(c, user, grant, **kw)
    assert h["type"] == "hello", h
    return c, h


def wait_input(name, marker):
    ctx.d.wait_for(lambda: marker in input_log(name), what="%r in %s's input" % (marker, name))


def not_to_guest(watcher, typed, marker):
    """The watcher types, then (strictly after ttyhubd handled that) a local admin writer:
    the guest's input is one queue, so the watcher's bytes would have arrived first."""
    watcher.send_data(typed)
    watcher.send({"type": "who"})
    while True:  # the read-only hint comes once per attachment
        m = watcher.next()
        if m["type"] == "who":
            break
        assert m["type"] in ("notice", "state") or m.get("code") == "read-only", m
    w = hub.BrokerClient(ctx.d.socket)
    w.send({"type": "attach", "console": "web01", "mode": "force", "replay": 0})
    assert expect(w, "attached")["role"] == "writer"
    w.send_data(marker)
    wait_input("web01", marker.strip())
    assert typed.strip() not in input_log("web01"), input_log("web01")
    w.close()


def t_gateway_line_limits():
    c, h = user_via("alice", 'consoles="*:rw",break', comment="alice@laptop")
    assert h["you"] == "alice@laptop (ssh %s, via gateway gw@ttyhub-test)" % ctx.fp["alice"], h
    assert h["principal"] == {"fingerprint": ctx.fp["alice"], "comment": "alice@laptop"}, h
    c.send({"type": "ping"})
    assert expect(c, "pong") == {"type": "pong"}
    # db01 is outside the gateway's line: answered exactly like a console that is not there.
    got = {}
    for n in ("db01", "dbX1"):
        c.send({"type": "attach", "console": n, "mode": "rw", "replay": 0})
        got[n] = raw_error(c)
    assert got["db01"].replace(b"db01", b"NAME") == got["dbX1"].replace(b"dbX1", b"NAME"), got
    assert b'"unknown-console"' in got["db01"], got
    c.send({"type": "list"})
    lst = expect(c, "list")
    assert [x["name"] for x in lst["consoles"]] == ["web01"], lst
    assert lst["consoles"][0]["access"] == "rw" and lst["consoles"][0]["break"] is True, lst
    c.send({"type": "attach", "console": "web01", "mode": "force", "replay": 0})
    att = expect(c, "attached")
    assert att["role"] == "writer" and att["access"] == "rw", att
    c.send_data(b"VIA-GATEWAY-ALICE\r")
    wait_input("web01", b"VIA-GATEWAY-ALICE")
    c.close()


def t_ro_grant():
    c, _ = user_via("alice", 'consoles="web01:ro"')
    c.send({"type": "attach", "console": "web01", "mode": "rw", "replay": 0})
    att = expect(c, "attached")
    assert att["role"] == "watcher" and att["access"] == "ro" and att["break"] is False, att
    c.send_data(b"RO-GRANT-1\r")
    e = expect(c, "error")
    assert e["code"] == "read-only", e
    for force in (False, True):
        c.send({"type": "take", "force": force})
        e = expect(c, "error")
        assert e["code"] == "denied" and e["message"] == "your key may only watch web01", e
    c.send({"type": "break"})
    e = expect(c, "error")
    assert e["code"] == "denied" and e["message"] == "your key may not send a serial break", e
    not_to_guest(c, b"RO-GRANT-2\r", b"ADMIN-AFTER-RO-GRANT\r")
    c.close()


def t_host_line_ro():
    c, h = user_via("bob", 'consoles="*:rw",break', comment="what the gateway says")
    # The host has bob's line: its comment, not the asserted one.
    assert h["you"] == "bob@ttyhub-test (ssh %s, via gateway gw@ttyhub-test)" % ctx.fp["bob"], h
    c.send({"type": "attach", "console": "web01", "mode": "force", "replay": 0})
    e = expect(c, "error")
    assert e["code"] == "denied" and e["message"] == "your key may only watch web01", e
    c.send({"type": "attach", "console": "web01", "mode": "rw", "replay": 0})
    att = expect(c, "attached")
    assert att["role"] == "watcher" and att["access"] == "ro" and att["break"] is False, att
    not_to_guest(c, b"BOB-VIA-GATEWAY\r", b"ADMIN-AFTER-BOB\r")
    c.close()
    assert "speaks for bob@ttyhub-test (ssh %s) from 192.0.2.7 via gateway gw@ttyhub-test " \
           "(ssh %s)" % (ctx.fp["bob"], ctx.fp["gw"]) in ctx.d.log(), ctx.d.log()[-3000:]


def t_refusals():
    c = gateway()
    # Malformed: bad-request, and the connection stays the gateway's.
    for grant in (None, 'from="1.2.3.4"', 'consoles="web*:rw" '):
        p = {"key": key_of(ctx.pub["alice"]), "from": "192.0.2.7"}
        if grant is not None:
            p["grant"] = grant
        c.send({"type": "hello", "version": 1, "client": "x", "principal": p})
        e = expect(c, "error")
        assert e["code"] == "bad-request", e
    c.send({"type": "authorize", "key": key_of(ctx.pub["bob"]), "from": "127.0.0.1"})
    e = expect(c, "error")
    assert e["code"] == "denied", e
    for _ in range(2):  # before and after speaking for a user
        c.send({"type": "web-link", "console": "web01", "ro": True})
        e = expect(c, "error")
        assert e == {"type": "error", "code": "denied",
                     "message": "web links cannot be minted through a gateway"}, e
        if _ == 0:
            assert speak_for(c, "alice", 'consoles="*:rw"')["type"] == "hello"
    # Once only.
    e = speak_for(c, "bob", 'consoles="*:rw"')
    assert e["type"] == "error" and e["message"] == "hello was already sent", e
    c.close()
    # A key without the gateway option speaks for nobody.
    p = hub.BrokerClient(ctx.d.socket, hello=False)
    p.send({"type": "hello", "version": 1, "client": "x",
            "principal": {"key": key_of(ctx.pub["plain"]), "from": "127.0.0.1"}})
    expect(p, "hello")
    e = speak_for(p, "alice", 'consoles="*:rw"')
    assert e["type"] == "error" and e["message"] == "hello was already sent", e
    p.close()


def revoke_round(change):
    """Two gateway connections (one speaking for alice, attached), then the access file
    CHANGE and SIGHUP: both get `revoked` and are closed."""
    c, _ = user_via("alice", 'consoles="*:rw"')
    c.send({"type": "attach", "console": "web01", "mode": "ro", "replay": 0})
    expect(c, "attached")
    g = gateway()
    write_access(**change)
    ctx.d.reload()
    for x in (c, g):
        m = expect(x, "error")
        assert m == {"type": "error", "code": "revoked",
                     "message": "the gateway's key was removed from the access file"}, m
        assert closed(x), "a revoked gateway connection stayed open"


def t_reload_revokes():
    # The gateway option goes (the line stays): the key may log in as itself, but speaks
    # for nobody now.
    revoke_round({"gw": 'consoles="web*:rw",break'})
    p = hub.BrokerClient(ctx.d.socket, hello=False)
    p.send({"type": "hello", "version": 1, "client": "x",
            "principal": {"key": key_of(ctx.pub["gw"]), "from": "10.20.30.40"}})
    expect(p, "hello")
    e = speak_for(p, "alice", 'consoles="*:rw"')
    assert e["type"] == "error" and e["message"] == "hello was already sent", e
    p.close()
    write_access()
    ctx.d.reload()
    # The gateway's line goes altogether.
    revoke_round({"gw": None})
    write_access()
    ctx.d.reload()
    assert "the gateway's key (or its gateway option) removed" in ctx.d.log()


def t_no_consoles():
    wd = os.path.join(ctx.wd, "gwbroker")  # removed with the test's own directory
    os.mkdir(wd)
    d = hub.Daemon(wd, "--front-user", ctx.user, "--no-consoles")
    d.write_access([GATEWAY_LINE + " " + ctx.pub["gw"],
                    'consoles="web*:rw,db01:ro" ' + ctx.pub["alice"]])
    d.start()
    try:
        lst = d.list()
        assert lst["consoles"] == [] and lst["errors"] == [], lst
        f = hub.BrokerClient(d.socket)
        f.send({"type": "authorize", "key": key_of(ctx.pub["alice"]), "from": "192.0.2.7"})
        a = expect(f, "authorized")
        assert a["grant"] == 'consoles="web*:rw,db01:ro"' and a["gateway"] is False, a
        f.send({"type": "authorize", "key": key_of(ctx.pub["gw"]), "from": "10.1.1.1"})
        a = expect(f, "authorized")
        assert a["grant"] == 'consoles="web*:rw",break' and a["gateway"] is True, a
        f.close()
        assert "no console sources (--no-consoles)" in d.log(), d.log()[-2000:]
    finally:
        d.stop()
    # With a console source it is a configuration error.
    r = subprocess.run([hub.TTYHUBD, "--socket", os.path.join(wd, "x.sock"), "--no-consoles",
                        "--console", "x=/nonexistent"], capture_output=True, timeout=30)
    assert r.returncode == 2 and b"--no-consoles excludes" in r.stderr, r


def main():
    res = runner.Runner()
    ctx.wd = hub.workdir("gwrights")
    ctx.user = pwd.getpwuid(os.getuid()).pw_name
    ctx.keys, ctx.pub, ctx.fp = {}, {}, {}
    for k in ("gw", "alice", "bob", "plain"):
        ctx.keys[k], ctx.pub[k] = sshhub.make_key(ctx.wd, k)
        ctx.fp[k] = sshhub.fingerprint(ctx.keys[k])
    guests = []
    consoles = []
    for name in ("web01", "db01"):
        sock = os.path.join(ctx.wd, name + ".sock")
        guests.append(subprocess.Popen(
            [hub.FAKE_GUEST, "--socket", sock, "--rate", "50", "--tag", name,
             "--input-log", os.path.join(ctx.wd, name + ".input"), "--stats", sock + ".stats"]))
        consoles += ["--console", "%s=%s" % (name, sock)]
    ctx.d = hub.Daemon(ctx.wd, "--front-user", ctx.user, *consoles)
    write_access()
    try:
        ctx.d.start()
        ctx.d.wait_for(lambda: all((ctx.d.console(n) or {}).get("state") == "connected"
                                   for n in ("web01", "db01")),
                       timeout=20, what="the consoles to connect")
        res.run("the gateway's line limits what it may speak for; ping answers pong",
                t_gateway_line_limits)
        res.run("a ro grant cannot write, take or break", t_ro_grant)
        res.run("a user whose own line on the host is ro stays ro", t_host_line_ro)
        res.run("malformed and repeated speak-for hellos; no authorize or web-link",
                t_refusals)
        res.run("SIGHUP without the gateway option or line revokes its connections",
                t_reload_revokes)
        res.run("ttyhubd --no-consoles: no console, authorize with grant and gateway",
                t_no_consoles)
    finally:
        ctx.d.stop()
        for g in guests:
            g.terminate()
            g.wait()
    res.finish(ctx.wd)


if __name__ == "__main__":
    main()
