# SPDX-License-Identifier: MIT
"""The one builder of libvirt domain XML for the tests (guest.py, virt.py, hub.domain_xml and
the tests that write domain files for ttyhubd's --domain-xml).

The model: a domain is a name, a uuid, an optional boot section (a direct kernel boot of the
test guest) and a list of character devices, each written the way libvirt writes it:

  serial("/s.sock", alias="serial0")              <serial type='unix'> isa-serial port 0
  console("/s.sock", "serial", 0, alias=...)      <console type='unix'> (the serial's twin)
  console("/c.sock", "virtio", 1, alias=...)      <console type='unix'> virtio port 1 (hvc0)
  serial("/dev/pts/3", type="pty")                <serial type='pty'> (a pty console)

An alias of None leaves <alias> out (inactive XML, as for ``virsh define``).  Every value is
quoted for XML, except that ``raw_name=True`` puts the name in as given: the injection tests
hand ttyhubd names carrying character references on purpose.

Stdlib only.
"""

import os
from typing import Optional, Sequence
from xml.sax.saxutils import escape as _escape

_QUOTES = {"'": "&apos;", '"': "&quot;"}


def q(v: object) -> str:
    """V quoted for an XML attribute or text node."""
    return _escape(str(v), _QUOTES)


def default_type() -> str:
    """'kvm' when $TTYHUB_TEST_KVM=1 (the guests may use KVM), else 'qemu'."""
    return "kvm" if os.environ.get("TTYHUB_TEST_KVM") == "1" else "qemu"


def _source(type: str, path: str) -> str:
    if type == "unix":
        return f"      <source mode='bind' path='{q(path)}'/>\n"
    return f"      <source path='{q(path)}'/>\n"


def _alias(alias: Optional[str]) -> str:
    return f"      <alias name='{q(alias)}'/>\n" if alias is not None else ""


def serial(path: str, alias: Optional[str] = "serial0", type: str = "unix", port: int = 0,
           model: bool = False) -> str:
    """A <serial> device: an isa-serial (16550, ttyS0 for port 0) on PATH.  model=True
    adds <model name='isa-serial'/> inside the target, as live libvirt XML does."""
    target = f"      <target type='isa-serial' port='{port}'/>\n"
    if model:
        target = (f"      <target type='isa-serial' port='{port}'>\n"
                  "        <model name='isa-serial'/>\n"
                  "      </target>\n")
    return (f"    <serial type='{type}'>\n" + _source(type, path) + target + _alias(alias)
            + "    </serial>\n")


def console(path: str, target: str, port: int, alias: Optional[str] = None,
            type: str = "unix", tty: Optional[str] = None) -> str:
    """A <console> device: target "serial" (the twin of serial port PORT) or "virtio"."""
    tty_attr = f" tty='{q(tty)}'" if tty is not None else ""
    return (f"    <console type='{type}'{tty_attr}>\n" + _source(type, path)
            + f"      <target type='{target}' port='{port}'/>\n" + _alias(alias)
            + "    </console>\n")


class Boot:
    """A direct kernel boot of the test guest under QEMU (memory in MiB)."""

    def __init__(self, kernel: str, initrd: str, cmdline: str, memory_mb: int,
                 emulator: str) -> None:
        self.kernel = kernel
        self.initrd = initrd
        self.cmdline = cmdline
        self.memory_mb = memory_mb
        self.emulator = emulator

    def os_xml(self) -> str:
        kib = self.memory_mb * 1024
        return (
            f"  <memory unit='KiB'>{kib}</memory>\n"
            f"  <currentMemory unit='KiB'>{kib}</currentMemory>\n"
            "  <vcpu placement='static'>1</vcpu>\n"
            "  <os>\n"
            "    <type arch='x86_64' machine='pc'>hvm</type>\n"
            f"    <kernel>{q(self.kernel)}</kernel>\n"
            f"    <initrd>{q(self.initrd)}</initrd>\n"
            f"    <cmdline>{q(self.cmdline)}</cmdline>\n"
            "  </os>\n"
            "  <on_poweroff>destroy</on_poweroff>\n"
            "  <on_reboot>destroy</on_reboot>\n"
            "  <on_crash>destroy</on_crash>\n"
        )


def domain_xml(name: str, devices: Sequence[str], uuid: Optional[str] = None,
               domid: Optional[int] = None, boot: Optional[Boot] = None,
               extra_devices: Sequence[str] = (), dom_type: Optional[str] = None,
               raw_name: bool = False) -> str:
    """A <domain> with these character devices (see serial() and console()).

    uuid None: no <uuid>; domid: the live id attribute; boot: memory, CPU and a kernel boot
    (with an <emulator>); extra_devices: more device lines before the chardevs (e.g. a
    controller); dom_type: the domain type (default_type() when None).
    """
    xml = f"<domain type='{dom_type or default_type()}'"
    if domid is not None:
        xml += f" id='{domid}'"
    xml += ">\n"
    xml += f"  <name>{name if raw_name else q(name)}</name>\n"
    if uuid is not None:
        xml += f"  <uuid>{q(uuid)}</uuid>\n"
    if boot is not None:
        xml += boot.os_xml()
    xml += "  <devices>\n"
    if boot is not None:
        xml += f"    <emulator>{q(boot.emulator)}</emulator>\n"
    xml += "".join(extra_devices) + "".join(devices)
    return xml + "  </devices>\n</domain>\n"


def domstatus(domain: str, pid: int, monitor: str) -> str:
    """DOMAIN inside <domstatus>, as libvirt keeps it in /run/libvirt/qemu/NAME.xml."""
    inner = "".join("  " + line + "\n" for line in domain.splitlines())
    return (f"<domstatus state='running' reason='booted' pid='{pid}'>\n"
            f"  <monitor path='{q(monitor)}' type='unix'/>\n" + inner + "</domstatus>\n")


def unix_serial_domain(name: str, uuid: str, path: str, alias: str = "serial0",
                       raw_name: bool = False) -> str:
    """The smallest domain ttyhubd reads: one unix serial console (no boot section)."""
    return domain_xml(name, [serial(path, alias=alias)], uuid=uuid, dom_type="qemu",
                      raw_name=raw_name)
