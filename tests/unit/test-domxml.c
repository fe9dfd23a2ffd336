/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for domxml: a table of documents (trimmed from the shapes in
 * libvirt's own test data: qemuxmlconfdata/serial-*-chardev, console-compat,
 * console-virtio-many, qemustatusxml2xmldata/modern-in) with every field of
 * the expected result, then generated inputs for the limits, a truncation
 * sweep, and the entity/DTD defences.  Each parse runs with stderr redirected
 * to a temporary file that must stay empty (the parser must never print).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <libxml/parser.h>
#include <libxml/xmlerror.h>

#include "domxml.h"
#include "util.h"

#define MAX_EXP_DEVS 6

struct exp_dev {
	const char *element;
	const char *alias;
	const char *target_type;
	int port;
	const char *type;
	enum domxml_backend backend;
	const char *path;
	bool supported;
	const char *reason;
};

struct tcase {
	const char *title;
	const char *xml;
	size_t len; /* 0: strlen(xml) */
	int ret;
	/* on success */
	const char *name;
	const char *uuid;
	size_t n_devs;
	struct exp_dev devs[MAX_EXP_DEVS];
	/* on failure: exact message, or a substring of it */
	const char *error;
	const char *error_has;
};

#define CONNECT_REASON "mode='connect' (QEMU connects out) is not supported"
#define NOPTY_REASON "pty path not allocated (domain not running)"
#define UUID1 "c7a5fdbd-edaf-9455-926a-d65c16db1809"

#define B_UNIX DOMXML_BACKEND_UNIX
#define B_PTY DOMXML_BACKEND_PTY
#define B_OTHER DOMXML_BACKEND_OTHER

/* Documents with embedded NUL bytes carry their own length. */
#define BIN(s) .xml = (s), .len = sizeof(s) - 1

static const struct tcase cases[] = {
	{
		.title = "unix bind serial",
		.xml = "<domain type='kvm'>\n"
		       "  <name>vm1</name>\n"
		       "  <uuid>" UUID1 "</uuid>\n"
		       "  <devices>\n"
		       "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
		       "    <serial type='unix'>\n"
		       "      <source mode='bind' path='/run/ttyhub/vm1.sock'/>\n"
		       "      <target type='isa-serial' port='0'>\n"
		       "        <model name='isa-serial'/>\n"
		       "      </target>\n"
		       "      <alias name='serial0'/>\n"
		       "    </serial>\n"
		       "  </devices>\n"
		       "</domain>\n",
		.name = "vm1",
		.uuid = UUID1,
		.n_devs = 1,
		.devs = { { "serial", "serial0", "isa-serial", 0, "unix", B_UNIX,
			    "/run/ttyhub/vm1.sock", true, NULL } },
	},
	{
		/* qemuxmlconfdata/serial-unix-chardev.x86_64-latest.xml */
		.title = "serial-unix-chardev: connect, bind, console duplicate without alias",
		.xml = "<domain type='qemu'>\n"
		       "  <name>QEMUGuest1</name>\n"
		       "  <uuid>" UUID1 "</uuid>\n"
		       "  <devices>\n"
		       "    <controller type='pci' index='0' model='pci-root'/>\n"
		       "    <serial type='unix'>\n"
		       "      <source mode='connect' path='/tmp/serial.sock'/>\n"
		       "      <target type='isa-serial' port='0'>\n"
		       "        <model name='isa-serial'/>\n"
		       "      </target>\n"
		       "    </serial>\n"
		       "    <serial type='unix'>\n"
		       "      <source mode='bind' path='/tmp/serial-server.sock'/>\n"
		       "      <target type='isa-serial' port='1'>\n"
		       "        <model name='isa-serial'/>\n"
		       "      </target>\n"
		       "    </serial>\n"
		       "    <console type='unix'>\n"
		       "      <source mode='connect' path='/tmp/serial.sock'/>\n"
		       "      <target type='serial' port='0'/>\n"
		       "    </console>\n"
		       "    <input type='mouse' bus='ps2'/>\n"
		       "  </devices>\n"
		       "</domain>\n",
		.name = "QEMUGuest1",
		.uuid = UUID1,
		.n_devs = 2,
		.devs = {
			{ "serial", "serial0", "isa-serial", 0, "unix", B_UNIX,
			  "/tmp/serial.sock", false, CONNECT_REASON },
			{ "serial", "serial1", "isa-serial", 1, "unix", B_UNIX,
			  "/tmp/serial-server.sock", true, NULL },
		},
	},
	{
		.title = "unix source without mode is connect",
		.xml = "<domain><name>m</name><devices>"
		       "<serial type='unix'><source path='/tmp/s.sock'/><target port='0'/></serial>"
		       "</devices></domain>",
		.name = "m",
		.n_devs = 1,
		.devs = { { "serial", "serial0", NULL, 0, "unix", B_UNIX,
			    "/tmp/s.sock", false, CONNECT_REASON } },
	},
	{
		.title = "unix: unknown mode, missing path, relative path",
		.xml = "<domain><name>u</name><devices>"
		       "<serial type='unix'><source mode='listen' path='/tmp/a.sock'/></serial>"
		       "<serial type='unix'><source mode='bind'/></serial>"
		       "<serial type='unix'><source mode='bind' path=''/></serial>"
		       "<serial type='unix'><source mode='bind' path='run/b.sock'/></serial>"
		       "<serial type='unix'/>"
		       "</devices></domain>",
		.name = "u",
		.n_devs = 5,
		.devs = {
			{ "serial", "serial0", NULL, -1, "unix", B_UNIX, "/tmp/a.sock",
			  false, "unknown source mode 'listen'" },
			{ "serial", "serial1", NULL, -1, "unix", B_UNIX, NULL, false,
			  "unix socket has no <source path>" },
			{ "serial", "serial2", NULL, -1, "unix", B_UNIX, NULL, false,
			  "unix socket has no <source path>" },
			{ "serial", "serial3", NULL, -1, "unix", B_UNIX, "run/b.sock",
			  false, "path 'run/b.sock' is not absolute" },
			{ "serial", "serial4", NULL, -1, "unix", B_UNIX, NULL, false,
			  CONNECT_REASON },
		},
	},
	{
		/* live form of console-virtio: serial0 plus a virtio console */
		.title = "serial + virtio console (live)",
		.xml = "<domain type='kvm' id='7'>\n"
		       "  <name>web</name>\n"
		       "  <devices>\n"
		       "    <serial type='unix'>\n"
		       "      <source mode='bind' path='/run/vm/web.serial0'/>\n"
		       "      <target type='isa-serial' port='0'/>\n"
		       "      <alias name='serial0'/>\n"
		       "    </serial>\n"
		       "    <console type='unix'>\n"
		       "      <source mode='bind' path='/run/vm/web.serial0'/>\n"
		       "      <target type='serial' port='0'/>\n"
		       "      <alias name='serial0'/>\n"
		       "    </console>\n"
		       "    <console type='pty' tty='/dev/pts/5'>\n"
		       "      <source path='/dev/pts/5'/>\n"
		       "      <target type='virtio' port='1'/>\n"
		       "      <alias name='console1'/>\n"
		       "    </console>\n"
		       "  </devices>\n"
		       "</domain>\n",
		.name = "web",
		.n_devs = 2,
		.devs = {
			{ "serial", "serial0", "isa-serial", 0, "unix", B_UNIX,
			  "/run/vm/web.serial0", true, NULL },
			{ "console", "console1", "virtio", 1, "pty", B_PTY,
			  "/dev/pts/5", true, NULL },
		},
	},
	{
		/* qemuxml2argvdata/console-virtio-many.xml (inactive: no pty paths) */
		.title = "console-virtio-many: inactive ptys, aliases from ports",
		.xml = "<domain type='qemu'>\n"
		       "  <name>QEMUGuest1</name>\n"
		       "  <devices>\n"
		       "    <controller type='virtio-serial' index='0'/>\n"
		       "    <serial type='pty'>\n"
		       "      <target port='0'/>\n"
		       "    </serial>\n"
		       "    <console type='pty'>\n"
		       "      <target type='serial' port='0'/>\n"
		       "    </console>\n"
		       "    <console type='pty'>\n"
		       "      <target type='virtio' port='1'/>\n"
		       "    </console>\n"
		       "    <console type='pty'>\n"
		       "      <target type='virtio' port='2'/>\n"
		       "    </console>\n"
		       "    <console type='pty'>\n"
		       "      <target type='virtio' port='3'/>\n"
		       "    </console>\n"
		       "  </devices>\n"
		       "</domain>\n",
		.name = "QEMUGuest1",
		.n_devs = 4,
		.devs = {
			{ "serial", "serial0", NULL, 0, "pty", B_PTY, NULL, false,
			  NOPTY_REASON },
			{ "console", "console1", "virtio", 1, "pty", B_PTY, NULL, false,
			  NOPTY_REASON },
			{ "console", "console2", "virtio", 2, "pty", B_PTY, NULL, false,
			  NOPTY_REASON },
			{ "console", "console3", "virtio", 3, "pty", B_PTY, NULL, false,
			  NOPTY_REASON },
		},
	},
	{
		/* qemuxml2argvdata/console-compat.xml */
		.title = "console-compat: console duplicate of serial0, no aliases",
		.xml = "<domain type='qemu'>\n"
		       "  <name>QEMUGuest1</name>\n"
		       "  <uuid>" UUID1 "</uuid>\n"
		       "  <devices>\n"
		       "    <serial type='pty'>\n"
		       "      <target port='0'/>\n"
		       "    </serial>\n"
		       "    <console type='pty'>\n"
		       "      <target type='serial' port='0'/>\n"
		       "    </console>\n"
		       "    <memballoon model='none'/>\n"
		       "  </devices>\n"
		       "</domain>\n",
		.name = "QEMUGuest1",
		.uuid = UUID1,
		.n_devs = 1,
		.devs = { { "serial", "serial0", NULL, 0, "pty", B_PTY, NULL, false,
			    NOPTY_REASON } },
	},
	{
		/* qemuxml2argvdata/serial-pty-chardev.xml: console without target type */
		.title = "serial-pty-chardev: console without target type is serial0",
		.xml = "<domain type='qemu'>\n"
		       "  <name>QEMUGuest1</name>\n"
		       "  <devices>\n"
		       "    <serial type='pty'>\n"
		       "      <target port='0'/>\n"
		       "    </serial>\n"
		       "    <console type='pty'>\n"
		       "      <target port='0'/>\n"
		       "    </console>\n"
		       "  </devices>\n"
		       "</domain>\n",
		.name = "QEMUGuest1",
		.n_devs = 1,
		.devs = { { "serial", "serial0", NULL, 0, "pty", B_PTY, NULL, false,
			    NOPTY_REASON } },
	},
	{
		.title = "console of type serial that is not serial0 is kept",
		.xml = "<domain><name>k</name><devices>"
		       "<serial type='pty'><source path='/dev/pts/1'/><target port='0'/>"
		       "<alias name='serial0'/></serial>"
		       "<console type='pty'><source path='/dev/pts/2'/>"
		       "<target type='serial' port='1'/></console>"
		       "<console type='pty'><source path='/dev/pts/3'/>"
		       "<target type='serial' port='0'/><alias name='ua-extra'/></console>"
		       "</devices></domain>",
		.name = "k",
		.n_devs = 3,
		.devs = {
			{ "serial", "serial0", NULL, 0, "pty", B_PTY, "/dev/pts/1", true,
			  NULL },
			{ "console", "console1", "serial", 1, "pty", B_PTY, "/dev/pts/2",
			  true, NULL },
			{ "console", "ua-extra", "serial", 0, "pty", B_PTY, "/dev/pts/3",
			  true, NULL },
		},
	},
	{
		.title = "console before serial is still dropped as serial0",
		.xml = "<domain><name>o</name><devices>"
		       "<console type='pty'><target type='serial'/></console>"
		       "<serial type='pty'><source path='/dev/pts/9'/></serial>"
		       "</devices></domain>",
		.name = "o",
		.n_devs = 1,
		.devs = { { "serial", "serial0", NULL, -1, "pty", B_PTY, "/dev/pts/9",
			    true, NULL } },
	},
	{
		/* the console half of modern-in.xml, without its <serial> */
		.title = "pty console with tty= only, no serial: listed",
		.xml = "<domain type='kvm' id='1'>\n"
		       "  <name>upstream</name>\n"
		       "  <devices>\n"
		       "    <console type='pty' tty='/dev/pts/67'>\n"
		       "      <target type='serial' port='0'/>\n"
		       "      <alias name='serial0'/>\n"
		       "    </console>\n"
		       "  </devices>\n"
		       "</domain>\n",
		.name = "upstream",
		.n_devs = 1,
		.devs = { { "console", "serial0", "serial", 0, "pty", B_PTY,
			    "/dev/pts/67", true, NULL } },
	},
	{
		.title = "pty: source path wins over tty=, relative pty path",
		.xml = "<domain><name>p</name><devices>"
		       "<console type='pty' tty='/dev/pts/8'><source path='/dev/pts/7'/>"
		       "<target type='virtio' port='1'/></console>"
		       "<console type='pty' tty=''><target type='virtio' port='2'/></console>"
		       "<console type='pty'><source path='pts/3'/>"
		       "<target type='virtio' port='3'/></console>"
		       "<serial type='pty' tty='/dev/pts/4'/>"
		       "</devices></domain>",
		.name = "p",
		.n_devs = 4,
		.devs = {
			{ "console", "console1", "virtio", 1, "pty", B_PTY, "/dev/pts/7",
			  true, NULL },
			{ "console", "console2", "virtio", 2, "pty", B_PTY, NULL, false,
			  NOPTY_REASON },
			{ "console", "console3", "virtio", 3, "pty", B_PTY, "pts/3",
			  false, "path 'pts/3' is not absolute" },
			/* tty= is only a <console> attribute */
			{ "serial", "serial0", NULL, -1, "pty", B_PTY, NULL, false,
			  NOPTY_REASON },
		},
	},
	{
		/* qemustatusxml2xmldata/modern-in.xml, trimmed */
		.title = "domstatus wrapper (modern-in): console duplicate with alias",
		.xml = "<domstatus state='running' reason='booted' pid='195139'>\n"
		       "  <taint flag='high-privileges'/>\n"
		       "  <monitor path='/var/lib/libvirt/qemu/domain-1-upstream/monitor.sock'"
		       " json='1' type='unix'/>\n"
		       "  <devices>\n"
		       "    <device alias='serial0'/>\n"
		       "    <device alias='channel0'/>\n"
		       "  </devices>\n"
		       "  <libDir path='/var/lib/libvirt/qemu/domain-1-upstream'/>\n"
		       "  <chardevStdioLogd/>\n"
		       "  <domain type='kvm' id='1'>\n"
		       "    <name>upstream</name>\n"
		       "    <uuid>dcf47dbd-46d1-4d5b-b442-262a806a333a</uuid>\n"
		       "    <devices>\n"
		       "      <serial type='pty'>\n"
		       "        <source path='/dev/pts/67'/>\n"
		       "        <target type='isa-serial' port='0'>\n"
		       "          <model name='isa-serial'/>\n"
		       "        </target>\n"
		       "        <alias name='serial0'/>\n"
		       "      </serial>\n"
		       "      <console type='pty' tty='/dev/pts/67'>\n"
		       "        <source path='/dev/pts/67'/>\n"
		       "        <target type='serial' port='0'/>\n"
		       "        <alias name='serial0'/>\n"
		       "      </console>\n"
		       "      <channel type='unix'>\n"
		       "        <source mode='bind' path='/var/lib/libvirt/qemu/channel/target/"
		       "domain-1-upstream/org.qemu.guest_agent.0'/>\n"
		       "        <target type='virtio' name='org.qemu.guest_agent.0'"
		       " state='disconnected'/>\n"
		       "        <alias name='channel0'/>\n"
		       "      </channel>\n"
		       "    </devices>\n"
		       "  </domain>\n"
		       "</domstatus>\n",
		.name = "upstream",
		.uuid = "dcf47dbd-46d1-4d5b-b442-262a806a333a",
		.n_devs = 1,
		.devs = { { "serial", "serial0", "isa-serial", 0, "pty", B_PTY,
			    "/dev/pts/67", true, NULL } },
	},
	{
		.title = "multiple serials, aliases synthesised from index",
		.xml = "<domain><name>multi</name><devices>"
		       "<serial type='pty'><source path='/dev/pts/1'/></serial>"
		       "<parallel type='pty'><source path='/dev/pts/2'/></parallel>"
		       "<serial type='unix'><source mode='bind' path='/run/m/1.sock'/></serial>"
		       "<channel type='pty'><target type='virtio' name='x'/></channel>"
		       "<serial type='pty'><source path='/dev/pts/3'/>"
		       "<target type='pci-serial' port='7'/></serial>"
		       "<x:serial xmlns:x='urn:not-libvirt' type='pty'/>"
		       "</devices></domain>",
		.name = "multi",
		.n_devs = 3,
		.devs = {
			{ "serial", "serial0", NULL, -1, "pty", B_PTY, "/dev/pts/1",
			  true, NULL },
			{ "serial", "serial1", NULL, -1, "unix", B_UNIX, "/run/m/1.sock",
			  true, NULL },
			{ "serial", "serial7", "pci-serial", 7, "pty", B_PTY,
			  "/dev/pts/3", true, NULL },
		},
	},
	{
		/* qemuxml2argvdata/serial-tcp-chardev.xml */
		.title = "serial-tcp-chardev: tcp unsupported",
		.xml = "<domain type='qemu'>\n"
		       "  <name>QEMUGuest1</name>\n"
		       "  <devices>\n"
		       "    <serial type='tcp'>\n"
		       "      <source mode='connect' host='127.0.0.1' service='9999'/>\n"
		       "      <protocol type='raw'/>\n"
		       "      <target port='0'/>\n"
		       "    </serial>\n"
		       "    <console type='tcp'>\n"
		       "      <source mode='connect' host='127.0.0.1' service='9999'/>\n"
		       "      <protocol type='raw'/>\n"
		       "      <target port='0'/>\n"
		       "    </console>\n"
		       "  </devices>\n"
		       "</domain>\n",
		.name = "QEMUGuest1",
		.n_devs = 1,
		.devs = { { "serial", "serial0", NULL, 0, "tcp", B_OTHER, NULL, false,
			    "backend type 'tcp' is not supported" } },
	},
	{
		/* qemuxmlconfdata/serial-file-chardev.x86_64-latest.xml */
		.title = "serial-file-chardev: file unsupported, path kept",
		.xml = "<domain type='qemu'>\n"
		       "  <name>QEMUGuest1</name>\n"
		       "  <devices>\n"
		       "    <serial type='file'>\n"
		       "      <source path='/tmp/serial.log' append='on'/>\n"
		       "      <target type='isa-serial' port='0'>\n"
		       "        <model name='isa-serial'/>\n"
		       "      </target>\n"
		       "    </serial>\n"
		       "    <console type='file'>\n"
		       "      <source path='/tmp/serial.log' append='on'/>\n"
		       "      <target type='serial' port='0'/>\n"
		       "    </console>\n"
		       "  </devices>\n"
		       "</domain>\n",
		.name = "QEMUGuest1",
		.n_devs = 1,
		.devs = { { "serial", "serial0", "isa-serial", 0, "file", B_OTHER,
			    "/tmp/serial.log", false, "backend type 'file' is not supported" } },
	},
	{
		/* qemuxmlconfdata/serial-udp-chardev.x86_64-latest.xml */
		.title = "serial-udp-chardev: udp unsupported",
		.xml = "<domain type='qemu'>\n"
		       "  <name>QEMUGuest1</name>\n"
		       "  <devices>\n"
		       "    <serial type='udp'>\n"
		       "      <source mode='bind' host='127.0.0.1' service='9999'/>\n"
		       "      <source mode='connect' host='127.0.0.1' service='9998'/>\n"
		       "      <target type='isa-serial' port='0'>\n"
		       "        <model name='isa-serial'/>\n"
		       "      </target>\n"
		       "    </serial>\n"
		       "    <serial type='udp'>\n"
		       "      <source mode='connect' service='9999'/>\n"
		       "      <target type='isa-serial' port='1'>\n"
		       "        <model name='isa-serial'/>\n"
		       "      </target>\n"
		       "    </serial>\n"
		       "    <console type='udp'>\n"
		       "      <source mode='bind' host='127.0.0.1' service='9999'/>\n"
		       "      <source mode='connect' host='127.0.0.1' service='9998'/>\n"
		       "      <target type='serial' port='0'/>\n"
		       "    </console>\n"
		       "  </devices>\n"
		       "</domain>\n",
		.name = "QEMUGuest1",
		.n_devs = 2,
		.devs = {
			{ "serial", "serial0", "isa-serial", 0, "udp", B_OTHER, NULL,
			  false, "backend type 'udp' is not supported" },
			{ "serial", "serial1", "isa-serial", 1, "udp", B_OTHER, NULL,
			  false, "backend type 'udp' is not supported" },
		},
	},
	{
		.title = "missing type, bad port, empty alias",
		.xml = "<domain><name>t</name><devices>"
		       "<serial><source path='/dev/pts/1'/></serial>"
		       "<serial type='pty'><source path='/dev/pts/2'/><target port='-1'/>"
		       "<alias name=''/></serial>"
		       "<serial type='pty'><source path='/dev/pts/3'/>"
		       "<target port='99999999999'/></serial>"
		       "</devices></domain>",
		.name = "t",
		.n_devs = 3,
		.devs = {
			{ "serial", "serial0", NULL, -1, NULL, B_OTHER, "/dev/pts/1",
			  false, "no type attribute" },
			{ "serial", "serial1", NULL, -1, "pty", B_PTY, "/dev/pts/2",
			  false, "invalid <target port='-1'>" },
			{ "serial", "serial2", NULL, -1, "pty", B_PTY, "/dev/pts/3",
			  false, "invalid <target port='99999999999'>" },
		},
	},
	{
		.title = "no devices, no uuid, entities and CDATA in name",
		.xml = "<?xml version='1.0' encoding='UTF-8'?>\n"
		       "<!-- generated -->\n"
		       "<domain><name>a&amp;b&#x41;<![CDATA[<c>]]></name><uuid></uuid></domain>",
		.name = "a&bA<c>",
		.n_devs = 0,
	},
	{
		.title = "encoding declaration is ignored: input is UTF-8",
		.xml = "\xef\xbb\xbf<?xml version='1.0' encoding='ISO-8859-1'?>"
		       "<domain><name>caf\xc3\xa9</name></domain>",
		.name = "caf\xc3\xa9",
		.n_devs = 0,
	},

	/* failures */
	{
		.title = "missing name",
		.xml = "<domain type='kvm'><uuid>" UUID1 "</uuid><devices/></domain>",
		.ret = -EBADMSG,
		.error = "no <name> element",
	},
	{
		.title = "empty name",
		.xml = "<domain type='kvm'><name></name></domain>",
		.ret = -EBADMSG,
		.error = "<name> is empty",
	},
	{
		.title = "name in a namespace does not count",
		.xml = "<domain xmlns:q='urn:q'><q:name>x</q:name></domain>",
		.ret = -EBADMSG,
		.error = "no <name> element",
	},
	{
		.title = "wrong root",
		.xml = "<network><name>default</name></network>",
		.ret = -EBADMSG,
		.error = "root element is <network>, expected <domain> or <domstatus>",
	},
	{
		.title = "root in a namespace",
		.xml = "<domain xmlns='urn:x'><name>x</name></domain>",
		.ret = -EBADMSG,
		.error = "root element is <domain> in namespace 'urn:x', expected <domain> or "
			 "<domstatus>",
	},
	{
		.title = "domstatus without domain",
		.xml = "<domstatus state='running'><taint flag='x'/></domstatus>",
		.ret = -EBADMSG,
		.error = "no <domain> element in <domstatus>",
	},
	{
		.title = "malformed XML",
		.xml = "<domain type='kvm'>\n"
		       "  <name>x</nam>\n"
		       "</domain>\n",
		.ret = -EBADMSG,
		.error_has = "line 2: Opening and ending tag mismatch",
	},
	{
		.title = "truncated document",
		.xml = "<domain type='kvm'>\n"
		       "  <name>x</name>\n"
		       "  <devices>\n"
		       "    <serial type='pty'>",
		.ret = -EBADMSG,
		.error_has = "line 4: ",
	},
	{
		.title = "empty input",
		.xml = "",
		.ret = -EBADMSG,
		.error = "document is empty",
	},
	{
		.title = "whitespace only",
		.xml = " \n\t\n",
		.ret = -EBADMSG,
		.error_has = "line ",
	},
	{
		.title = "two roots",
		.xml = "<domain><name>a</name></domain><domain><name>b</name></domain>",
		.ret = -EBADMSG,
		.error_has = "line 1: ",
	},
	{
		.title = "billion laughs",
		.xml = "<?xml version='1.0'?>\n"
		       "<!DOCTYPE domain [\n"
		       " <!ENTITY a \"lollollollollollollollollollol\">\n"
		       " <!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n"
		       " <!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">\n"
		       " <!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\">\n"
		       " <!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">\n"
		       " <!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\">\n"
		       " <!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\">\n"
		       " <!ENTITY h \"&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;\">\n"
		       "]>\n"
		       "<domain><name>&h;</name></domain>\n",
		.ret = -EBADMSG,
		.error = "DTDs and entities are not allowed",
	},
	{
		.title = "external entity",
		.xml = "<?xml version='1.0'?>\n"
		       "<!DOCTYPE domain [ <!ENTITY xxe SYSTEM \"file:///etc/passwd\"> ]>\n"
		       "<domain><name>&xxe;</name></domain>\n",
		.ret = -EBADMSG,
		.error = "DTDs and entities are not allowed",
	},
	{
		.title = "external DTD",
		.xml = "<!DOCTYPE domain SYSTEM \"file:///etc/passwd\">\n"
		       "<domain><name>x</name></domain>\n",
		.ret = -EBADMSG,
		.error = "DTDs and entities are not allowed",
	},
	{
		.title = "parameter entities",
		.xml = "<!DOCTYPE domain [ <!ENTITY % p SYSTEM \"http://127.0.0.1:1/x.dtd\"> %p; ]>"
		       "<domain><name>x</name></domain>",
		.ret = -EBADMSG,
		.error = "DTDs and entities are not allowed",
	},
	{
		.title = "undeclared entity",
		.xml = "<domain><name>&passwd;</name></domain>",
		.ret = -EBADMSG,
		.error_has = "line 1: ",
	},
	{
		.title = "non-UTF-8 bytes",
		.xml = "<domain><name>\xff\xfe\xfd</name></domain>",
		.ret = -EBADMSG,
		.error_has = "line 1: ",
	},
	{
		.title = "binary garbage",
		BIN("\x80\x81\x82\x00\x01\xff\xfe garbage"),
		.ret = -EBADMSG,
		.error_has = "line 1: ",
	},
	{
		/* would go through iconv, which reports errors on stderr */
		.title = "declared Shift_JIS with bad bytes: not converted",
		.xml = "<?xml version='1.0' encoding='SHIFT_JIS'?>\n"
		       "<domain><name>\x81\x7f\xa0\xfd</name></domain>",
		.ret = -EBADMSG,
		.error_has = "line 2: ",
	},
	{
		.title = "UTF-16 is not accepted",
		BIN("\xff\xfe<\0d\0o\0m\0a\0i\0n\0>\0<\0/\0d\0o\0m\0a\0i\0n\0>\0"),
		.ret = -EBADMSG,
		.error_has = "line 1: ",
	},
	{
		.title = "NUL byte inside the document",
		BIN("<domain>\0<name>x</name></domain>"),
		.ret = -EBADMSG,
		.error_has = "line 1: ",
	},
};

/* ---- helpers ---- */

struct quiet {
	int saved;
	FILE *f;
};

/* Send fd 2 to a temporary file so that anything libxml2 prints is caught. */
static void quiet_begin(struct quiet *q)
{
	fflush(stderr);
	q->f = tmpfile();
	assert_non_null(q->f);
	q->saved = dup(STDERR_FILENO);
	assert_true(q->saved >= 0);
	assert_true(dup2(fileno(q->f), STDERR_FILENO) >= 0);
}

/* Restore fd 2 and fail if anything was written meanwhile. */
static void quiet_end(struct quiet *q)
{
	struct stat st;

	fflush(stderr);
	assert_true(dup2(q->saved, STDERR_FILENO) >= 0);
	close(q->saved);
	assert_int_equal(fstat(fileno(q->f), &st), 0);
	fclose(q->f);
	assert_int_equal(st.st_size, 0);
}

/* Parse from an exact-size heap copy (no terminating NUL for ASan to hide behind). */
static int parse_exact(const char *xml, size_t len, struct domxml **ret, char **ret_error)
{
	struct quiet q;
	char *copy;
	int r;

	copy = malloc(len ? len : 1);
	assert_non_null(copy);
	memcpy(copy, xml, len);
	quiet_begin(&q);
	r = domxml_parse(copy, len, ret, ret_error);
	quiet_end(&q);
	free(copy);
	return r;
}

static void check_str(size_t i, const char *what, const char *got, const char *want)
{
	if (!want && !got)
		return;
	if (!want || !got || strcmp(got, want) != 0)
		fail_msg("dev %zu %s: got %s%s%s, expected %s%s%s", i, what, got ? "'" : "",
			 got ? got : "NULL", got ? "'" : "", want ? "'" : "", want ? want : "NULL",
			 want ? "'" : "");
}

static void check_int(size_t i, const char *what, int got, int want)
{
	if (got != want)
		fail_msg("dev %zu %s: got %d, expected %d", i, what, got, want);
}

static void check_dev(size_t i, const struct domxml_dev *got, const struct exp_dev *want)
{
	check_str(i, "element", got->element, want->element);
	check_str(i, "alias", got->alias, want->alias);
	check_str(i, "target_type", got->target_type, want->target_type);
	check_int(i, "port", got->port, want->port);
	check_str(i, "type", got->type, want->type);
	check_int(i, "backend", got->backend, want->backend);
	check_str(i, "path", got->path, want->path);
	check_int(i, "supported", got->supported, want->supported);
	check_str(i, "reason", got->reason, want->reason);
}

static void run_case(void **state)
{
	const struct tcase *c = *state;
	size_t len = c->len ? c->len : strlen(c->xml);
	struct domxml *d = NULL;
	char *error = NULL;
	int r;

	r = parse_exact(c->xml, len, &d, &error);
	if (r != c->ret)
		fail_msg("%s: returned %d (%s), expected %d", c->title, r,
			 error ? error : "no message", c->ret);

	if (c->ret < 0) {
		assert_null(d);
		assert_non_null(error);
		if (c->error)
			assert_string_equal(error, c->error);
		if (c->error_has && !strstr(error, c->error_has))
			fail_msg("error '%s' lacks '%s'", error, c->error_has);
		free(error);
		return;
	}

	assert_null(error);
	assert_non_null(d);
	assert_string_equal(d->name, c->name);
	if (c->uuid)
		assert_string_equal(d->uuid, c->uuid);
	else
		assert_null(d->uuid);
	assert_int_equal(d->n_devs, c->n_devs);
	for (size_t i = 0; i < c->n_devs; i++)
		check_dev(i, &d->devs[i], &c->devs[i]);
	domxml_free(d);
}

/* ---- generated inputs ---- */

struct sbuf {
	char *p;
	size_t len, cap;
};

static void sbuf_add(struct sbuf *b, const char *fmt, ...) _printf_(2, 3);

static void sbuf_add(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		assert_true(n >= 0);
		if (b->p && b->len + (size_t)n < b->cap)
			break;
		b->cap = (b->cap + (size_t)n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	b->len += (size_t)n;
}

static char *repeat_char(char ch, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, ch, n);
	s[n] = '\0';
	return s;
}

static void test_size_cap(void **state)
{
	static const char head[] = "<domain><name>big</name><!--";
	static const char tail[] = "--></domain>";
	size_t len = DOMXML_MAX_SIZE;
	struct domxml *d = NULL;
	char *buf, *error = NULL;
	int r;

	/* exactly at the limit: parsed */
	buf = malloc(len + 1);
	assert_non_null(buf);
	memset(buf, 'x', len + 1);
	memcpy(buf, head, strlen(head));
	memcpy(buf + len - strlen(tail), tail, strlen(tail));
	r = parse_exact(buf, len, &d, &error);
	assert_int_equal(r, 0);
	assert_null(error);
	assert_string_equal(d->name, "big");
	assert_int_equal(d->n_devs, 0);
	domxml_free(d);
	d = NULL;

	/* one byte more: refused before parsing */
	memcpy(buf + len + 1 - strlen(tail), tail, strlen(tail));
	r = domxml_parse(buf, len + 1, &d, &error);
	assert_int_equal(r, -EFBIG);
	assert_null(d);
	assert_string_equal(error, "document is 8388609 bytes, over the 8388608 byte limit");
	free(error);
	free(buf);
}

static char *devices_doc(unsigned n_serials, bool dup_console)
{
	struct sbuf b = {};

	sbuf_add(&b, "<domain type='kvm'><name>many</name><devices>\n");
	for (unsigned i = 0; i < n_serials; i++)
		sbuf_add(&b, "<serial type='unix'><source mode='bind' path='/run/m/%u.sock'/>"
			     "<target type='pci-serial' port='%u'/></serial>\n", i, i);
	if (dup_console)
		sbuf_add(&b, "<console type='unix'><source mode='bind' path='/run/m/0.sock'/>"
			     "<target type='serial' port='0'/></console>\n");
	sbuf_add(&b, "</devices></domain>\n");
	return b.p;
}

static void test_device_cap(void **state)
{
	struct domxml *d = NULL;
	char *xml, *error = NULL;
	char want[64];
	int r;

	/* at the cap, plus a dropped duplicate console: fine */
	xml = devices_doc(DOMXML_MAX_DEVICES, true);
	r = parse_exact(xml, strlen(xml), &d, &error);
	free(xml);
	assert_int_equal(r, 0);
	assert_int_equal(d->n_devs, DOMXML_MAX_DEVICES);
	for (unsigned i = 0; i < DOMXML_MAX_DEVICES; i++) {
		snprintf(want, sizeof(want), "serial%u", i);
		assert_string_equal(d->devs[i].alias, want);
		snprintf(want, sizeof(want), "/run/m/%u.sock", i);
		assert_string_equal(d->devs[i].path, want);
		assert_int_equal(d->devs[i].port, (int)i);
		assert_true(d->devs[i].supported);
	}
	domxml_free(d);
	d = NULL;

	/* one more: refused as a whole */
	xml = devices_doc(DOMXML_MAX_DEVICES + 1, false);
	r = parse_exact(xml, strlen(xml), &d, &error);
	free(xml);
	assert_int_equal(r, -E2BIG);
	assert_null(d);
	assert_string_equal(error, "more than 64 serial/console devices");
	free(error);
}

static void test_string_caps(void **state)
{
	struct domxml *d = NULL;
	char *error = NULL, *path;
	struct sbuf b = {};
	int r;

	/* a path of exactly DOMXML_MAX_STRING bytes is kept, one more is not */
	path = repeat_char('p', DOMXML_MAX_STRING);
	path[0] = '/';
	sbuf_add(&b, "<domain><name>s</name><devices>"
		     "<serial type='unix'><source mode='bind' path='%s'/></serial>"
		     "<serial type='unix'><source mode='bind' path='%sq'/></serial>"
		     "<serial type='pty'><source path='/dev/pts/1'/><alias name='%s'/></serial>"
		     "</devices></domain>", path, path, path + 1);
	r = parse_exact(b.p, b.len, &d, &error);
	assert_int_equal(r, 0);
	assert_int_equal(d->n_devs, 3);
	assert_string_equal(d->devs[0].path, path);
	assert_true(d->devs[0].supported);
	assert_null(d->devs[0].reason);
	assert_null(d->devs[1].path);
	assert_false(d->devs[1].supported);
	assert_int_equal(d->devs[1].backend, DOMXML_BACKEND_UNIX);
	assert_string_equal(d->devs[1].reason,
			    "<source path> is 4097 bytes, over the 4096 byte limit");
	/* an alias of 4095 bytes is fine */
	assert_string_equal(d->devs[2].alias, path + 1);
	assert_true(d->devs[2].supported);
	domxml_free(d);
	d = NULL;
	free(b.p);
	b = (struct sbuf){};

	/* too long an alias: synthesised instead, and the device is refused */
	sbuf_add(&b, "<domain><name>s</name><devices><serial type='pty'>"
		     "<source path='/dev/pts/1'/><alias name='%sxx'/></serial></devices></domain>",
		 path);
	r = parse_exact(b.p, b.len, &d, &error);
	assert_int_equal(r, 0);
	assert_int_equal(d->n_devs, 1);
	assert_string_equal(d->devs[0].alias, "serial0");
	assert_string_equal(d->devs[0].path, "/dev/pts/1");
	assert_false(d->devs[0].supported);
	assert_string_equal(d->devs[0].reason,
			    "<alias name> is 4098 bytes, over the 4096 byte limit");
	domxml_free(d);
	d = NULL;
	free(b.p);
	b = (struct sbuf){};

	/* too long a uuid fails the document too */
	sbuf_add(&b, "<domain><name>n</name><uuid>%su</uuid></domain>", path);
	r = parse_exact(b.p, b.len, &d, &error);
	assert_int_equal(r, -EBADMSG);
	assert_null(d);
	assert_string_equal(error, "<uuid> is 4097 bytes, over the 4096 byte limit");
	free(error);
	free(b.p);
	b = (struct sbuf){};

	/* too long a name fails the document */
	sbuf_add(&b, "<domain><name>%sn</name></domain>", path);
	r = parse_exact(b.p, b.len, &d, &error);
	assert_int_equal(r, -EBADMSG);
	assert_null(d);
	assert_string_equal(error, "<name> is 4097 bytes, over the 4096 byte limit");
	free(error);
	free(b.p);
	free(path);
}

/* Every proper prefix of a valid document is refused, with a line number. */
static const struct tcase *find_case(const char *title_prefix)
{
	for (size_t i = 0; i < ELEMENTSOF(cases); i++)
		if (strncmp(cases[i].title, title_prefix, strlen(title_prefix)) == 0)
			return &cases[i];
	fail_msg("no case '%s'", title_prefix);
	return NULL;
}

static void test_truncation_sweep(void **state)
{
	const char *xml = find_case("domstatus wrapper")->xml;
	size_t len = strlen(xml), end = strstr(xml, "</domstatus>") - xml + strlen("</domstatus>");
	struct domxml *d = NULL;
	char *error = NULL;
	int r;

	for (size_t n = 1; n < end; n++) {
		r = parse_exact(xml, n, &d, &error);
		if (r != -EBADMSG)
			fail_msg("prefix of %zu bytes: returned %d", n, r);
		assert_null(d);
		assert_non_null(error);
		if (!strstr(error, "line "))
			fail_msg("prefix of %zu bytes: '%s'", n, error);
		free(error);
		error = NULL;
	}
	for (size_t n = end; n <= len; n++) {
		r = parse_exact(xml, n, &d, &error);
		assert_int_equal(r, 0);
		assert_int_equal(d->n_devs, 1);
		domxml_free(d);
		d = NULL;
	}
}

static void on_alarm(int sig)
{
	static const char msg[] = "test-domxml: parser blocked reading an external entity\n";

	(void)!write(STDOUT_FILENO, msg, sizeof(msg) - 1);
	_exit(1);
}

/*
 * External entities are never opened: the entity names a FIFO that holds
 * bytes and has a writer, so a read would either consume the bytes or block
 * (caught by the alarm).
 */
static void test_external_entity_not_read(void **state)
{
	static const char secret[] = "SECRET";
	char dir[] = "/tmp/test-domxml-XXXXXX", fifo[64], back[16];
	struct domxml *d = NULL;
	char *error = NULL;
	struct sbuf b = {};
	int fd, r;

	assert_non_null(mkdtemp(dir));
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	fd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, secret, strlen(secret)), (ssize_t)strlen(secret));

	signal(SIGALRM, on_alarm);
	alarm(10);
	sbuf_add(&b, "<!DOCTYPE domain [ <!ENTITY x SYSTEM \"file://%s\"> ]>\n"
		     "<domain><name>&x;</name></domain>", fifo);
	r = parse_exact(b.p, b.len, &d, &error);
	free(b.p);
	b = (struct sbuf){};
	assert_int_equal(r, -EBADMSG);
	assert_string_equal(error, "DTDs and entities are not allowed");
	free(error);
	error = NULL;

	/* the same as an external DTD subset */
	sbuf_add(&b, "<!DOCTYPE domain SYSTEM \"%s\">\n<domain><name>x</name></domain>", fifo);
	r = parse_exact(b.p, b.len, &d, &error);
	free(b.p);
	assert_int_equal(r, -EBADMSG);
	assert_string_equal(error, "DTDs and entities are not allowed");
	free(error);
	alarm(0);
	signal(SIGALRM, SIG_DFL);

	memset(back, 0, sizeof(back));
	assert_int_equal(read(fd, back, sizeof(back)), (ssize_t)strlen(secret));
	assert_string_equal(back, secret);
	close(fd);
	assert_int_equal(unlink(fifo), 0);
	assert_int_equal(rmdir(dir), 0);
}

static unsigned n_global_errors;

static void count_structured(void *data, xmlErrorPtr e)
{
	n_global_errors++;
}

static void count_generic(void *data, const char *fmt, ...)
{
	n_global_errors++;
}

/* Errors stay in the parser context: libxml2's global handlers are never called. */
static void test_global_handlers_unused(void **state)
{
	static const char *const docs[] = {
		"<domain><name>x</nam></domain>",
		"<domain><name>\xff</name></domain>",
		"<!DOCTYPE domain [ <!ENTITY a 'b'> ]><domain><name>&a;</name></domain>",
		"<?xml version='1.0' encoding='SHIFT_JIS'?><domain><name>\x81\x7f</name></domain>",
		"<domain><name>&undefined;</name></domain>",
	};
	struct domxml *d = NULL;
	char *error = NULL;
	int r;

	xmlSetStructuredErrorFunc(NULL, count_structured);
	xmlSetGenericErrorFunc(NULL, count_generic);
	n_global_errors = 0;
	for (size_t i = 0; i < ELEMENTSOF(docs); i++) {
		r = parse_exact(docs[i], strlen(docs[i]), &d, &error);
		assert_int_equal(r, -EBADMSG);
		assert_null(d);
		free(error);
		error = NULL;
	}
	xmlSetStructuredErrorFunc(NULL, NULL);
	xmlSetGenericErrorFunc(NULL, NULL);
	assert_int_equal(n_global_errors, 0);
}

static void test_null_error_pointer(void **state)
{
	struct domxml *d = NULL;
	int r;

	r = domxml_parse("<domain/>", 9, &d, NULL);
	assert_int_equal(r, -EBADMSG);
	assert_null(d);
	r = domxml_parse("<domain", 7, &d, NULL);
	assert_int_equal(r, -EBADMSG);
	r = domxml_parse(NULL, 0, &d, NULL);
	assert_int_equal(r, -EBADMSG);
	r = domxml_parse("<domain><name>n</name></domain>", 31, &d, NULL);
	assert_int_equal(r, 0);
	assert_string_equal(d->name, "n");
	domxml_free(d);
	domxml_free(NULL);
}

/* The QEMU user: the first DAC seclabel of type dynamic or static, its label as written. */
static void test_dac_label(void **state)
{
	static const struct {
		const char *xml, *label;
	} t[] = {
		{ "<domain><name>n</name><seclabel type='dynamic' model='selinux'><label>x</label>"
		  "</seclabel><seclabel type='dynamic' model='dac' relabel='yes'>"
		  "<label>+64055:+64055</label><imagelabel>+64055:+64055</imagelabel></seclabel>"
		  "</domain>", "+64055:+64055" },
		{ "<domstatus><domain><name>n</name><seclabel type='static' model='dac'>"
		  "<label>libvirt-qemu:kvm</label></seclabel></domain></domstatus>",
		  "libvirt-qemu:kvm" },
		{ "<domain><name>n</name><seclabel type='none' model='dac'><label>+0:+0</label>"
		  "</seclabel></domain>", NULL },
		{ "<domain><name>n</name><seclabel type='dynamic' model='dac'/></domain>", NULL },
		{ "<domain><name>n</name><seclabel type='dynamic' model='dac'><label></label>"
		  "</seclabel></domain>", NULL },
		{ "<domain><name>n</name><devices><seclabel type='dynamic' model='dac'>"
		  "<label>+1:+1</label></seclabel></devices></domain>", NULL },
		{ "<domain><name>n</name></domain>", NULL },
	};

	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		struct domxml *d = NULL;

		assert_int_equal(domxml_parse(t[i].xml, strlen(t[i].xml), &d, NULL), 0);
		if (t[i].label)
			assert_string_equal(d->dac_label, t[i].label);
		else
			assert_null(d->dac_label);
		domxml_free(d);
	}
}

int main(void)
{
	static const struct CMUnitTest extra[] = {
		cmocka_unit_test(test_dac_label),
		cmocka_unit_test(test_size_cap),
		cmocka_unit_test(test_device_cap),
		cmocka_unit_test(test_string_caps),
		cmocka_unit_test(test_truncation_sweep),
		cmocka_unit_test(test_external_entity_not_read),
		cmocka_unit_test(test_global_handlers_unused),
		cmocka_unit_test(test_null_error_pointer),
	};
	struct CMUnitTest tests[ELEMENTSOF(cases) + ELEMENTSOF(extra)];
	size_t n = 0;

	for (size_t i = 0; i < ELEMENTSOF(cases); i++)
		tests[n++] = (struct CMUnitTest){
			.name = cases[i].title,
			.test_func = run_case,
			.initial_state = (void *)&cases[i],
		};
	for (size_t i = 0; i < ELEMENTSOF(extra); i++)
		tests[n++] = extra[i];

	return _cmocka_run_group_tests("domxml", tests, n, NULL, NULL);
}
