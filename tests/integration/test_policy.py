#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""ttyhubd enforces the access file itself, whatever a front sends.

A raw broker connection from a front peer (root is --front-user here) speaks for SSH keys
of the access file, as ttyhub-sshd does, and sends requests no honest front would send for
that key.  Two synthetic guests (fake-guest with --input-log) are the consoles web01 and
db01, plus a domain XML file that does not parse (a source error).

* a key whose line gives only ro on web01 cannot write (its bytes never reach the guest's
  input log, while a writer's do), take (plain or forced), attach with force, or break; an
  attach asking for rw makes it a watcher even while nobody writes;
* `list` shows a key only its consoles, with "access" and "break", and no source errors;
  a local admin sees every console, rw, and the errors;
* a console a key has no right to is answered byte for byte like one that does not exist
  (attach, who, list, break);
* a key not in the file is refused at hello (denied, then closed) and at authorize (denied,
  the connection stays usable); authorize answers a listed key with its fingerprint as
  ssh-keygen computes it;
* from= is enforced at hello and authorize;
* a front user that is no local admin and names no key sees no console and may only
  authorize; a malformed principal is refused and closed;
* after the access file is edited and ttyhubd gets SIGHUP, a writer demoted to ro stops
  being the writer (state, notice, its bytes no longer reach the guest), a key that lost
  the console is detached (reason "revoked"), and a removed key's connection gets the
  error "revoked" and is closed.
"""

import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402


class Ctx:
    pass


ctx = Ctx()


def key_of(pub):
    """"TYPE BASE64" of a .pub line (the comment is the access file's business)."""
    return " ".join(pub.split()[:2])


def front(name, addr="127.0.0.1", hello=True):
    """A front connection speaking for key NAME from ADDR; returns (client, hello answer)."""
    c = hub.BrokerClient(ctx.d.socket, hello=False)
    c.send({"type": "hello", "version": 1, "client": "test-front",
            "principal": {"key": key_of(ctx.pub[name]), "from": addr}})
    return c, (expect(c, "hello") if hello else None)


def next_msg(c, timeout=30):
    """The next control message within timeout (guest output keeps arriving meanwhile, so
    the socket's own timeout would never fire)."""
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
    """The next message of type want, skipping notices (and state changes)."""
    while True:
        m = next_msg(c, timeout)
        if m["type"] == want:
            return m
        assert m["type"] in ("notice", "state"), "expected %s, got %r" % (want, m)


def error(c):
    """The next error, skipping notices and state changes."""
    return expect(c, "error")


def raw_error(c):
    """The next error frame's payload, byte for byte."""
    while True:
        t, payload = c._read_frame()
        if t == b"C" and json.loads(payload)["type"] == "error":
            return payload
        assert t == b"O" or json.loads(payload)["type"] in ("notice", "state"), payload


def input_log(name):
    try:
        with open(os.path.join(ctx.wd, name + ".input"), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return b""


def wait_input(name, marker):
    ctx.d.wait_for(lambda: marker in input_log(name), what="%r in %s's input" % (marker, name))


def closed(c, timeout=10):
    """True once the broker closed the connection (EOF), reading what comes before."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            c.pump()
    except (EOFError, ConnectionResetError):
        return True
    return False


def not_to_guest(watcher, writer, typed, marker):
    """The watcher types, then (strictly after ttyhubd handled that) the writer: the
    guest's input is one queue, so once the writer's marker arrived the watcher's bytes
    would have arrived before it."""
    watcher.send_data(typed)
    watcher.send({"type": "who"})
    expect(watcher, "who")
    writer.send_data(marker)
    wait_input("web01", marker.strip())
    got = input_log("web01")
    assert typed.strip() not in got, got


def t_ro_cannot_write():
    # Nobody writes yet: an attach asking for rw must still make the ro key a watcher.
    a, _ = front("alice")
    a.send({"type": "attach", "console": "web01", "mode": "rw", "replay": 0})
    att = expect(a, "attached")
    assert att["role"] == "watcher" and att["access"] == "ro" and att["break"] is False, att
    assert att["writer"] is None, att
    a.send_data(b"ALICE-TYPED-1\r")
    e = error(a)
    assert e["code"] == "read-only", e
    # A writer's bytes do arrive: the log shows whether the guest got something.
    b, _ = front("bob")
    b.send({"type": "attach", "console": "web01", "mode": "rw", "replay": 0})
    att = expect(b, "attached")
    assert att["role"] == "writer" and att["access"] == "rw" and att["break"] is True, att
    not_to_guest(a, b, b"ALICE-TYPED-2\r", b"BOB-TYPED\r")

    # take, plain and forced; attach with force from a second connection; break.
    for force in (False, True):
        a.send({"type": "take", "force": force})
        e = error(a)
        assert e["code"] == "denied" and e["message"] == "your key may only watch web01", e
    a2, _ = front("alice")
    a2.send({"type": "attach", "console": "web01", "mode": "force", "replay": 0})
    e = error(a2)
    assert e["code"] == "denied" and e["message"] == "your key may only watch web01", e
    a.send({"type": "break"})
    e = error(a)
    assert e["code"] == "denied" and e["message"] == "your key may not send a serial break", e
    a2.send({"type": "break", "console": "web01"})
    e = error(a2)
    assert e["code"] == "denied" and e["message"] == "your key may not send a serial break", e
    # A key with rw but without the break option may not either; with both, the policy lets
    # it through (to the next refusal: a --console source cannot send breaks).
    cl, _ = front("carol")
    cl.send({"type": "break", "console": "web01"})
    e = error(cl)
    assert e["message"] == "your key may not send a serial break", e
    b.send({"type": "break"})
    e = error(b)
    assert e["code"] == "not-available", e

    # Bob is still the writer; Alice's bytes still go nowhere.
    b.send({"type": "who"})
    who = expect(b, "who")
    writers = [x["user"] for x in who["clients"] if x["role"] == "writer"]
    assert len(writers) == 1 and writers[0].startswith("bob@ttyhub-test (ssh SHA256:"), who
    not_to_guest(a, b, b"ALICE-TYPED-3\r", b"BOB-AGAIN\r")
    for x in (a, a2, b, cl):
        x.close()


def names(msg):
    return sorted(c["name"] for c in msg["consoles"])


def t_list():
    a, _ = front("alice")
    a.send({"type": "list"})
    lst = expect(a, "list")
    assert names(lst) == ["web01"], lst
    assert lst["consoles"][0]["access"] == "ro" and lst["consoles"][0]["break"] is False, lst
    assert lst["errors"] == [], lst
    b, _ = front("bob")
    b.send({"type": "list"})
    lst = expect(b, "list")
    assert names(lst) == ["db01", "web01"], lst
    assert all(c["access"] == "rw" and c["break"] is True for c in lst["consoles"]), lst
    assert lst["errors"] == [], lst
    # The local admin sees everything, with every right, and the broken source.
    full = ctx.d.list()
    assert names(full) == ["db01", "secret", "web01"], full
    assert all(c["access"] == "rw" and c["break"] is True for c in full["consoles"]), full
    assert any(e["origin"].endswith("broken.xml") for e in full["errors"]), full
    a.close()
    b.close()


def t_invisible_is_nonexistent():
    a, _ = front("alice")
    requests = [
        lambda n: {"type": "attach", "console": n, "mode": "ro"},
        lambda n: {"type": "who", "console": n},
        lambda n: {"type": "list", "console": n},
        lambda n: {"type": "break", "console": n},
    ]
    for req in requests:
        got = {}
        for n in ("db01", "dbX1"):  # exists (no right) / does not exist; same length
            a.send(req(n))
            got[n] = raw_error(a)
        assert got["db01"].replace(b"db01", b"NAME") == got["dbX1"].replace(b"dbX1", b"NAME"), got
        assert b"no console named 'db01'" in got["db01"], got
    # The admin does get the console: the name is real.
    r = ctx.d.cli("who", "db01")
    assert r.returncode == 0, r
    a.close()


def t_unknown_key():
    c, _ = front("eve", hello=False)
    m = c.next()
    assert m["type"] == "error" and m["code"] == "denied" and m["message"] == "key not allowed", m
    assert closed(c), "the connection of an unknown key stayed open"
    # authorize on a front connection without a principal.
    f = hub.BrokerClient(ctx.d.socket)
    f.send({"type": "authorize", "key": key_of(ctx.pub["eve"]), "from": "127.0.0.1"})
    e = expect(f, "error")
    assert e["code"] == "denied" and e["message"] == "key not allowed", e
    f.send({"type": "authorize", "key": key_of(ctx.pub["alice"]), "from": "127.0.0.1"})
    ok = expect(f, "authorized")
    fp = sshhub.fingerprint(ctx.keys["alice"])
    assert ok["fingerprint"] == fp and ok["comment"] == "alice@ttyhub-test", ok
    assert ok["you"] == "alice@ttyhub-test (ssh %s)" % fp, ok
    # A key the parser refuses is no different from an unknown one.
    f.send({"type": "authorize", "key": "ssh-ed25519 AAAA", "from": "127.0.0.1"})
    e = expect(f, "error")
    assert e["code"] == "denied", e
    f.close()
    # hello says who the principal is, as the broker computed it.
    a, hello = front("alice")
    assert hello["principal"] == {"fingerprint": fp, "comment": "alice@ttyhub-test"}, hello
    assert hello["you"] == "alice@ttyhub-test (ssh %s)" % fp, hello
    a.close()


BARE_FRONT = r"""
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
buf = b""
def send(o):
    p = json.dumps(o).encode()
    s.sendall(b"C" + struct.pack(">I", len(p)) + p)
def recv():
    global buf
    while len(buf) < 5 or len(buf) < 5 + struct.unpack(">I", buf[1:5])[0]:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError
        buf += chunk
    n = struct.unpack(">I", buf[1:5])[0]
    t, p, buf = buf[:1], buf[5:5 + n], buf[5 + n:]
    return json.loads(p) if t == b"C" else recv()
for req in json.loads(sys.argv[2]):
    send(req)
    print(json.dumps(recv()), flush=True)
"""


def t_bare_front():
    # A front user that is no local admin and speaks for no key: no console rights at all,
    # but it may ask about keys.
    os.chmod(ctx.wd, 0o711)
    os.chmod(ctx.d.socket, 0o666)
    reqs = [{"type": "hello", "version": 1, "client": "bare-front"},
            {"type": "list"},
            {"type": "attach", "console": "web01", "mode": "ro"},
            {"type": "authorize", "key": key_of(ctx.pub["alice"]), "from": "127.0.0.1"}]
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        "/usr/bin/python3", "-c", BARE_FRONT, ctx.d.socket, json.dumps(reqs)],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r
    hello, lst, att, auth = [json.loads(x) for x in r.stdout.splitlines()]
    assert hello["type"] == "hello" and hello["you"] == "local front", hello
    assert lst["type"] == "list" and lst["consoles"] == [] and lst["errors"] == [], lst
    assert att == {"type": "error", "code": "unknown-console",
                   "message": "no console named 'web01'"}, att
    assert auth["type"] == "authorized" and auth["comment"] == "alice@ttyhub-test", auth
    # A malformed principal is refused and closed.
    c = hub.BrokerClient(ctx.d.socket, hello=False)
    c.send({"type": "hello", "version": 1, "client": "x", "principal": "alice"})
    m = c.next()
    assert m["type"] == "error" and m["code"] == "bad-request", m
    assert closed(c)


def t_from():
    c, _ = front("dave", addr="127.0.0.1", hello=False)
    m = c.next()
    assert m["type"] == "error" and m["code"] == "denied", m
    assert closed(c)
    c, hello = front("dave", addr="10.9.9.9")
    c.send({"type": "list"})
    assert names(expect(c, "list")) == ["web01"]
    c.close()
    f = hub.BrokerClient(ctx.d.socket)
    f.send({"type": "authorize", "key": key_of(ctx.pub["dave"]), "from": "10.9.9.8"})
    assert expect(f, "error")["code"] == "denied"
    f.send({"type": "authorize", "key": key_of(ctx.pub["dave"]), "from": "10.9.9.9"})
    assert expect(f, "authorized")["comment"] == "dave@ttyhub-test"
    f.close()


def t_reload_revokes():
    b, _ = front("bob")
    b.send({"type": "attach", "console": "web01", "mode": "force", "replay": 0})
    assert expect(b, "attached")["role"] == "writer"
    cl, _ = front("carol")
    cl.send({"type": "attach", "console": "db01", "mode": "ro", "replay": 0})
    expect(cl, "attached")
    a, _ = front("alice")
    a.send({"type": "attach", "console": "web01", "mode": "ro", "replay": 0})
    expect(a, "attached")
    b.send_data(b"BOB-BEFORE\r")
    wait_input("web01", b"BOB-BEFORE")

    # bob: rw -> ro; carol: removed; alice: loses web01.
    write_access(bob='consoles="web01:ro,db01:ro"', carol=None, alice='consoles="db01:ro"')
    ctx.d.reload()

    st = expect(b, "state")
    assert st["role"] == "watcher" and st["writer"] is None and st["access"] == "ro", st
    n = expect(b, "notice")
    while n["text"] != "your key may now only watch web01":
        n = expect(b, "notice")
    b.send_data(b"BOB-AFTER\r")
    e = error(b)
    assert e["code"] == "read-only", e
    b.send({"type": "take", "force": True})
    e = error(b)
    assert e["message"] == "your key may only watch web01", e

    m = expect(cl, "error")
    assert m == {"type": "error", "code": "revoked",
                 "message": "your key was removed from the access file"}, m
    assert closed(cl), "the removed key's connection stayed open"

    m = expect(a, "detached")
    assert m["reason"] == "revoked" and m["console"] == "web01", m
    assert m["text"] == "your key no longer has access to web01", m

    # A writer that is let in now proves the guest still listens; bob's bytes never came.
    w = hub.BrokerClient(ctx.d.socket)
    w.send({"type": "attach", "console": "web01", "mode": "rw", "replay": 0})
    assert expect(w, "attached")["role"] == "writer"
    w.send_data(b"ADMIN-AFTER\r")
    wait_input("web01", b"ADMIN-AFTER")
    assert b"BOB-AFTER" not in input_log("web01"), input_log("web01")
    # A new connection of the removed key is refused too.
    c, _ = front("carol", hello=False)
    assert c.next()["code"] == "denied"
    for x in (a, b, c, w):
        x.close()
    assert "key removed from the access file" in ctx.d.log(), ctx.d.log()[-3000:]


LINES = {
    "alice": 'consoles="web01:ro"',
    "bob": 'consoles="web01:rw,db01:rw",break',
    "carol": 'consoles="web01:rw,db01:ro"',
    "dave": 'from="10.9.9.9",consoles="web01:rw"',
}


def write_access(**changes):
    lines = dict(LINES, **changes)
    ctx.d.write_access([lines[k] + " " + ctx.pub[k] for k in sorted(lines) if lines[k]])


def main():
    res = runner.Runner()
    ctx.wd = hub.workdir("policy")
    ctx.keys, ctx.pub = {}, {}
    for k in ("alice", "bob", "carol", "dave", "eve"):
        ctx.keys[k], ctx.pub[k] = sshhub.make_key(ctx.wd, k)
    guests = []
    consoles = []
    for name in ("web01", "db01", "secret"):
        sock = os.path.join(ctx.wd, name + ".sock")
        guests.append(subprocess.Popen(
            [hub.FAKE_GUEST, "--socket", sock, "--rate", "200", "--tag", name,
             "--input-log", os.path.join(ctx.wd, name + ".input"), "--stats", sock + ".stats"]))
        consoles += ["--console", "%s=%s" % (name, sock)]
    xmldir = os.path.join(ctx.wd, "xml")
    os.mkdir(xmldir)
    with open(os.path.join(xmldir, "broken.xml"), "w") as f:
        f.write("<domain><name>x</name>\n")
    ctx.d = hub.Daemon(ctx.wd, "--front-user", "root", "--front-user", "nobody",
                       "--domain-xml", xmldir, *consoles)
    write_access()
    try:
        ctx.d.start()
        ctx.d.wait_for(lambda: all((ctx.d.console(n) or {}).get("state") == "connected"
                                   for n in ("web01", "db01", "secret")),
                       timeout=20, what="the consoles to connect")
        res.run("a ro key cannot write, take, force or break", t_ro_cannot_write)
        res.run("list shows a key only its consoles, with its rights", t_list)
        res.run("a console without right answers like a nonexistent one",
                t_invisible_is_nonexistent)
        res.run("a key not in the file is denied at hello and authorize", t_unknown_key)
        res.run("from= is enforced", t_from)
        res.run("a front speaking for no key has no rights; malformed principals",
                t_bare_front)
        res.run("SIGHUP: demoted writer, detached watcher, revoked key", t_reload_revokes)
    finally:
        ctx.d.stop()
        for g in guests:
            g.terminate()
            g.wait()
    res.finish(ctx.wd)


if __name__ == "__main__":
    main()
