#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Names mean one thing: access patterns, name resolution and refused impostors, end to end.

A real ttyhubd reads VMs from a --domain-xml directory whose consoles are synthetic guests
(fake-guest, each tagging its lines with its VM's name); a real ttyhub-sshd is in front of
it and the real OpenSSH client connects:

* an access rule "ca*" grants cache-01 but nothing of the VM "victim", whose UUID starts with
  "ca": it is neither listed nor attachable by name, UUID or UUID:ALIAS;
* a VM named after victim's UUID (the impostor) is refused, with a clear error in the admin
  `ttyhub list`; `ssh -l VICTIM-UUID`, `attach VICTIM-UUID` and `attach victim` reach victim;
  a VM whose UUID is not canonical is refused the same way;
* a VM whose name has a backslash (kept escaped) keeps its console (and its attached
  client) when its definition file is read again.
"""

import os
import re
import select
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hub  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402

VICTIM_UUID = "cafe1234-5678-4abc-8def-0123456789ab"
CACHE_UUID = "0c0c0c0c-1111-4222-8333-444444444444"
IMPOSTOR_UUID = "0badc0de-0000-4000-8000-000000000001"
ODD_UUID = "0dd0dd00-0000-4000-8000-000000000002"
SENTINEL_UUID = "5e5e5e5e-0000-4000-8000-000000000003"
ODD_NAME = "odd\\name"  # a backslash: escaped in the console's name
ODDVM_UUID = "0de0de00-0000-4000-8000-000000000004"


KEYS = {
    "cakey": 'consoles="ca*:rw"',
    "victimkey": 'consoles="victim:rw"',
    "uuidkey": 'consoles="%s:ro"' % VICTIM_UUID,
}


class Ctx:
    pass


ctx = Ctx()


def text(b):
    return b.decode(errors="replace")


def guest(tag):
    sock = os.path.join(ctx.wd, tag + ".sock")
    p = subprocess.Popen([hub.FAKE_GUEST, "--socket", sock, "--rate", "2000", "--tag", tag])
    ctx.guests.append(p)
    return sock


def write_xml(fname, name, uuid, path):
    tmp = os.path.join(ctx.wd, ".tmp-" + fname)
    with open(tmp, "w") as f:
        f.write(hub.domain_xml(name=name, uuid=uuid, path=path))
    os.rename(tmp, os.path.join(ctx.xmldir, fname))


def admin_list():
    return ctx.d.list()


def names():
    return sorted(c["name"] for c in admin_list()["consoles"])


def exec_ssh(key, *cmd, user="console"):
    return sshhub.run_ssh(ctx.front, ctx.keys[key], user, *cmd)


def attach_output(key, user, *cmd, want=r"\n(\S+) \d{12} ", limit=20):
    """Run ssh (no tty, stdin kept open) until WANT is seen or it exits; return its output."""
    p = subprocess.Popen(sshhub.ssh_cmd(ctx.front, ctx.keys[key], user, *cmd, tty=False),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = b""
    deadline = time.monotonic() + limit
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([p.stdout], [], [], 0.2)
            if r:
                chunk = os.read(p.stdout.fileno(), 65536)
                if not chunk:
                    break
                out += chunk
                if re.search(want.encode(), out):
                    break
    finally:
        p.kill()
        p.wait()
    return text(out)


def attached_guest(out):
    """The tag of the first guest line in OUT (the VM whose console was attached)."""
    m = re.search(r"^(\S+) \d{12} ", out, re.M)
    return m.group(1) if m else None


# ---------------------------------------------------------------- M1: access patterns


def t_ca_pattern_lists_no_uuid_match():
    r = exec_ssh("cakey", "list")
    assert r.returncode == 0, r
    out = text(r.stdout)
    assert re.search(r"^cache-01:serial0\s", out, re.M), out
    assert "victim" not in out, out


def t_ca_pattern_attaches_nothing_of_victim():
    for what in ("victim", VICTIM_UUID, VICTIM_UUID + ":serial0", "victim:serial0"):
        r = exec_ssh("cakey", "attach", what, "--ro")
        assert r.returncode != 0, (what, r)
        assert "no console named" in text(r.stdout + r.stderr), (what, r)
    out = attach_output("cakey", VICTIM_UUID, want=r"no console named|\n\S+ \d{12} ")
    assert attached_guest(out) != "victim", out
    assert "victim 0" not in out, out


def t_ca_pattern_attaches_cache():
    out = attach_output("cakey", "console", "attach", "cache-01", "--ro")
    assert attached_guest(out) == "cache-01", out


# ---------------------------------------------------------------- M2: impostors


def t_impostor_refused_in_admin_list():
    lst = admin_list()
    assert not any(c["vm"] == VICTIM_UUID for c in lst["consoles"]), lst
    errs = [e for e in lst["errors"] if e["origin"].endswith("impostor.xml")]
    assert errs, lst["errors"]
    assert re.search(r"refused.*is a UUID", errs[0]["message"]), errs
    r = ctx.d.cli("list")
    out = text(r.stdout)
    assert re.search(r"^error: .*impostor\.xml: console %s:serial0 refused: "
                     % re.escape(VICTIM_UUID), out, re.M), out


def t_uuid_user_name_reaches_victim():
    out = attach_output("victimkey", VICTIM_UUID)
    assert attached_guest(out) == "victim", out
    out = attach_output("uuidkey", VICTIM_UUID)
    assert attached_guest(out) == "victim", out


def t_attach_by_name_and_uuid_reaches_victim():
    for key, what in (("victimkey", "victim"), ("victimkey", VICTIM_UUID),
                      ("uuidkey", VICTIM_UUID + ":serial0"), ("uuidkey", "victim")):
        out = attach_output(key, "console", "attach", what, "--ro")
        assert attached_guest(out) == "victim", (key, what, out)


def t_cli_attach_resolves_victim():
    c = hub.BrokerClient(ctx.d.socket)
    try:
        c.send({"type": "attach", "console": VICTIM_UUID, "mode": "ro", "replay": 0})
        msg = c.expect_type("attached")
        assert msg["console"] == "victim:serial0", msg
    finally:
        c.close()


def t_non_canonical_uuid_refused():
    write_xml("braces.xml", "braces", "{%s}" % ODD_UUID, ctx.sock_braces)
    msg = ctx.d.wait_for(lambda: next((e["message"] for e in admin_list()["errors"]
                                       if e["origin"].endswith("braces.xml")), None),
                         what="error for braces.xml")
    assert "not canonical" in msg, msg
    assert not any(n.startswith("braces") for n in names())


def t_refusal_cleared_when_definition_goes():
    os.unlink(os.path.join(ctx.xmldir, "braces.xml"))
    ctx.d.wait_for(lambda: not any(e["origin"].endswith("braces.xml")
                                   for e in admin_list()["errors"]),
                   what="braces.xml error cleared")
    # fixed: the same VM with a canonical UUID is added and no error remains
    write_xml("braces.xml", "braces", ODD_UUID, ctx.sock_braces)
    ctx.d.wait_for(lambda: "braces:serial0" in names(), what="braces added")
    assert not any(e["origin"].endswith("braces.xml") for e in admin_list()["errors"])


# ---------------------------------------------------------------- I2: escaped names


def t_escaped_name_survives_reload():
    lst = admin_list()
    odd = [c for c in lst["consoles"] if c["vm"].startswith("odd")]
    assert len(odd) == 1, lst
    name = odd[0]["name"]
    c = hub.BrokerClient(ctx.d.socket)
    try:
        c.send({"type": "attach", "console": name, "mode": "ro", "replay": 0})
        c.expect_type("attached")
        before = ctx.d.log().count("removed: its definition changed")
        # read the same definition again, then a sentinel file, so the first was handled
        write_xml("odd.xml", ODD_NAME, ODDVM_UUID,
                  ctx.sock_odd)
        write_xml("sentinel.xml", "sentinel", SENTINEL_UUID, ctx.sock_odd2)
        ctx.d.wait_for(lambda: "sentinel:serial0" in names(), what="sentinel added")
        assert ctx.d.log().count("removed: its definition changed") == before, ctx.d.log()
        assert name in names()
        c.read_data_until(b"odd", timeout=10)
        assert not any(m.get("type") == "detached" for m in c.messages), c.messages
    finally:
        c.close()


def main():
    res = runner.Runner()
    ctx.wd = hub.workdir("names")
    ctx.xmldir = os.path.join(ctx.wd, "xml")
    os.mkdir(ctx.xmldir)
    ctx.guests = []
    try:
        write_xml("victim.xml", "victim", VICTIM_UUID, guest("victim"))
        write_xml("cache.xml", "cache-01", CACHE_UUID, guest("cache-01"))
        write_xml("impostor.xml", VICTIM_UUID, IMPOSTOR_UUID, guest("impostor"))
        ctx.sock_braces = guest("braces")
        ctx.sock_odd = guest("odd")
        ctx.sock_odd2 = guest("sentinel")
        write_xml("odd.xml", ODD_NAME, ODDVM_UUID,
                  ctx.sock_odd)
        ctx.d = hub.Daemon(ctx.wd, "--domain-xml", ctx.xmldir, "--front-user", "root").start()
        ctx.d.wait_for(lambda: all((ctx.d.console(n) or {}).get("state") == "connected"
                                   for n in ("victim:serial0", "cache-01:serial0")),
                       what="guests connected")
        ctx.keys = {}
        lines = []
        for k, opts in KEYS.items():
            ctx.keys[k], pub = sshhub.make_key(ctx.wd, k)
            lines.append(opts + " " + pub)
        ctx.front = sshhub.SshFront(os.path.join(ctx.wd, "sshd"), ctx.d.socket, lines)
        for name, fn in [(n, f) for n, f in globals().items() if n.startswith("t_")]:
            res.run(name[2:].replace("_", " "), fn)
    finally:
        ctx.d.stop()
        for g in ctx.guests:
            g.send_signal(signal.SIGTERM)
            g.wait()
    res.finish(ctx.wd)


if __name__ == "__main__":
    main()
