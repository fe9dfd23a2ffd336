#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Web links and web sessions, the broker's side (docs/protocol.md "Web links and sessions"):
a real ttyhubd with --web-url, fake guests (fake-guest --input-log), ttyhub-sshd with the
real OpenSSH client, and raw front connections (root is --front-user) standing in for
ttyhub-webd.

* `ttyhub web-link NAME [--ro]` (a local admin) and `ssh ... web-link VM [--ro]` (a key)
  print one line: --web-url + "#t=TOKEN&c=NAME", TOKEN 43 base64url characters, no query
  string; a console the key may not use is "no console named" (exit status 1);
* `redeem` from a front: once OK (session, console, access, you), a second time, an
  unknown token and a malformed one are all refused with the same text, and so is a
  token past --web-link-ttl (a second ttyhubd with --web-link-ttl 1);
* `hello` with the session speaks for the key, capped by the link's narrowing: a --ro
  link of a rw key attaches as a watcher, cannot take or force, and its typing never
  reaches the guest's input log (while a writer's does); a rw link writes; a session
  connection may neither mint nor redeem; an unknown session is denied and closed;
* the key removed from the access file + SIGHUP: its session connections get `revoked`
  and are closed, and the session cannot be used again;
* without --web-url, `ttyhub web-link` says web links are off;
* no token or session secret appears in ttyhubd's or ttyhub-sshd's log; their tags
  (12 hex digits of the SHA-256) do.
"""

import base64
import hashlib
import os
import re
import secrets
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402

WEB_URL = "http://127.0.0.1:8443/"
URL_RE = re.compile(r"^http://127\.0\.0\.1:8443/#t=([A-Za-z0-9_-]{43})&c=([A-Za-z0-9%._~-]+)$")
INVALID = "this link is not valid (used, expired or unknown)"

KEYS = {
    "alice": 'consoles="web01:ro"',
    "bob": 'consoles="web01:rw"',
    "carol": 'consoles="web01:rw"',
}


class Ctx:
    pass


ctx = Ctx()
SECRETS = []  # every token and session secret seen: none may be logged


def key_of(pub):
    return " ".join(pub.split()[:2])


def line(name):
    return KEYS[name] + " " + ctx.pub[name]


def tag(text):
    """The log's name for a token or secret: 12 hex digits of the SHA-256 of its bytes."""
    raw = base64.urlsafe_b64decode(text + "=")
    return hashlib.sha256(raw).hexdigest()[:12]


def next_msg(c, timeout=30):
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no message within %g s; last: %r"
                                     % (timeout, c.messages[-3:]))
            c.sock.settimeout(left)
            try:
                m = c.pump()
            except socket.timeout:
                continue
            if m is not None:
                return m
    finally:
        c.sock.settimeout(10)


def expect(c, want, timeout=30):
    """The next message of type want, skipping notices and state changes."""
    while True:
        m = next_msg(c, timeout)
        if m["type"] == want:
            return m
        assert m["type"] in ("notice", "state"), "expected %s, got %r" % (want, m)


def closed(c, timeout=10):
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            c.pump()
    except (EOFError, ConnectionResetError):
        return True
    return False


def input_log(name):
    try:
        with open(os.path.join(ctx.wd, name + ".input"), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def wait_input(name, marker):
    ctx.d.wait_for(lambda: marker in input_log(name), what="%r in %s's input" % (marker, name))


def check_url(url, console="web01"):
    m = URL_RE.match(url)
    assert m, "not a web link: %r" % url
    assert "?" not in url, url
    assert m.group(2) == console, url
    SECRETS.append(m.group(1))
    return m.group(1)


def cli_link(*args, d=None):
    r = (d or ctx.d).cli("web-link", *args)
    assert r.returncode == 0, r
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 1, r
    return check_url(lines[0])


def ssh_link(name, *args):
    r = sshhub.run_ssh(ctx.front, ctx.keys[name], "console", "web-link", *args)
    assert r.returncode == 0, r
    lines = r.stdout.decode().splitlines()
    assert len(lines) == 1, r
    return check_url(lines[0].rstrip("\r"))


def redeem(token, d=None):
    """Redeem through a raw front connection (as ttyhub-webd would); returns the answer."""
    f = hub.BrokerClient((d or ctx.d).socket)
    try:
        f.send({"type": "redeem", "token": token, "from": "127.0.0.1"})
        m = next_msg(f)
    finally:
        f.close()
    if m["type"] == "redeemed":
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", m["session"]), m
        SECRETS.append(m["session"])
    return m


def refused(m):
    assert m["type"] == "error" and m["code"] == "denied" and m["message"] == INVALID, m


def session(secret, hello=True):
    """A front connection speaking for a web session; returns (client, hello answer)."""
    c = hub.BrokerClient(ctx.d.socket, hello=False)
    c.send({"type": "hello", "version": 1, "client": "test-webd", "session": secret,
            "from": "127.0.0.1"})
    return c, (expect(c, "hello") if hello else None)


def t_cli_link():
    token = cli_link("web01")
    m = redeem(token)
    assert m["type"] == "redeemed", m
    assert m["console"] == "web01" and m["access"] == "rw", m
    assert m["you"] == "local admin root (web)", m
    assert 43000 <= m["expires_in"] <= 43200, m
    # Single use; an unknown token and a malformed one get the same words.
    refused(redeem(token))
    refused(redeem(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")))
    refused(redeem("not-a-token"))
    ro = cli_link("web01", "--ro")
    m = redeem(ro)
    assert m["type"] == "redeemed" and m["access"] == "ro", m
    # A console that does not exist.
    r = ctx.d.cli("web-link", "nosuch")
    assert r.returncode == 1 and b"no console named 'nosuch'" in r.stderr, r
    assert r.stdout == b"", r


def t_ssh_link():
    fp = sshhub.fingerprint(ctx.keys["alice"])
    token = ssh_link("alice", "web01", "--ro")
    m = redeem(token)
    assert m["type"] == "redeemed", m
    assert m["access"] == "ro" and m["you"] == "alice@ttyhub-test (web %s)" % fp, m
    # alice may only watch web01: a link without --ro still grants ro.
    m = redeem(ssh_link("alice", "web01"))
    assert m["type"] == "redeemed" and m["access"] == "ro", m
    m = redeem(ssh_link("bob", "web01"))
    assert m["type"] == "redeemed" and m["access"] == "rw", m
    # A console the key may not use is answered as one that does not exist.
    for name in ("db01", "nosuch"):
        r = sshhub.run_ssh(ctx.front, ctx.keys["alice"], "console", "web-link", name)
        assert r.returncode == 1, r
        # The SSH front says it in the channel (stdout without a pty).
        assert ("no console named '%s'" % name).encode() in r.stdout + r.stderr, r
    r = sshhub.run_ssh(ctx.front, ctx.keys["alice"], "console", "web-link", "web01", "--rw")
    assert r.returncode == 2, r


def t_session_rights():
    # A rw key's --ro link: a watcher whatever it asks, and nothing it types reaches the guest.
    m = redeem(ssh_link("bob", "web01", "--ro"))
    assert m["access"] == "ro", m
    ro, hello = session(m["session"])
    fp = sshhub.fingerprint(ctx.keys["bob"])
    assert hello["you"] == "bob@ttyhub-test (web %s)" % fp, hello
    ro.send({"type": "attach", "console": "web01", "mode": "rw", "replay": 0})
    att = expect(ro, "attached")
    assert att["role"] == "watcher" and att["access"] == "ro" and att["break"] is False, att
    for force in (False, True):
        ro.send({"type": "take", "force": force})
        e = expect(ro, "error")
        assert e["code"] == "denied", e
    ro2, _ = session(m["session"])
    ro2.send({"type": "attach", "console": "web01", "mode": "force", "replay": 0})
    e = expect(ro2, "error")
    assert e["code"] == "denied", e
    ro.send_data(b"RO-SESSION-TYPED\r")
    e = expect(ro, "error")
    assert e["code"] == "read-only", e
    # A rw link's session writes; its bytes arrive after the ro one's would have.
    m = redeem(ssh_link("bob", "web01"))
    rw, _ = session(m["session"])
    rw.send({"type": "attach", "console": "web01", "mode": "force", "replay": 0})
    att = expect(rw, "attached")
    assert att["role"] == "writer" and att["access"] == "rw", att
    ro.send_data(b"RO-SESSION-AGAIN\r")
    ro.send({"type": "who"})
    expect(ro, "who")
    rw.send_data(b"RW-SESSION-TYPED\r")
    wait_input("web01", b"RW-SESSION-TYPED")
    got = input_log("web01")
    assert b"RO-SESSION" not in got, got
    # A session connection may neither mint a link nor redeem one.
    rw.send({"type": "web-link", "console": "web01", "ro": False})
    e = expect(rw, "error")
    assert e["code"] == "denied", e
    rw.send({"type": "redeem", "token": "x" * 43, "from": "127.0.0.1"})
    e = expect(rw, "error")
    assert e["code"] == "denied", e
    # An unknown session: denied and closed.
    bad, _ = session("A" * 43, hello=False)
    e = next_msg(bad)
    assert e["type"] == "error" and e["code"] == "denied", e
    assert e["message"] == "web session expired", e
    assert closed(bad)
    for c in (ro, ro2, rw, bad):
        c.close()


def t_revoke():
    m = redeem(ssh_link("carol", "web01"))
    secret = m["session"]
    c, _ = session(secret)
    c.send({"type": "attach", "console": "web01", "mode": "ro", "replay": 0})
    expect(c, "attached")
    idle = redeem(ssh_link("carol", "web01"))  # a session nobody uses yet
    ctx.front.write_access([line("alice"), line("bob")])
    ctx.front.reload()
    e = expect(c, "error")
    assert e["code"] == "revoked", e
    assert closed(c)
    for s in (secret, idle["session"]):
        again, _ = session(s, hello=False)
        e = next_msg(again)
        assert e["type"] == "error" and e["message"] == "web session expired", e
        again.close()
    assert "web session %s of key" % tag(idle["session"]) in ctx.d.log(), ctx.d.log()[-3000:]
    c.close()


def t_expired():
    # A second ttyhubd whose links last 1 s.
    wd = os.path.join(ctx.wd, "short")
    os.mkdir(wd)
    # Its console need not connect (a link names it, nothing reads it): no guest behind it.
    d = hub.Daemon(wd, "--front-user", "root", "--web-url", WEB_URL, "--web-link-ttl", "1",
                   "--console", "web01=" + os.path.join(wd, "none.sock")).start()
    try:
        token = cli_link("web01", d=d)
        # The clock must pass the expiry: nothing to wait on but time itself.
        time.sleep(1.5)
        refused(redeem(token, d=d))
        assert "web link %s from 127.0.0.1 refused" % tag(token) in d.log(), d.log()[-2000:]
        ctx.logs.append(d.log())
    finally:
        d.stop()


def t_no_web_url():
    wd = os.path.join(ctx.wd, "off")
    os.mkdir(wd)
    d = hub.Daemon(wd, "--console", "web01=" + os.path.join(wd, "none.sock")).start()
    try:
        r = d.cli("web-link", "web01")
        assert r.returncode == 1, r
        assert b"ttyhubd has no --web-url: web links are off" in r.stderr, r
    finally:
        d.stop()


def t_no_secret_logged():
    logs = ctx.logs + [ctx.d.log(), ctx.front.log()]
    assert len(SECRETS) >= 10, SECRETS
    for s in SECRETS:
        for text in logs:
            assert s not in text, "a secret is in a log"
    # The audit lines name them by tag.
    assert any(tag(s) in ctx.d.log() for s in SECRETS), ctx.d.log()[-3000:]


def main():
    res = runner.Runner()
    ctx.wd = hub.workdir("weblink")
    ctx.keys, ctx.pub, ctx.socks, ctx.logs = {}, {}, {}, []
    for k in KEYS:
        ctx.keys[k], ctx.pub[k] = sshhub.make_key(ctx.wd, k)
    guests, consoles = [], []
    for name in ("web01", "db01"):
        sock = ctx.socks[name] = os.path.join(ctx.wd, name + ".sock")
        guests.append(subprocess.Popen(
            [hub.FAKE_GUEST, "--socket", sock, "--rate", "50", "--tag", name,
             "--input-log", os.path.join(ctx.wd, name + ".input")],
            stdin=subprocess.DEVNULL))
        consoles += ["--console", "%s=%s" % (name, sock)]
    ctx.d = hub.Daemon(ctx.wd, "--front-user", "root", "--web-url", WEB_URL, *consoles)
    try:
        ctx.d.start()
        ctx.d.wait_for(lambda: all((ctx.d.console(n) or {}).get("state") == "connected"
                                   for n in ("web01", "db01")),
                       timeout=30, what="the consoles to connect")
        ctx.front = sshhub.SshFront(os.path.join(ctx.wd, "sshd"), ctx.d.socket,
                                    [line(n) for n in KEYS])
        res.on_failure = lambda: print(
            "--- ttyhub-sshd log tail ---\n%s\n--- ttyhubd log tail ---\n%s"
            % (ctx.front.log()[-2500:], ctx.d.log()[-2500:]), flush=True)
        res.run("ttyhub web-link: the URL, redeemed once, then refused", t_cli_link)
        res.run("ssh web-link: a key's link, narrowed by --ro and by the key", t_ssh_link)
        res.run("a session speaks for the key, capped by ro", t_session_rights)
        res.run("SIGHUP revokes a removed key's sessions", t_revoke)
        res.run("an expired link is refused alike", t_expired)
        res.run("no --web-url: web links are off", t_no_web_url)
        res.run("no token or secret in the logs", t_no_secret_logged)
    finally:
        ctx.front.stop() if getattr(ctx, "front", None) else None
        ctx.d.stop()
        for g in guests:
            g.terminate()
            g.wait()
    res.finish(ctx.wd)


if __name__ == "__main__":
    main()
