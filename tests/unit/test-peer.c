/* SPDX-License-Identifier: MIT */
/*
 * Guest peer rules: ttyhubd's own pid is never a guest; root and ttyhubd's
 * own uid only when the operator named them; any other uid than the
 * expected one is refused, each with its own message.  Also the parsing of
 * DAC labels and --guest-user, and the pty path and major checks.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "peer.h"

#define SELF_PID 4242
#define SELF_UID 998 /* ttyhubd's user */
#define PATH "/x/y.sock"

static char err[256];

static int check(const struct peer_guest *g, pid_t pid, uid_t uid)
{
	err[0] = '\0';
	return peer_check(g, pid, uid, SELF_PID, SELF_UID, PATH, err, sizeof(err));
}

static void test_own_pid_always_refused(void **state)
{
	const struct peer_guest root = { .set = true, .uid = 0, .explicit = true };
	const struct peer_guest self = { .set = true, .uid = SELF_UID, .explicit = true };

	assert_int_equal(check(NULL, SELF_PID, 1001), -EPERM);
	assert_string_equal(err, "the peer of /x/y.sock is ttyhubd itself");
	/* Not even when root or ttyhubd's own user were named explicitly. */
	assert_int_equal(check(&root, SELF_PID, 0), -EPERM);
	assert_string_equal(err, "the peer of /x/y.sock is ttyhubd itself");
	assert_int_equal(check(&self, SELF_PID, SELF_UID), -EPERM);
	assert_string_equal(err, "the peer of /x/y.sock is ttyhubd itself");
}

static void test_root_and_self(void **state)
{
	const struct peer_guest none = {};
	const struct peer_guest want_root = { .set = true, .uid = 0 }; /* e.g. a seclabel +0:+0 */
	const struct peer_guest root = { .set = true, .uid = 0, .explicit = true, .name = "root" };
	const struct peer_guest self = { .set = true, .uid = SELF_UID, .explicit = true };
	const struct peer_guest other = { .set = true, .uid = 64055, .explicit = true };

	assert_int_equal(check(&none, 1, 0), -EPERM);
	assert_string_equal(err, "the peer of /x/y.sock is uid 0 (root), not a guest");
	assert_int_equal(check(NULL, 1, SELF_UID), -EPERM);
	assert_string_equal(err, "the peer of /x/y.sock is uid 998, ttyhubd's own, not a guest");
	/* A source that expects root is not enough: the operator must say so. */
	assert_int_equal(check(&want_root, 1, 0), -EPERM);
	assert_string_equal(err, "the peer of /x/y.sock is uid 0 (root), not a guest");
	/* --guest-user root: root is accepted, ttyhubd's own uid still is not. */
	assert_int_equal(check(&root, 1, 0), 0);
	assert_int_equal(check(&root, 1, SELF_UID), -EPERM);
	assert_string_equal(err, "the peer of /x/y.sock is uid 998, ttyhubd's own, not a guest");
	assert_int_equal(check(&root, 1, 1001), -EPERM);
	assert_string_equal(err, "the peer of /x/y.sock is uid 1001, expected 0 (root)");
	/* --guest-user naming ttyhubd's own user. */
	assert_int_equal(check(&self, 1, SELF_UID), 0);
	assert_int_equal(check(&self, 1, 0), -EPERM);
	/* Naming another user never admits root. */
	assert_int_equal(check(&other, 1, 0), -EPERM);
	assert_string_equal(err, "the peer of /x/y.sock is uid 0 (root), not a guest");
}

static void test_expected_uid(void **state)
{
	const struct peer_guest qemu = { .set = true, .uid = 64055, .name = "libvirt-qemu" };
	const struct peer_guest anon = { .set = true, .uid = 1234 };

	assert_int_equal(check(&qemu, 77, 64055), 0);
	assert_string_equal(err, "");
	assert_int_equal(check(&qemu, 77, 1001), -EPERM);
	assert_string_equal(err,
			    "the peer of /x/y.sock is uid 1001, expected 64055 (libvirt-qemu)");
	assert_int_equal(check(&anon, 77, 1001), -EPERM);
	assert_string_equal(err, "the peer of /x/y.sock is uid 1001, expected 1234");
	/* Nothing expected: any uid but root and ttyhubd's own. */
	assert_int_equal(check(NULL, 77, 1001), 0);
	assert_int_equal(check(&(struct peer_guest){}, 77, 65534), 0);
}

static void test_parse_user(void **state)
{
	char name[64];
	uid_t uid = 7;

	assert_int_equal(peer_parse_user("+64055:+64055", false, &uid, name, sizeof(name)), 1);
	assert_int_equal(uid, 64055);
	assert_int_equal(peer_parse_user("+0:+0", false, &uid, name, sizeof(name)), 1);
	assert_int_equal(uid, 0);
	assert_int_equal(peer_parse_user("+107", false, &uid, name, sizeof(name)), 1);
	assert_int_equal(uid, 107);
	assert_int_equal(peer_parse_user("libvirt-qemu:kvm", false, &uid, name, sizeof(name)), 0);
	assert_string_equal(name, "libvirt-qemu");
	assert_int_equal(peer_parse_user("qemu", false, &uid, name, sizeof(name)), 0);
	assert_string_equal(name, "qemu");
	/* A bare number is a name in a label, a uid for --guest-user. */
	assert_int_equal(peer_parse_user("1001", false, &uid, name, sizeof(name)), 0);
	assert_string_equal(name, "1001");
	assert_int_equal(peer_parse_user("1001", true, &uid, name, sizeof(name)), 1);
	assert_int_equal(uid, 1001);
	assert_int_equal(peer_parse_user("0", true, &uid, name, sizeof(name)), 1);
	assert_int_equal(uid, 0);
	assert_int_equal(peer_parse_user("root", true, &uid, name, sizeof(name)), 0);
	assert_string_equal(name, "root");

	uid = 7;
	assert_int_equal(peer_parse_user("", true, &uid, name, sizeof(name)), -EINVAL);
	assert_int_equal(peer_parse_user(":kvm", false, &uid, name, sizeof(name)), -EINVAL);
	assert_int_equal(peer_parse_user("+", false, &uid, name, sizeof(name)), -EINVAL);
	assert_int_equal(peer_parse_user("+12a:+1", false, &uid, name, sizeof(name)), -EINVAL);
	assert_int_equal(peer_parse_user("+4294967295", false, &uid, name, sizeof(name)), -EINVAL);
	assert_int_equal(peer_parse_user("+99999999999", false, &uid, name, sizeof(name)), -EINVAL);
	assert_int_equal(peer_parse_user("-1", true, &uid, name, sizeof(name)), -EINVAL);
	assert_int_equal(peer_parse_user("a b", false, &uid, name, sizeof(name)), -EINVAL);
	assert_int_equal(peer_parse_user("a/b", false, &uid, name, sizeof(name)), -EINVAL);
	assert_int_equal(peer_parse_user("abcdefgh", false, &uid, name, 8), -EINVAL);
	assert_int_equal(peer_parse_user(NULL, false, &uid, name, sizeof(name)), -EINVAL);
	assert_int_equal(uid, 7); /* untouched on failure */
	assert_int_equal(peer_parse_user("+4294967294", false, &uid, name, sizeof(name)), 1);
	assert_int_equal(uid, 4294967294u);
}

static void test_pty(void **state)
{
	assert_true(peer_pty_path_ok("/dev/pts/0"));
	assert_true(peer_pty_path_ok("/dev/pts/123"));
	assert_false(peer_pty_path_ok("/dev/pts/"));
	assert_false(peer_pty_path_ok("/dev/pts/../zero"));
	assert_false(peer_pty_path_ok("/dev/pts/.."));
	assert_false(peer_pty_path_ok("/dev/pts/0/x"));
	assert_false(peer_pty_path_ok("/dev/zero"));
	assert_false(peer_pty_path_ok("/dev/ptsx/1"));
	assert_false(peer_pty_path_ok("/tmp/dev/pts/1"));
	assert_false(peer_pty_path_ok("dev/pts/1"));
	assert_false(peer_pty_path_ok(NULL));
	assert_true(peer_pty_major_ok(136));
	assert_true(peer_pty_major_ok(143));
	assert_false(peer_pty_major_ok(135));
	assert_false(peer_pty_major_ok(144));
	assert_false(peer_pty_major_ok(1)); /* /dev/zero, /dev/mem */
	assert_false(peer_pty_major_ok(5)); /* /dev/tty, /dev/ptmx */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_own_pid_always_refused),
		cmocka_unit_test(test_root_and_self),
		cmocka_unit_test(test_expected_uid),
		cmocka_unit_test(test_parse_user),
		cmocka_unit_test(test_pty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
