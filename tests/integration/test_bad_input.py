#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Bad input gets a clear, specific error and disturbs nothing else.

One ttyhubd serves a healthy console (a synthetic guest writing a numbered
pattern) to an attached client for the whole test.  Meanwhile it is fed:
malformed, truncated, huge and entity-laden domain XML; consoles whose socket
path is missing, a regular file or a dangling symlink; an unknown console
name; malformed, oversize and out-of-order frames; bad JSON; an unauthorised
peer; and clients that vanish in the middle of large writes.  After each, the
healthy client must still be receiving the pattern without a gap, and the
daemon must still be running.
"""

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import pattern  # noqa: E402
import runner  # noqa: E402

U1, U2, U3, U4, U5 = ("-".join(d * n for n in (8, 4, 4, 4, 12)) for d in "12345")


class Ctx:
    pass


ctx = Ctx()


def healthy_still_flowing():
    """The healthy client keeps receiving, in order, with no loss."""
    c = ctx.healthy
    before = len(c.data)
    c.read_data_until(b"\n", timeout=5)
    deadline = time.monotonic() + 5
    while len(c.data) < before + 640 and time.monotonic() < deadline:
        c.sock.settimeout(0.5)
        try:
            c.pump()
        except socket.timeout:
            pass
    assert len(c.data) >= before + 640, "healthy console stalled"
    chk = pattern.check_lines(c.data)
    assert not chk["gaps"] and not chk["corrupt"] and not chk["reorders"], chk
    assert ctx.d.alive(), ctx.d.log()


def write_xml(name, text):
    tmp = os.path.join(ctx.wd, ".tmp-" + name)
    with open(tmp, "w" if isinstance(text, str) else "wb") as f:
        f.write(text)
    os.rename(tmp, os.path.join(ctx.xmldir, name))


def list_error(origin_suffix):
    for e in ctx.d.list()["errors"]:
        if e["origin"].endswith(origin_suffix):
            return e["message"]
    return None


def xml_error(fname, text, want):
    write_xml(fname, text)
    msg = ctx.d.wait_for(lambda: list_error(fname), what="error for " + fname)
    assert re.search(want, msg), "%s: %r does not match %r" % (fname, msg, want)
    assert fname in ctx.d.log()
    healthy_still_flowing()


def t_malformed_xml():
    xml_error("bad.xml", "<domain>\n  <name>x</name>\n  <devices>\n</domain>\n",
              r"line \d+: .*(mismatch|end tag)")


def t_truncated_xml():
    xml_error("trunc.xml", hub.domain_xml(name="t", uuid="u", path="/x")[:60], r"line \d+")


def t_huge_xml():
    xml_error("huge.xml", "<domain>" + " " * (9 * 1024 * 1024) + "</domain>",
              r"over the \d+ byte limit")


def t_entities():
    xml_error("lol.xml", '<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY a "aaaa">'
              '<!ENTITY b "&a;&a;&a;&a;">]>\n<domain><name>&b;</name></domain>\n',
              r"DTDs and entities are not allowed")
    xml_error("xxe.xml", '<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
              '<domain><name>&x;</name></domain>', r"DTDs and entities are not allowed")


def t_not_a_domain():
    xml_error("net.xml", "<network><name>default</name></network>", r"<network>")


def console_state(name, state, want):
    c = ctx.d.wait_for(lambda: (ctx.d.console(name) or {}).get("state") == state and
                       ctx.d.console(name), what="%s %s" % (name, state))
    assert re.search(want, c["status"]), c
    healthy_still_flowing()
    return c


def t_missing_socket():
    write_xml("missing.xml", hub.domain_xml("missing", U1, os.path.join(ctx.wd, "nope.sock")))
    console_state("missing:serial0", "waiting", r"waiting for .*nope\.sock to appear")


def t_regular_file():
    path = os.path.join(ctx.wd, "regular")
    open(path, "w").close()
    write_xml("regular.xml", hub.domain_xml("regular", U2, path))
    console_state("regular:serial0", "error", r"is a regular file, expected a UNIX socket")
    # Attaching is allowed (it may recover); the user is told why it is silent.
    r = ctx.d.cli("attach", "regular")
    assert r.returncode == 0, r
    assert re.search(rb"console is error: .*regular is a regular file", r.stdout), r.stdout


def t_dangling_symlink():
    path = os.path.join(ctx.wd, "dangling")
    os.symlink(os.path.join(ctx.wd, "gone"), path)
    write_xml("dangling.xml", hub.domain_xml("dangling", U3, path))
    console_state("dangling:serial0", "error", r"dangling symbolic link")


def t_unknown_console():
    r = ctx.d.cli("attach", "no-such-vm")
    assert r.returncode == 1, r
    assert b"no console named 'no-such-vm'" in r.stderr, r.stderr
    r = ctx.d.cli("who", "no-such-vm")
    assert r.returncode == 1 and b"no console named" in r.stderr, r.stderr
    healthy_still_flowing()


def t_malformed_frames():
    cases = [
        (b"Xgarbage", r"malformed frame"),
        (b"D\xff\xff\xff\xff", r"frame larger than"),
        (b"GET / HTTP/1.1\r\n\r\n", r"malformed frame"),
    ]
    for raw, want in cases:
        c = hub.BrokerClient(ctx.d.socket)
        c.send_raw(raw)
        err = c.expect_type("error")
        assert err["code"] == "bad-frame" and re.search(want, err["message"]), err
        try:
            c.next()
            raise AssertionError("connection not closed after a malformed frame")
        except EOFError:
            pass
        c.close()
    # Data before hello, and a request before hello.
    c = hub.BrokerClient(ctx.d.socket, hello=False)
    c.send({"type": "list"})
    err = c.expect_type("error")
    assert "hello" in err["message"], err
    c.close()
    healthy_still_flowing()


def t_bad_json():
    c = hub.BrokerClient(ctx.d.socket)
    for payload, want in [(b"{not json", r"malformed JSON"), (b"[1,2]", r"not a JSON object"),
                          (b'{"console":"x"}', r"no string member"),
                          (b'{"type":"frobnicate"}', r"unknown request"),
                          (b'{"type":"attach"}', r"needs a \"console\""),
                          (b'{"type":"attach","console":"fg","mode":"x"}', r"mode must be"),
                          (b'{"type":"attach","console":"fg","replay":-4}', r"replay must be"),
                          (b'{"type":"take"}', r"not attached")]:
        c.send_raw(b"C" + struct.pack(">I", len(payload)) + payload)
        err = c.expect_type("error")
        assert re.search(want, err["message"]), (payload, err)
    # The same connection still works.
    c.send({"type": "list"})
    assert c.expect_type("list")["consoles"]
    c.close()
    healthy_still_flowing()


def t_unauthorised_peer():
    os.chmod(ctx.wd, 0o711)
    os.chmod(ctx.d.socket, 0o666)
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        hub.TTYHUB, "--broker", ctx.d.socket, "list"],
                       capture_output=True, timeout=20)
    assert r.returncode == 1, r
    assert b"permission denied" in r.stderr, r.stderr
    assert "refused broker connection from uid 65534" in ctx.d.log()
    healthy_still_flowing()


def t_vanishing_clients():
    fds = ctx.d.fd_count()
    for i in range(100):
        s = socket.socket(socket.AF_UNIX)
        s.connect(ctx.d.socket)
        hello = b'{"type":"hello","version":1}'
        attach = b'{"type":"attach","console":"fg","mode":"ro","replay":"all"}'
        s.sendall(b"C" + struct.pack(">I", len(hello)) + hello +
                  b"C" + struct.pack(">I", len(attach)) + attach)
        if i % 2:
            s.recv(100)  # vanish while ttyhubd is writing the replay
        # Reset the connection (no orderly shutdown) while the broker writes to it.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    ctx.d.wait_for(lambda: ctx.d.fd_count() <= fds, what="fds back to %d" % fds)
    healthy_still_flowing()


def t_inotify_lifecycle():
    sock = os.path.join(ctx.wd, "fg2.sock")
    fg2 = subprocess.Popen([hub.FAKE_GUEST, "--socket", sock, "--rate", "5000", "--tag", "g2",
                            "--stats", sock + ".stats"])
    try:
        write_xml("vm2.xml", hub.domain_xml("vm2", U4, sock))
        ctx.d.wait_for(lambda: (ctx.d.console("vm2:serial0") or {}).get("state") == "connected",
                       what="vm2 appears")
        c = hub.BrokerClient(ctx.d.socket)
        c.send({"type": "attach", "console": "44444444-4444-4444-4444-444444444444",
                "mode": "ro"})
        assert c.expect_type("attached")["console"] == "vm2:serial0"
        c.read_data_until(b"g2 ", timeout=5)
        os.unlink(os.path.join(ctx.xmldir, "vm2.xml"))
        n = c.expect_type("notice")
        while "is gone" not in n["text"]:
            n = c.expect_type("notice")
        assert "vm2:serial0 is gone: its domain definition was removed" in n["text"], n
        assert c.expect_type("detached")
        ctx.d.wait_for(lambda: ctx.d.console("vm2:serial0") is None, what="vm2 removed")
        c.close()
    finally:
        fg2.terminate()
        fg2.wait()
    healthy_still_flowing()


def t_bad_file_keeps_old_consoles():
    """A definition that turns bad keeps serving what it defined before."""
    sock = os.path.join(ctx.wd, "fg3.sock")
    fg3 = subprocess.Popen([hub.FAKE_GUEST, "--socket", sock, "--rate", "5000", "--tag", "g3",
                            "--stats", sock + ".stats"])
    try:
        write_xml("vm3.xml", hub.domain_xml("vm3", U5, sock))
        ctx.d.wait_for(lambda: (ctx.d.console("vm3:serial0") or {}).get("state") == "connected",
                       what="vm3 appears")
        c = hub.BrokerClient(ctx.d.socket)
        c.send({"type": "attach", "console": "vm3", "mode": "ro", "replay": 0})
        c.expect_type("attached")
        write_xml("vm3.xml", "<domain><name>vm3</name>")
        ctx.d.wait_for(lambda: list_error("vm3.xml"), what="vm3 error")
        assert ctx.d.console("vm3:serial0")["state"] == "connected"
        n = len(c.data)
        c.read_data_until(b"g3 ", timeout=5)
        while len(c.data) < n + 200:
            c.pump()
        c.close()
    finally:
        fg3.terminate()
        fg3.wait()


def main():
    res = runner.Runner()
    ctx.wd = hub.workdir("bad")
    ctx.xmldir = os.path.join(ctx.wd, "xml")
    os.mkdir(ctx.xmldir)
    sock = os.path.join(ctx.wd, "fg.sock")
    fg = subprocess.Popen([hub.FAKE_GUEST, "--socket", sock, "--rate", "200000",
                           "--stats", sock + ".stats"])
    ctx.d = hub.Daemon(ctx.wd, "--domain-xml", ctx.xmldir, "--console", "fg=" + sock).start()
    try:
        ctx.d.wait_for(lambda: (ctx.d.console("fg") or {}).get("state") == "connected",
                       what="fg connected")
        ctx.healthy = hub.BrokerClient(ctx.d.socket)
        ctx.healthy.send({"type": "attach", "console": "fg", "mode": "ro", "replay": 0})
        ctx.healthy.expect_type("attached")
        for name, fn in [(n, f) for n, f in globals().items() if n.startswith("t_")]:
            res.run(name[2:].replace("_", " "), fn)
        res.run("daemon alive, healthy console intact", healthy_still_flowing)
    finally:
        ctx.d.stop()
        fg.send_signal(signal.SIGTERM)
        fg.wait()
    res.finish(ctx.wd)


if __name__ == "__main__":
    main()
