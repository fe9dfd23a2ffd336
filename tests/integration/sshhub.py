# SPDX-License-Identifier: MIT
"""Test harness for ttyhub-sshd: start the real SSH front on a free loopback port (bound
by itself or socket-activated through systemd-socket-activate), make client keys with
ssh-keygen, and build command lines for the real OpenSSH client.

Stdlib only; run with /usr/bin/python3.  The binary is $TTYHUB_BUILD/ssh-front/ttyhub-sshd
(see hub.BUILD).

An SshFront is a proc.Service: once started it registers with the runner a check that it
exited with status 0 on SIGTERM and logged no sanitizer report (runner.Runner.finish() stops
it and runs that check, as for ttyhubd).

The ttyhubd a front talks to must accept it as a front: start it with ``--front-user root``
when the tests run as root, so that ttyhub-sshd may assert SSH principals.  ttyhubd decides
what each key may do: a front's access lines go to the access file of the hub.Daemon behind
its broker socket, which is then reloaded.
"""

import os
import re
import signal
import socket
import subprocess
import threading
import time

import hub
import net
import proc
from net import free_port  # noqa: F401 - sshhub.free_port, for the tests and benchmarks

SSHD = os.path.join(hub.BUILD, "ssh-front", "ttyhub-sshd")

# Options for every OpenSSH client run; ssh takes the FIRST value given for an option, so
# ssh_cmd() puts a caller's options before these to override them.
SSH_DEFAULT_OPTIONS = (
    "IdentitiesOnly=yes",
    "StrictHostKeyChecking=no",
    "UserKnownHostsFile=/dev/null",
    "PreferredAuthentications=publickey",
    "BatchMode=yes",
    "LogLevel=ERROR",
)


def make_key(wd, name, type="ed25519", comment=None):
    """Create WD/NAME (no passphrase) with ssh-keygen; return (private_path, public_line).

    The comment defaults to NAME@ttyhub-test; public_line is the .pub file's single line
    ("ssh-ed25519 AAAA... comment"), ready for an access file.
    """
    path = os.path.join(wd, name)
    for p in (path, path + ".pub"):
        if os.path.exists(p):
            os.unlink(p)
    subprocess.run(["ssh-keygen", "-q", "-t", type, "-N", "", "-C",
                    comment if comment is not None else name + "@ttyhub-test", "-f", path],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True)
    with open(path + ".pub") as f:
        return path, f.read().strip()


def fingerprint(key):
    """The SHA256:... fingerprint of a key (private path with a .pub beside it, or .pub)."""
    pub = key if key.endswith(".pub") else key + ".pub"
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", pub], check=True,
                         capture_output=True).stdout.decode()
    m = re.search(r"SHA256:[A-Za-z0-9+/=]+", out)
    if not m:
        raise AssertionError("ssh-keygen -l printed no fingerprint: %r" % out)
    return m.group(0)


def dropbear_key(key):
    """Convert an OpenSSH private key for dbclient; returns the new path (KEY.dropbear)."""
    out = key + ".dropbear"
    if not os.path.exists(out):
        subprocess.run(["dropbearconvert", "openssh", "dropbear", key, out], check=True,
                       stdin=subprocess.DEVNULL, capture_output=True)
    return out


def ssh_cmd(front, key, user, *remote_cmd, tty=True, options=(), host="127.0.0.1"):
    """argv for OpenSSH's ssh to FRONT as USER with private key KEY (None: no -i).

    tty=True adds -tt (a pty even without a terminal on our side), tty=False adds -T.
    options: extra "-o" values ("Name=value"), placed first so that they win over the
    defaults in SSH_DEFAULT_OPTIONS.  The user name is passed with -l: ttyhub user names
    carry ':' and '+'.
    """
    argv = ["ssh"]
    for o in list(options) + list(SSH_DEFAULT_OPTIONS):
        argv += ["-o", o]
    argv += ["-p", str(front.port)]
    if key is not None:
        argv += ["-i", key]
    argv.append("-tt" if tty else "-T")
    argv += ["-l", user, host]
    return argv + list(remote_cmd)


def run_ssh(front, key, user, *remote_cmd, options=(), timeout=20, host="127.0.0.1"):
    """Run ssh without a tty (stdin /dev/null); returns CompletedProcess (bytes)."""
    return subprocess.run(ssh_cmd(front, key, user, *remote_cmd, tty=False, options=options,
                                  host=host),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


def probe(address: str, port: int, timeout: float = 2.0) -> bool:
    """True once ADDRESS:PORT accepts and sends an SSH identification line."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as s:
            # Send ours first, so that a server waiting for the client's line answers too.
            s.sendall(b"SSH-2.0-ttyhub-test-probe\r\n")
            buf = b""
            while b"\n" not in buf and len(buf) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
            return buf.startswith(b"SSH-")
    except OSError:
        return False


class SshFront(proc.Service):
    """A ttyhub-sshd process in WORKDIR (created if missing; one front per directory).

    Files: WORKDIR/hostkey (made with ssh-keygen unless it exists), WORKDIR/ttyhub-sshd.log
    (stdout and stderr).  access_lines go to the access file of the hub.Daemon serving
    broker_socket (its part of it), or to WORKDIR/access if no hub.Daemon serves it.  With
    activate=True the front is started the systemd way: systemd-socket-activate listens on the
    port and execs ttyhub-sshd (same pid, no --listen) on the first connection.  Every start()
    picks a fresh free port.
    """

    label = "ttyhub-sshd"
    preferred_port = None  # a port to use when free (the demo's 2222); None: any free port

    def __init__(self, workdir, broker_socket, access_lines, extra_args=(), activate=False,
                 start=True):
        os.makedirs(workdir, exist_ok=True)
        super().__init__(workdir, os.path.join(workdir, "ttyhub-sshd.log"))
        self.broker = broker_socket
        self.host_key = os.path.join(workdir, "hostkey")
        self.daemon = hub.daemons_by_socket.get(broker_socket)
        self.access = self.daemon.access if self.daemon else os.path.join(workdir, "access")
        self.extra_args = list(extra_args)
        self.activate = activate
        self.port = None
        if not os.path.exists(self.host_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ttyhub-test host",
                            "-f", self.host_key], check=True, stdin=subprocess.DEVNULL,
                           capture_output=True)
        self.write_access(access_lines)
        if self.daemon and self.daemon.alive():
            self.daemon.reload()
        if start:
            self.start()

    def write_access(self, lines):
        """Replace this front's access lines (atomically, mode 0600); reload() applies them."""
        if self.daemon:
            self.daemon.write_access(lines, owner=self)
            return
        tmp = self.access + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(line + "\n" for line in lines))
        os.rename(tmp, self.access)

    def command(self) -> list[str]:
        args = ["--host-key", self.host_key, "--broker", self.broker]
        args += self.extra_args
        if self.activate:
            return ["systemd-socket-activate", "-l", "127.0.0.1:%d" % self.port, SSHD] + args
        return [SSHD, "--listen", "127.0.0.1:%d" % self.port] + args

    def prepare(self) -> None:
        self.port = net.free_port(preferred=self.preferred_port)

    def ready(self) -> bool:
        """It answers with an SSH banner."""
        return probe("127.0.0.1", self.port)

    def reload(self):
        """Apply write_access(): SIGHUP to ttyhubd (waiting until it read the file) and to
        ttyhub-sshd (its own configuration)."""
        if not self.alive():
            raise AssertionError("ttyhub-sshd is not running:\n" + self.log()[-3000:])
        if self.daemon:
            self.daemon.reload()
        self.proc.send_signal(signal.SIGHUP)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class SshClient:
    """OpenSSH without a tty (ssh -T) running ARGV, its output (stdout and stderr) collected
    by a thread; send() types into it."""

    def __init__(self, argv, name="ssh"):
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.out = b""
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            with self.lock:
                self.out += chunk

    def data(self) -> bytes:
        with self.lock:
            return self.out

    def wait_for(self, what, timeout=60, start=0) -> "re.Match[bytes]":
        """Wait until the output (from START on) matches regex WHAT; return the match."""
        rx = re.compile(what.encode() if isinstance(what, str) else what)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.data(), start)
            if m:
                return m
            if time.monotonic() >= deadline or (self.proc.poll() is not None
                                                and not self.thread.is_alive()):
                m = rx.search(self.data(), start)
                if m:
                    return m
                raise AssertionError("%s: no %r within %g s; output tail:\n%r"
                                     % (self.name, rx.pattern, timeout, self.data()[-1500:]))
            time.sleep(0.02)

    def lines_after(self, start, n, timeout=60, tag=b"fg") -> None:
        """Wait until N more whole TAG guest lines (pattern.py's) came after offset START."""
        hdr = re.compile(re.escape(tag) + rb" \d{12} ")
        deadline = time.monotonic() + timeout
        while len(hdr.findall(self.data(), start)) < n + 1:
            if time.monotonic() >= deadline:
                raise AssertionError("%s: fewer than %d %s lines in %g s; tail:\n%r"
                                     % (self.name, n, tag.decode(), timeout,
                                        self.data()[-1500:]))
            time.sleep(0.02)

    def send(self, b: bytes) -> None:
        self.proc.stdin.write(b)
        self.proc.stdin.flush()

    def wait(self, timeout=30) -> int:
        rc = self.proc.wait(timeout)
        self.thread.join(timeout)
        return rc

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.thread.join(5)


def console_bytes(data, line_length):
    """The console bytes in an SSH client's output: every "[ttyhub] ..." line taken out, with
    the line break the front puts before one that came in the middle of a guest line (it
    writes one only when the console's last byte was not a line end: a guest line is exactly
    line_length bytes, so a shorter one before the break was cut by the notice)."""
    out = bytearray()
    i = 0
    while i < len(data):
        j = data.find(b"[ttyhub] ", i)
        if j < 0:
            out += data[i:]
            break
        seg = data[i:j]
        if seg.endswith(b"\n"):
            last = (bytes(out) + seg[:-1]).rsplit(b"\n", 1)[-1]
            if len(last) != line_length - 1:
                seg = seg[:-1]  # the front's: the notice came mid-line
        out += seg
        k = data.find(b"\n", j)
        i = k + 1 if k >= 0 else len(data)
    return bytes(out)
