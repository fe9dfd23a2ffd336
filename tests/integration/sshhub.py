# SPDX-License-Identifier: MIT
"""Test harness for ttyhub-sshd: start the real SSH front on a free loopback port (bound
by itself or socket-activated through systemd-socket-activate), make client keys with
ssh-keygen, and build command lines for the real OpenSSH client.

Stdlib only; run with /usr/bin/python3.  The binary is $TTYHUB_BUILD/ssh-front/ttyhub-sshd
(see hub.BUILD).

Every SshFront started is remembered in ``fronts``; ``check_exits(res)`` stops them all and
records, for each, a check that it exited with status 0 on SIGTERM and logged no sanitizer
report (the same rule hub.Results.finish() applies to ttyhubd).  Call it before
res.finish().

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
import time

import hub

SSHD = os.path.join(hub.BUILD, "ssh-front", "ttyhub-sshd")

fronts = []  # every SshFront started, checked by check_exits()

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


def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


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


def _probe(port, timeout):
    """True once 127.0.0.1:PORT accepts and sends an SSH identification line."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
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


class SshFront:
    """A ttyhub-sshd process in WORKDIR (created if missing; one front per directory).

    Files: WORKDIR/hostkey (made with ssh-keygen unless it exists), WORKDIR/ttyhub-sshd.log
    (stdout and stderr).  access_lines go to the access file of the hub.Daemon serving
    broker_socket (its part of it), or to WORKDIR/access if no hub.Daemon serves it.  With activate=True the
    front is started the systemd way: systemd-socket-activate listens on the port and execs
    ttyhub-sshd (same pid, no --listen) on the first connection.
    """

    def __init__(self, workdir, broker_socket, access_lines, extra_args=(), activate=False,
                 start=True):
        os.makedirs(workdir, exist_ok=True)
        self.workdir = workdir
        self.broker = broker_socket
        self.host_key = os.path.join(workdir, "hostkey")
        self.daemon = hub.daemons_by_socket.get(broker_socket)
        self.access = self.daemon.access if self.daemon else os.path.join(workdir, "access")
        self.log_path = os.path.join(workdir, "ttyhub-sshd.log")
        self.extra_args = list(extra_args)
        self.activate = activate
        self.port = None
        self.proc = None
        self._log = None
        self.final_log = ""
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

    def command(self):
        args = ["--host-key", self.host_key, "--broker", self.broker]
        args += self.extra_args
        if self.activate:
            return ["systemd-socket-activate", "-l", "127.0.0.1:%d" % self.port, SSHD] + args
        return [SSHD, "--listen", "127.0.0.1:%d" % self.port] + args

    def start(self, timeout=10):
        """Start on a fresh free port; return once it answers with an SSH banner."""
        self.port = free_port()
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log)
        if self not in fronts:
            fronts.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("ttyhub-sshd exited with %s:\n%s"
                                     % (self.proc.returncode, self.log()[-3000:]))
            if _probe(self.port, max(0.1, min(2.0, deadline - time.monotonic()))):
                return self
            time.sleep(0.05)
        raise AssertionError("ttyhub-sshd does not answer on port %d:\n%s"
                             % (self.port, self.log()[-3000:]))

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError as e:
            return "(no log: %s)" % e

    def wait_log(self, pattern, timeout=10):
        """Wait until the log matches the regular expression; return the match."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.log(), re.M)
            if m:
                return m
            if time.monotonic() >= deadline:
                raise AssertionError("%r not in the ttyhub-sshd log within %g s; log tail:\n%s"
                                     % (pattern, timeout, self.log()[-3000:]))
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def reload(self):
        """Apply write_access(): SIGHUP to ttyhubd (waiting until it read the file) and to
        ttyhub-sshd (its own configuration)."""
        if not self.alive():
            raise AssertionError("ttyhub-sshd is not running:\n" + self.log()[-3000:])
        if self.daemon:
            self.daemon.reload()
        self.proc.send_signal(signal.SIGHUP)

    def stop(self):
        """SIGTERM (SIGKILL after 10 s); returns the exit status (-N: killed by signal N)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log and not self._log.closed:
            self._log.close()
            self.final_log = self.log()
        return self.proc.returncode if self.proc else None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def check_exits(res):
    """Stop every front and check each exited with 0 and without a sanitizer report."""
    for f in fronts:
        f.stop()

        def clean(f=f):
            log = f.final_log
            if f.proc.returncode != 0 or "Sanitizer" in log or "runtime error:" in log:
                raise AssertionError("exit status %s; log tail:\n%s"
                                     % (f.proc.returncode, log[-4000:]))
        res.run("ttyhub-sshd (%s) exited cleanly" % os.path.basename(f.workdir), clean)
