# SPDX-License-Identifier: MIT
"""Test harness for the gateway (issue 16): N "hosts" and one gateway on one machine.

The model: a Host is what one hypervisor runs, its own ttyhubd (hub.Daemon under the fake
service manager, so restart() keeps its rings) and its own ttyhub-sshd (HostFront) bound to
a loopback address of its own (127.0.1.1, 127.0.1.2, ...: the whole of 127/8 is loopback) on
a port chosen once and kept across restarts, as a real host's port is.  Its consoles are
synthetic guests (FakeGuest: tests/fake-guest with an input log, served with --console NAME)
and, when asked, one real QEMU guest (guest.Guest, served through --domain-xml).

A Gateway is what the gateway machine runs: its own ttyhubd with --no-consoles (it holds only
the gateway's access file: who may log in and with which rights) and ttyhub-sshd with
--gateway HOSTS_FILE --gateway-key KEY.  The hosts file names every host with its address,
port and pinned host key (written from each HostFront's host key); every host's access file
holds a line for the gateway key with the `gateway` option and that host's limit, e.g.
`gateway,consoles="web*:rw",break ssh-ed25519 AAAA... gw@gateway`.

With web=True the gateway also serves the web front (ttyhub-sshd(8) GATEWAY): its ttyhubd has
--web-url WEB_URL, its ttyhub-sshd --gateway-socket SOCKET, and a webhub.WebFront
(ttyhub-webd) runs with --broker SOCKET: links minted on the gateway open consoles on the hosts.

Users are SSH keys made once per GwHub (GwHub.keys: name -> (private path, public line));
a user's line on the gateway says what the gateway grants, a line on a host (optional) what
that host grants the key by itself.  Users reach the gateway with the real OpenSSH client
(Gateway.ssh_cmd / run / list) or a host directly (Host.ssh_cmd / run).

Every process started is a proc.Service (or stopped by GwHub.stop()), so the runner checks
that each exited cleanly.  Stdlib only; run with /usr/bin/python3.
"""

import getpass
import json
import os
import signal
import socket
import subprocess
from typing import Optional

import hub
import runner
import sshhub

#: The gateway's defaults (ttyhub-sshd(8)): a host that does not answer a list within this
#: many milliseconds is shown unreachable.
LIST_DEADLINE_MS = 2000
#: The gateway's keepalive interval (seconds); 3 missed mean the link is dead.
KEEPALIVE_S = 10
#: The gateway ttyhubd's --web-url with web=True (any URL: tests take the token out of a link).
WEB_URL = "https://gateway.example/"


def host_address(i: int) -> str:
    """The loopback address of host number I (1-based): 127.0.1.I."""
    return "127.0.1.%d" % i


#: True once ADDRESS:PORT answers with an SSH identification line (sshhub.probe).
probe = sshhub.probe


def free_port_on(address: str) -> int:
    """A port free on ADDRESS a moment ago.  An address that is not ours (a host in another
    network namespace, whose ports are all free): any port free here."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((address, 0))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def daemon_identity_args() -> tuple[bool, list[str]]:
    """(guest_root, extra args) so that the fronts (run as this user) may assert principals
    and the guests (run as this user) are accepted as chardev peers, root or not."""
    me = getpass.getuser()
    if os.geteuid() == 0:
        return True, ["--front-user", me]
    return False, ["--front-user", me, "--guest-user", str(os.getuid())]


class FakeGuest:
    """tests/fake-guest on WD/NAME.sock: numbered lines tagged NAME at RATE bytes/s, every
    byte it receives appended to WD/NAME.input."""

    def __init__(self, wd: str, name: str, rate: int = 64 * 50, line_length: int = 64):
        self.name = name
        self.sock = os.path.join(wd, name + ".sock")
        self.input_log = os.path.join(wd, name + ".input")
        self.argv = [hub.FAKE_GUEST, "--socket", self.sock, "--rate", str(rate), "--tag", name,
                     "--line-length", str(line_length), "--input-log", self.input_log]
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "FakeGuest":
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL)
        runner.wait_until(lambda: os.path.exists(self.sock) or self.proc.poll() is not None,
                          20, "fake-guest %s to listen" % self.name)
        if self.proc.poll() is not None:
            raise AssertionError("fake-guest %s exited with %s" % (self.name,
                                                                   self.proc.returncode))
        return self

    def input(self) -> bytes:
        """Everything the guest has received so far."""
        try:
            with open(self.input_log, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class HostFront(sshhub.SshFront):
    """ttyhub-sshd on ADDRESS:PORT, the port kept across restarts (the hosts file names it).
    wrap: a command prefix (e.g. ["ip", "netns", "exec", NS]) to run it elsewhere."""

    def __init__(self, workdir, broker_socket, access_lines, address, port=None, wrap=(),
                 extra_args=(), start=True):
        self.address = address
        self.fixed_port = port
        self.wrap = list(wrap)
        super().__init__(workdir, broker_socket, access_lines, extra_args=extra_args,
                         start=start)

    def prepare(self) -> None:
        if self.fixed_port is None:
            self.fixed_port = free_port_on(self.address)
        self.port = self.fixed_port

    def command(self) -> list[str]:
        return self.wrap + [sshhub.SSHD, "--listen", "%s:%d" % (self.address, self.port),
                            "--host-key", self.host_key, "--broker", self.broker] + \
            self.extra_args

    def ready(self) -> bool:
        return probe(self.address, self.port)

    def host_key_line(self) -> str:
        """The public host key as "KEYTYPE BASE64" (the hosts file's last two fields)."""
        out = subprocess.run(["ssh-keygen", "-y", "-f", self.host_key], check=True,
                             capture_output=True, stdin=subprocess.DEVNULL).stdout.decode()
        keytype, b64 = out.split()[:2]
        return "%s %s" % (keytype, b64)

    def new_host_key(self, slash_first: Optional[bool] = False) -> None:
        """Replace the host key with a fresh one (takes effect at the next start()).  See
        make_host_key() for slash_first."""
        make_host_key(self.host_key, slash_first)

    def fingerprint(self) -> str:
        return sshhub.fingerprint(self.host_key)


def make_host_key(path: str, slash_first: Optional[bool] = False) -> None:
    """An ed25519 host key at PATH (replacing any).  One fingerprint in 64 starts with '/'
    ("SHA256:/..."), which text filters may take for a path: slash_first=False makes sure
    this one does not (so that a check is about what it says, whatever the random key),
    True that it does (the check for that case), None takes the first key made."""
    for _ in range(5000):
        for p in (path, path + ".pub"):
            if os.path.exists(p):
                os.unlink(p)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ttyhub-test host",
                        "-f", path], check=True, stdin=subprocess.DEVNULL, capture_output=True)
        if slash_first is None or sshhub.fingerprint(path).startswith("SHA256:/") == slash_first:
            return
    raise AssertionError("no host key with the fingerprint wanted in 5000 tries")


class Host:
    """One host: ttyhubd (managed) + ttyhub-sshd on its own loopback address.

    fakes: names of synthetic guests (fake-guest, --console NAME); sockets: {NAME: path} of
    chardev sockets the caller serves (the benchmarks' guests); qemu: name of a real QEMU
    guest (or None), its console NAME:serial0.  gateway_line: the options of the
    gateway key's line here (the `gateway` option is added).  user_lines: {user: options}
    for keys that may also log in here directly (options None: no line).
    """

    def __init__(self, hubs: "GwHub", index: int, name: str, fakes=(), qemu=None,
                 gateway_line='consoles="*:rw",break', user_lines=None, fake_rate=64 * 50,
                 address=None, wrap=(), front_args=(), sockets=None):
        self.hubs = hubs
        self.name = name
        self.address = address or host_address(index)
        self.wd = os.path.join(hubs.wd, name)
        os.makedirs(self.wd, exist_ok=True)
        self.gateway_line = gateway_line
        self.user_lines = dict(user_lines or {})
        self.fakes = {n: FakeGuest(self.wd, n, rate=fake_rate) for n in fakes}
        self.qemu = None
        self.qemu_name = qemu
        self.wrap = list(wrap)
        self.sockets = dict(sockets or {})  # consoles whose guests the caller runs
        args = []
        for n, path in [(n, g.sock) for n, g in self.fakes.items()] + list(self.sockets.items()):
            args += ["--console", "%s=%s" % (n, path)]
        if qemu:
            import guest as G  # noqa: PLC0415 - QEMU only when a host has a real guest
            self.qemu = G.Guest(self.wd, qemu, start=False)
            xmldir = os.path.join(self.wd, "xml")
            os.makedirs(xmldir, exist_ok=True)
            with open(os.path.join(xmldir, qemu + ".xml"), "w") as f:
                f.write(self.qemu.domain_xml("domain"))
            args += ["--domain-xml", xmldir]
        guest_root, ident = daemon_identity_args()
        self.daemon = hub.Daemon(self.wd, *(ident + args), guest_root=guest_root,
                                 managed=True)
        self.front: Optional[HostFront] = None
        self.front_args = list(front_args)

    # -- life cycle ---------------------------------------------------------------------

    def start(self) -> "Host":
        for g in self.fakes.values():
            g.start()
        if self.qemu is not None:
            self.qemu.start()
        self.daemon.start()
        front_wd = os.path.join(self.wd, self.name + "-sshd")
        os.makedirs(front_wd, exist_ok=True)
        if not os.path.exists(os.path.join(front_wd, "hostkey")):
            make_host_key(os.path.join(front_wd, "hostkey"))
        self.front = HostFront(front_wd,
                               self.daemon.socket, self.access_lines(), self.address,
                               wrap=self.wrap, extra_args=self.front_args)
        self.daemon.wait_for(lambda: self.consoles_connected(), timeout=60,
                             what="every console of %s connected" % self.name)
        return self

    def consoles(self) -> list[str]:
        """The console names ttyhubd serves here (as the host itself names them)."""
        names = list(self.fakes) + list(self.sockets)
        if self.qemu_name:
            names.append(self.qemu_name + ":serial0")
        return names

    def consoles_connected(self) -> bool:
        states = {c["name"]: c["state"] for c in self.daemon.list()["consoles"]}
        return all(states.get(n) == "connected" for n in self.consoles())

    def access_lines(self) -> list[str]:
        lines = ["%s %s" % (("gateway," + self.gateway_line) if self.gateway_line
                            else "gateway", self.hubs.gw_pub)]
        for user, opts in self.user_lines.items():
            if opts is not None:
                pub = self.hubs.keys[user][1]
                lines.append(pub if opts == "" else opts + " " + pub)
        return lines

    def set_access(self, gateway_line=None, user_lines=None) -> None:
        """Change this host's access file and reload it (ttyhubd and ttyhub-sshd)."""
        if gateway_line is not None:
            self.gateway_line = gateway_line
        if user_lines is not None:
            self.user_lines = dict(user_lines)
        self.front.write_access(self.access_lines())
        self.front.reload()

    def hosts_file_line(self) -> str:
        return "%s %s:%d %s" % (self.name, self.address, self.front.port,
                                self.front.host_key_line())

    def signal(self, sig: int) -> None:
        """Send SIG to both processes of the host (SIGSTOP / SIGCONT: freeze it)."""
        for p in (self.front.proc if self.front else None, self.daemon.proc):
            if p is not None and p.poll() is None:
                p.send_signal(sig)

    def stop(self) -> None:
        self.signal(signal.SIGCONT)
        if self.front is not None:
            self.front.stop()
        self.daemon.stop()
        for g in self.fakes.values():
            g.stop()
        if self.qemu is not None:
            self.qemu.stop()

    # -- direct access (not through the gateway) -----------------------------------------

    def ssh_cmd(self, user: str, login: str, *cmd, tty=True, options=()):
        return sshhub.ssh_cmd(self.front, self.hubs.keys[user][0], login, *cmd, tty=tty,
                              options=options, host=self.address)

    def run(self, user: str, login: str, *cmd, timeout=30):
        return sshhub.run_ssh(self.front, self.hubs.keys[user][0], login, *cmd,
                              timeout=timeout, host=self.address)


class GatewayFront(sshhub.SshFront):
    """ttyhub-sshd --gateway on 127.0.0.1 (a fresh free port at every start)."""

    def __init__(self, workdir, broker_socket, access_lines, hosts_file, key,
                 extra_args=(), start=True):
        self.hosts_file = hosts_file
        self.gateway_key = key
        args = ["--gateway", hosts_file, "--gateway-key", key] + list(extra_args)
        super().__init__(workdir, broker_socket, access_lines, extra_args=args, start=start)


class Gateway:
    """The gateway: ttyhubd --no-consoles + ttyhub-sshd --gateway HOSTS_FILE.

    user_lines: {user: options} of the gateway's access file (what the gateway grants).
    web: also serve the web front (ttyhub-webd on ttyhub-sshd's --gateway-socket, at
    web_socket or WD/gw-web.sock); self.web is its webhub.WebFront once started."""

    def __init__(self, hubs: "GwHub", user_lines, front_args=(), web=False, web_socket=None):
        self.hubs = hubs
        self.wd = os.path.join(hubs.wd, "gw")
        os.makedirs(self.wd, exist_ok=True)
        self.user_lines = dict(user_lines)
        self.hosts_file = os.path.join(self.wd, "hosts")
        guest_root, ident = daemon_identity_args()
        web_args = ["--web-url", WEB_URL] if web else []
        self.daemon = hub.Daemon(self.wd, "--no-consoles", *ident, *web_args,
                                 guest_root=guest_root)
        self.front: Optional[GatewayFront] = None
        self.front_args = list(front_args)
        self.web = None
        self.web_socket = None
        if web:
            self.web_socket = web_socket or os.path.join(self.wd, "gw-web.sock")
            self.front_args += ["--gateway-socket", self.web_socket]

    def access_lines(self) -> list[str]:
        out = []
        for user, opts in self.user_lines.items():
            pub = self.hubs.keys[user][1]
            out.append(pub if not opts else opts + " " + pub)
        return out

    def write_hosts(self, hosts) -> None:
        tmp = self.hosts_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("# NAME ADDRESS:PORT KEYTYPE BASE64 (written by gwhub.py)\n")
            for h in hosts:
                f.write(h.hosts_file_line() + "\n")
        os.rename(tmp, self.hosts_file)

    def start(self, hosts, preferred_port=None) -> "Gateway":
        self.write_hosts(hosts)
        self.daemon.start()
        self.front = GatewayFront(os.path.join(self.wd, "gw-sshd"), self.daemon.socket,
                                  self.access_lines(), self.hosts_file, self.hubs.gw_key,
                                  extra_args=self.front_args, start=False)
        self.front.preferred_port = preferred_port
        self.front.start()
        if self.web_socket:
            import webhub  # noqa: PLC0415 - the web front only when asked for
            self.web = webhub.WebFront(os.path.join(self.wd, "webd"), self.web_socket)
        return self

    def stop(self) -> None:
        if self.web is not None:
            self.web.stop()
        if self.front is not None:
            self.front.stop()
        self.daemon.stop()

    # -- users --------------------------------------------------------------------------

    def ssh_cmd(self, user: str, login: str, *cmd, tty=True, options=()):
        return sshhub.ssh_cmd(self.front, self.hubs.keys[user][0], login, *cmd, tty=tty,
                              options=options)

    def run(self, user: str, *cmd, login="console", timeout=60):
        """`ssh -T USER@gateway CMD...` with USER's key; CompletedProcess (bytes)."""
        return sshhub.run_ssh(self.front, self.hubs.keys[user][0], login, *cmd,
                              timeout=timeout)

    def list(self, user: Optional[str] = None, timeout=60) -> dict:
        """`list --json` through the gateway, as USER (default: the first user of the
        gateway's access file); AssertionError unless it succeeds."""
        r = self.run(user or next(iter(self.user_lines)), "list", "--json", timeout=timeout)
        if r.returncode != 0:
            raise AssertionError("list --json through the gateway failed (%s): %r\n%s"
                                 % (r.returncode, r.stdout + r.stderr, self.log_tail()))
        try:
            return json.loads(r.stdout)
        except ValueError:
            raise AssertionError("list --json through the gateway: not JSON: %r"
                                 % r.stdout[:2000]) from None

    def host_states(self, user: Optional[str] = None) -> dict:
        """{host name: (state, error)} from list --json."""
        return {h["name"]: (h.get("state"), h.get("error"))
                for h in self.list(user).get("hosts", [])}

    def wait_up(self, names, user=None, timeout=90) -> None:
        """Wait until list --json shows every host in NAMES up."""
        last = {}

        def up():
            nonlocal last
            try:
                last = self.host_states(user)
            except (AssertionError, subprocess.TimeoutExpired) as e:
                last = {"error": str(e)[:500]}
                return False
            return all(last.get(n, (None,))[0] == "up" for n in names)
        try:
            runner.wait_until(up, timeout, "hosts %s up on the gateway" % ", ".join(names),
                              interval=0.5)
        except AssertionError as e:
            raise AssertionError("%s (last: %r)\n%s" % (e, last, self.log_tail())) from None

    def log_tail(self, n=2500) -> str:
        out = ""
        if self.web is not None:
            out += "--- gateway ttyhub-webd ---\n" + self.web.log()[-n:] + "\n"
        if self.front is not None:
            out += "--- gateway ttyhub-sshd ---\n" + self.front.log()[-n:] + "\n"
        out += "--- gateway ttyhubd ---\n" + self.daemon.log()[-n // 2:]
        return out


class GwHub:
    """N hosts and a gateway in one work directory.

    users: names of the user keys to make (the gateway's own key, gw_key, is always made).
    """

    def __init__(self, wd: str, users=("alice",)):
        self.wd = wd
        os.makedirs(wd, exist_ok=True)
        self.keys = {u: sshhub.make_key(wd, u) for u in users}
        self.gw_key, self.gw_pub = sshhub.make_key(wd, "gateway-key", comment="gw@gateway")
        self.hosts: list[Host] = []
        self.gateway: Optional[Gateway] = None

    def add_host(self, name: str, **kw) -> Host:
        h = Host(self, len(self.hosts) + 1, name, **kw)
        self.hosts.append(h)
        return h

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def start_hosts(self) -> None:
        for h in self.hosts:
            h.start()

    def start_gateway(self, user_lines, front_args=(), preferred_port=None, web=False,
                      web_socket=None) -> Gateway:
        """Write the hosts file, start the gateway's ttyhubd and ttyhub-sshd (on
        PREFERRED_PORT when it is free), and with WEB its ttyhub-webd (see Gateway)."""
        self.gateway = Gateway(self, user_lines, front_args=front_args, web=web,
                               web_socket=web_socket)
        self.gateway.start(self.hosts, preferred_port=preferred_port)
        return self.gateway

    def fingerprint(self, user: str) -> str:
        return sshhub.fingerprint(self.keys[user][0])

    def logs(self, n=1500) -> str:
        """Every daemon's log tail, for a failing check."""
        out = []
        if self.gateway is not None:
            out.append(self.gateway.log_tail(n))
        for h in self.hosts:
            if h.front is not None:
                out.append("--- %s ttyhub-sshd ---\n%s" % (h.name, h.front.log()[-n:]))
            out.append("--- %s ttyhubd ---\n%s" % (h.name, h.daemon.log()[-n // 2:]))
        return "\n".join(out)

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        for h in reversed(self.hosts):
            h.stop()


def gateway_supported() -> bool:
    """Whether this build's ttyhub-sshd has the gateway mode (--gateway in its --help)."""
    try:
        r = subprocess.run([sshhub.SSHD, "--help"], capture_output=True, timeout=20,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"--gateway" in r.stdout + r.stderr


#: OpenSSH with its output collected (sshhub.SshClient).
SshClient = sshhub.SshClient
