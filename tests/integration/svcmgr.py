# SPDX-License-Identifier: MIT
"""A fake service manager: the part of systemd that ttyhubd's restarts rely on, for tests on
machines where PID 1 is not systemd.

The model, as systemd 252 does it for a Type=notify service with a socket unit and
FileDescriptorStoreMax=:
- The manager owns the broker's listening socket (bound here once), so clients can connect
  while the daemon is down: the kernel queues them.  It is passed to every run of the daemon
  as the first LISTEN_FD, named "ttyhubd.socket".
- It binds NOTIFY_SOCKET (AF_UNIX datagram) and reads the daemon's messages from a thread:
  READY=1, STOPPING=1, STATUS=..., and FDSTORE=1 with SCM_RIGHTS fds named by FDNAME= (kept,
  at most `fdstore_max`: the rest are closed with a log line like systemd's), FDSTOREREMOVE=1
  with FDNAME= (every fd of that name is closed) and FDPOLL=0.  A stored fd without FDPOLL=0
  is dropped when it reports POLLHUP or POLLERR, as systemd does.  Duplicates (the same open
  file stored twice) are kept once.
- spawn() starts the daemon with the stored fds after the listening socket, dup'ed to 3, 4 ...
  in order, LISTEN_FDS and LISTEN_FDNAMES to match, FDSTORE=<max> (as systemd >= 254 sets
  it), and LISTEN_PID set in the child itself (through `sh -c 'LISTEN_PID=$$ exec "$@"'`).

Only the main process's messages are honoured (NotifyAccess=main): the sender's pid comes
from SCM_CREDENTIALS.  Stdlib only.
"""

import array
import fcntl
import os
import select
import socket
import struct
import subprocess
import threading
import time

LISTEN_NAME = "ttyhubd.socket"


class ServiceManager:
    def __init__(self, workdir, socket_path, fdstore_max=64, log_path=None):
        self.socket_path = socket_path
        self.fdstore_max = fdstore_max
        self.log_path = log_path or os.path.join(workdir, "svcmgr.log")
        self.listen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listen.bind(socket_path)
        self.listen.listen(128)
        self.notify_path = os.path.join(workdir, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.lock = threading.Condition()
        self.store = []  # [name, fd, poll] in the order stored
        self.main_pid = None
        self.ready = 0     # READY=1 messages of the current main process
        self.stopping = False
        self.messages = []  # every honoured message, as text
        self.warnings = []  # what the manager complained about
        self.closed = False
        self.wake_r, self.wake_w = os.pipe()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    # -- the notify socket ------------------------------------------------------------------

    def _log(self, text):
        line = time.strftime("%H:%M:%S ") + text
        with open(self.log_path, "a") as f:
            f.write(line + "\n")

    def _run(self):
        while True:
            with self.lock:
                watch = [(fd, name) for name, fd, poll in self.store if poll]
            p = select.poll()
            p.register(self.notify.fileno(), select.POLLIN)
            p.register(self.wake_r, select.POLLIN)
            for fd, _ in watch:
                p.register(fd, 0)  # POLLHUP and POLLERR are always reported
            for fd, ev in p.poll():
                if fd == self.wake_r:
                    os.read(self.wake_r, 64)
                    if self.closed:
                        return
                elif fd == self.notify.fileno():
                    with self.lock:
                        self._receive()
                elif ev & (select.POLLHUP | select.POLLERR):
                    self._drop_fd(fd)

    def _drop_fd(self, fd):
        with self.lock:
            for e in self.store:
                if e[1] == fd:
                    self._log("stored fd %s got POLLHUP/POLLERR: dropped" % e[0])
                    self.store.remove(e)
                    os.close(fd)
                    break

    def _receive(self):
        """One message, if one is queued (called with the lock held: a message is never
        taken off the socket and then judged against a main pid changed meanwhile)."""
        fds = array.array("i")
        try:
            msg, anc, _, _ = self.notify.recvmsg(4096, socket.CMSG_SPACE(253 * 4) +
                                                 socket.CMSG_SPACE(12), socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        pid = None
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
            elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", data[:12])[0]
        text = msg.decode(errors="replace")
        if pid is None or pid != self.main_pid:
            self._log("message from pid %s ignored (NotifyAccess=main): %r" % (pid, text))
            for fd in fds:
                os.close(fd)
            return True
        fields = {}
        for line in text.split("\n"):
            k, _, v = line.partition("=")
            fields[k] = v
        self.messages.append(text)
        if fields.get("FDSTOREREMOVE") == "1":
            name = fields.get("FDNAME", "stored")
            for e in [e for e in self.store if e[0] == name]:
                self.store.remove(e)
                os.close(e[1])
        if fields.get("FDSTORE") == "1":
            name = fields.get("FDNAME", "stored")
            poll = fields.get("FDPOLL", "1") != "0"
            for fd in fds:
                self._store(name, fd, poll)
        elif fds:
            for fd in fds:
                os.close(fd)
        if fields.get("READY") == "1":
            self.ready += 1
        if fields.get("STOPPING") == "1":
            self.stopping = True
        self.lock.notify_all()
        os.write(self.wake_w, b"x")  # the set of polled fds may have changed
        return True

    def _store(self, name, fd, poll):
        st = os.fstat(fd)
        for e in self.store:
            o = os.fstat(e[1])
            if (o.st_dev, o.st_ino) == (st.st_dev, st.st_ino):
                os.close(fd)  # the same open file: systemd keeps one
                return
        if len(self.store) >= self.fdstore_max:
            w = ("Too many file descriptors stored (FileDescriptorStoreMax=%d), closing %s"
                 % (self.fdstore_max, name))
            self.warnings.append(w)
            self._log(w)
            os.close(fd)
            return
        self.store.append([name, fd, poll])

    # -- the daemon -------------------------------------------------------------------------

    def stored_names(self):
        with self.lock:
            return sorted(e[0] for e in self.store)

    def spawn(self, argv, stdout, stderr, env=None):
        """Start argv with the listening socket and the stored fds; returns the Popen.
        The previous process must have exited: what it sent is handled first, as systemd
        reads the notify socket before it handles the exit."""
        self.lock.acquire()
        try:
            while self._receive():
                pass
            fds = [self.listen.fileno()] + [e[1] for e in self.store]
            names = [LISTEN_NAME] + [e[0] for e in self.store]
            self.ready = 0
            self.stopping = False
            return self._spawn_locked(argv, fds, names, stdout, stderr, env)
        finally:
            self.lock.release()

    def _spawn_locked(self, argv, fds, names, stdout, stderr, env):
        env = dict(os.environ if env is None else env)
        env.update(LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=":".join(names),
                   NOTIFY_SOCKET=self.notify_path, FDSTORE=str(self.fdstore_max))
        env.pop("LISTEN_PID", None)

        def child():
            # Above every target first, so no dup2 overwrites a source still needed.
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 3 + len(fds)) for fd in fds]
            for i, fd in enumerate(high):
                os.dup2(fd, 3 + i)  # dup2 leaves the copy inheritable
                os.close(fd)

        proc = subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh"] + list(argv),
                                stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                env=env, close_fds=False, preexec_fn=child)
        self.main_pid = proc.pid  # exec keeps the pid: the shell becomes the daemon
        return proc

    def wait_ready(self, proc, timeout):
        """Wait for READY=1 from proc; False if it exited first or the time ran out."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.ready == 0:
                left = deadline - time.monotonic()
                if left <= 0 or proc.poll() is not None:
                    return False
                self.lock.wait(min(left, 0.05))
        return True

    def close(self):
        """Close everything: what a `systemctl stop` does to the store on systemd 252."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            for _, fd, _ in self.store:
                os.close(fd)
            self.store = []
        os.write(self.wake_w, b"x")
        self.thread.join(5)
        self.listen.close()
        self.notify.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        for p in (self.socket_path, self.notify_path):
            try:
                os.unlink(p)
            except OSError:
                pass
