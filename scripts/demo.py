#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""ttyhub demo (run it through scripts/demo, which builds first).

Boots two guests under QEMU: demo1 with a 16550 console (ttyS0) on a UNIX
socket, demo2 with ttyS0 and a virtio console (hvc0).  Their libvirt-style
domain XML goes into a directory that ttyhubd watches.  The guests start
paused and are resumed once ttyhubd holds their consoles, so the whole boot
is in the history and replays on attach.  ttyhub-sshd and ttyhub-webd (plain
HTTP on a free loopback port: loopback only) serve the same consoles; the demo
prints a one-time web link minted with `ttyhub web-link`.

With --hosts N it shows the gateway instead (issue 16): N hosts, each its own ttyhubd and
ttyhub-sshd on its own loopback address (127.0.1.1, 127.0.1.2, ...) with a synthetic guest
"web" printing a line a second, a QEMU guest "vm" on the second host, and a gateway
(ttyhubd --no-consoles + ttyhub-sshd --gateway) on 127.0.0.1:2222 (or a free port) in front
of them; it prints how to reach the guest on the second host through the gateway.
"""

import argparse
import getpass
import http.client
import os
import shutil
import signal
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
os.environ.setdefault("TTYHUB_BUILD", os.path.join(TOP, "build"))
import guest as G  # noqa: E402
import gwhub  # noqa: E402
import hub  # noqa: E402
import net  # noqa: E402
import runner  # noqa: E402
import sshhub  # noqa: E402
import webhub  # noqa: E402


class DemoWebFront(webhub.WebFront):
    """ttyhub-webd on the port ttyhubd's --web-url names (chosen before ttyhubd starts)."""

    def __init__(self, workdir, broker_socket, port, **kw):
        self.pinned = port
        super().__init__(workdir, broker_socket, **kw)

    def prepare(self):
        self.port = self.pinned


def web_link(d, console="demo1"):
    """A one-time link to CONSOLE, as `ttyhub web-link` prints it (valid for 60 s)."""
    r = d.cli("web-link", console)
    if r.returncode != 0:
        raise RuntimeError("ttyhub web-link %s: %s" % (console, r.stderr.decode().strip()))
    return r.stdout.decode().strip()


def check_web(d, web):
    """ttyhub-webd serves the page, and a fresh link's token buys a session."""
    c = http.client.HTTPConnection(web.host, web.port, timeout=20)
    try:
        c.request("GET", "/")
        r = c.getresponse()
        page = r.read()
        assert r.status == 200 and b"/static/app.js" in page, (r.status, page[:200])
        assert "script-src 'self'" in (r.getheader("Content-Security-Policy") or "")
    finally:
        c.close()
    status, obj, cookie = web.redeem(webhub.token_of(web_link(d)))
    assert status == 200 and cookie, (status, obj)


def start_front(wd, broker):
    """ttyhub-sshd (sshhub.SshFront, on port 2222 when free) with a demo key that may use
    every demo console; returns (front, ssh argv builder)."""
    key = os.path.join(wd, "demo_key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "demo@ttyhub",
                    "-f", key], check=True)
    with open(key + ".pub") as f:
        pub = f.read().strip()
    front = sshhub.SshFront(wd, broker, [
        "# demo: this key may write to every demo console and send breaks",
        f'consoles="demo*:rw",break {pub}'], start=False)
    front.preferred_port = 2222
    front.start()
    hostpub = subprocess.run(["ssh-keygen", "-y", "-f", front.host_key],
                             capture_output=True, check=True).stdout.decode().strip()
    known_hosts = os.path.join(wd, "known_hosts")
    with open(known_hosts, "w") as f:
        f.write(f"[127.0.0.1]:{front.port} {hostpub}\n")

    def command(user: str) -> list[str]:
        return ["ssh", "-p", str(front.port), "-i", key, "-o", "IdentitiesOnly=yes",
                "-o", "UserKnownHostsFile=" + known_hosts, user + "@127.0.0.1"]
    return front, command


def check(d, ssh_command):
    """Every console answers a command through `ttyhub attach`, and over SSH."""
    for console in ("demo1", "demo2", "demo2:console1"):
        p = G.Pty(d.cli_cmd("attach", console))
        try:
            p.expect(r"attached to \S+ read-write")
            G.sync_shell(p, timeout=60)
            p.send("echo $((6*7))\r")
            p.expect(rb"(?m)^42\r?$", timeout=20)
            p.send(b"\x05c.")
            assert p.wait(10) == 0
        finally:
            p.close()
        print("demo check: %s answers" % console, flush=True)
    p = G.Pty(["ssh", "-tt"] + ssh_command("demo2:console1")[1:])
    try:
        p.expect(r"attached to demo2:console1 read-write")
        G.sync_shell(p, timeout=60)
        p.send("echo $((6*7))\r")
        p.expect(rb"(?m)^42\r?$", timeout=20)
        p.send(b"\x05c.")
        assert p.wait(10) == 0
    finally:
        p.close()
    print("demo check: demo2:console1 answers over SSH", flush=True)


def gateway_known_hosts(wd, front):
    """A known_hosts file for the gateway's ttyhub-sshd; returns its path."""
    hostpub = subprocess.run(["ssh-keygen", "-y", "-f", front.host_key],
                             capture_output=True, check=True).stdout.decode().strip()
    path = os.path.join(wd, "known_hosts")
    with open(path, "w") as f:
        f.write(f"[127.0.0.1]:{front.port} {hostpub}\n")
    return path


def check_hosts(hubs, ssh_command):
    """Every host is up on the gateway, the merged list names every host's consoles, and the
    QEMU guest on the second host answers through the gateway (by bare name and HOST/NAME)."""
    gw = hubs.gateway
    gw.wait_up([h.name for h in hubs.hosts], user="demo")
    names = {c["name"] for c in gw.list("demo")["consoles"]}
    for h in hubs.hosts:
        for c in h.consoles():
            assert "%s/%s" % (h.name, c) in names, (h.name, c, sorted(names))
    vm_host = hubs.hosts[1 if len(hubs.hosts) > 1 else 0].name
    for login in ("vm", vm_host + "/vm"):
        p = G.Pty(["ssh", "-tt"] + ssh_command(login)[1:])
        try:
            p.expect(r"attached to \S+ read-write", timeout=60)
            G.sync_shell(p, timeout=120)
            p.send("echo $((6*7))\r")
            p.expect(rb"(?m)^42\r?$", timeout=30)
            p.send(b"\x05c.")
            assert p.wait(20) == 0
        finally:
            p.close()
        print("demo check: %s answers through the gateway" % login, flush=True)


def main_hosts(args):
    """The gateway demo: N hosts and a gateway (see the module's docstring)."""
    n = args.hosts
    wd = args.dir
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(wd)
    hubs = gwhub.GwHub(wd, users=("demo",))
    vm_index = 1 if n > 1 else 0
    for i in range(n):
        hubs.add_host("h%d" % (i + 1), fakes=("web",), qemu="vm" if i == vm_index else None,
                      fake_rate=64)
    res = runner.Runner() if args.check else None
    status = 0
    try:
        hubs.start_hosts()
        gw = hubs.start_gateway({"demo": 'consoles="*:rw",break'}, preferred_port=2222)
        key = hubs.keys["demo"][0]
        known_hosts = gateway_known_hosts(wd, gw.front)

        def command(user):
            return ["ssh", "-p", str(gw.front.port), "-i", key, "-o", "IdentitiesOnly=yes",
                    "-o", "UserKnownHostsFile=" + known_hosts, user + "@127.0.0.1"]
        if res is not None:
            res.run("the gateway lists every host and reaches the guest on the second host",
                    check_hosts, hubs, command)
            return 0
        gw.wait_up([h.name for h in hubs.hosts], user="demo", timeout=120)
        vm_host = hubs.hosts[vm_index].name
        ssh = " ".join(command(vm_host + "/vm"))
        ssh_ = ssh[:-len(vm_host + "/vm@127.0.0.1")]
        print(gw.run("demo", "list").stdout.decode())
        print("""ttyhub gateway demo is running: {n} hosts, each its own ttyhubd and ttyhub-sshd
on its own loopback address ({addrs}), and a gateway in front of them on
127.0.0.1:{port} (ttyhubd --no-consoles, ttyhub-sshd --gateway {hosts_file}).

Reach the QEMU guest on the second host ({vm_host}) through the gateway:

  {ssh}          # HOST/NAME always works
  {ssh_}vm@127.0.0.1             # a bare name works while it is unique
  {ssh_}{vm_host}/vm+ro@127.0.0.1      # watch read-only
  {ssh_}x@127.0.0.1 list         # every host's consoles: web is on each, type h1/web

Inside a console: Ctrl-E c ? for help, Ctrl-E c . to detach.
Logs: {wd}/HOST and {wd}/gw. Press Ctrl-C here to stop the demo.
""".format(n=n, addrs=", ".join(h.address for h in hubs.hosts), port=gw.front.port,
           hosts_file=gw.hosts_file, vm_host=vm_host, ssh=ssh, ssh_=ssh_, wd=wd), flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        print("\nstopping the demo", flush=True)
    except Exception as e:  # noqa: BLE001 - say what went wrong, then clean up
        print("demo failed: %s" % e, file=sys.stderr)
        if res is not None:
            res.failed += 1
            print(hubs.logs(), flush=True)
        status = 1
    finally:
        hubs.stop()
        if res is not None:
            res.finish()
    return status


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="verify every console answers, then stop")
    ap.add_argument("--dir", default=os.environ.get("TTYHUB_DEMO_DIR", "/tmp/ttyhub-demo"))
    ap.add_argument("--hosts", type=int, default=0, metavar="N",
                    help="N hosts (1..9) and a gateway in front of them instead")
    args = ap.parse_args()
    if args.hosts:
        if not 1 <= args.hosts <= 9:
            ap.error("--hosts: 1 to 9")
        return main_hosts(args)

    wd = args.dir
    shutil.rmtree(wd, ignore_errors=True)
    os.makedirs(os.path.join(wd, "domains"))
    guests = [G.Guest(wd, "demo1", extra_args=("-S",), start=False),
              G.Guest(wd, "demo2", virtio_console=True, extra_args=("-S",), start=False)]
    for g in guests:
        with open(os.path.join(wd, "domains", g.name + ".xml"), "w") as f:
            f.write(g.domain_xml("domain"))
    web_port = net.free_port(preferred=8443)
    # The demo's ttyhub-sshd and ttyhub-webd run as this user too: let it assert SSH principals.
    # Its QEMUs run as this user (root or not): name it as the only chardev peer.
    d = hub.Daemon(wd, "--domain-xml", os.path.join(wd, "domains"),
                   "--front-user", getpass.getuser(), "--guest-user", str(os.getuid()),
                   "--web-url", "http://127.0.0.1:%d/" % web_port, guest_root=False)
    front = web = None
    status = 0
    # --check: the checks, and every daemon's clean exit, go through the test runner.
    res = runner.Runner() if args.check else None
    try:
        d.start()
        front, ssh_command = start_front(wd, d.socket)
        web = DemoWebFront(os.path.join(wd, "webd"), d.socket, web_port)
        for g in guests:
            g.start()
        d.wait_for(lambda: all(c["state"] == "connected" for c in d.list()["consoles"]),
                   timeout=20, what="ttyhubd connected to every console")
        for g in guests:
            g.qmp({"execute": "cont"})
        ttyhub = os.path.relpath(hub.TTYHUB) if not os.path.relpath(
            hub.TTYHUB).startswith("..") else hub.TTYHUB
        print(d.cli("list").stdout.decode())
        if res is not None:
            res.run("every demo console answers, locally and over SSH", check, d, ssh_command)
            res.run("ttyhub-webd serves the page and redeems a web link", check_web, d, web)
            return 0
        ssh = " ".join(ssh_command("demo1"))
        print("""ttyhub demo is running: two QEMU guests, ttyhubd on {sock}

Attach over SSH (one port for every console; the first user writes):

  {ssh}                 # ttyS0 of demo1
  {ssh_}demo2:console1@127.0.0.1       # hvc0 of demo2 (virtio console)
  {ssh_}demo1+ro@127.0.0.1             # watch read-only
  {ssh_}console@127.0.0.1              # a menu of consoles
  {ssh_}x@127.0.0.1 list               # list (also: who demo1)

in a browser (a one-time link: open it within 60 s):

  {link}

  (another: {t} --broker {sock} web-link demo1 [--ro]
   or over SSH: {ssh_}x@127.0.0.1 web-link demo1 [--ro])

or locally, with the ttyhub CLI:

  {t} --broker {sock} attach demo1              # ttyS0 of demo1
  {t} --broker {sock} attach demo2              # ttyS0 of demo2
  {t} --broker {sock} attach demo2:console1     # hvc0 of demo2 (virtio console)
  {t} --broker {sock} attach demo1 --ro         # watch read-only
  {t} --broker {sock} attach demo1 --force      # take the writer role
  {t} --broker {sock} list | who demo1

Inside a console: Ctrl-E c ? for help, Ctrl-E c . to detach, Ctrl-E c f to take over.
(Tip: export TTYHUB_BROKER={sock} and drop --broker.)
Logs: {wd}. Press Ctrl-C here to stop the demo.
""".format(t=ttyhub, sock=d.socket, wd=wd, ssh=ssh, ssh_=ssh[:-len("demo1@127.0.0.1")],
           link=web_link(d)),
              flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        print("\nstopping the demo", flush=True)
    except Exception as e:  # noqa: BLE001 - say what went wrong, then clean up
        print("demo failed: %s" % e, file=sys.stderr)
        status = 1
    finally:
        if web:
            web.stop()
        if front:
            front.stop()
        d.stop()
        for g in guests:
            g.stop()
        if res is not None:
            res.finish()  # exits: 0 only when the check ran and passed and both exited cleanly
    return status


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    sys.exit(main())
