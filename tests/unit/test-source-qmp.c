/* SPDX-License-Identifier: MIT */
/*
 * The QMP source's translation of query-chardev's answer into a domain
 * definition (source_qmp_chardevs_to_domain, pure): which chardevs become
 * consoles, their names and paths, and which one is primary.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "source-qmp.h"

static struct domxml *translate(const char *reply_text, const char *uuid)
{
	json_t *reply = json_loads(reply_text, 0, NULL);
	struct domxml *dom = NULL;

	assert_non_null(reply);
	assert_int_equal(source_qmp_chardevs_to_domain(reply, "/run/vm/qmp.sock", "vm", uuid,
						       &dom), 0);
	json_decref(reply);
	assert_non_null(dom);
	assert_string_equal(dom->name, "vm");
	return dom;
}

static void check_dev(const struct domxml_dev *d, const char *element, const char *alias,
		      const char *chardev, enum domxml_backend backend, const char *path)
{
	assert_string_equal(d->element, element);
	assert_string_equal(d->alias, alias);
	assert_string_equal(d->chardev, chardev);
	assert_int_equal(d->backend, backend);
	assert_string_equal(d->type, backend == DOMXML_BACKEND_PTY ? "pty" : "unix");
	assert_string_equal(d->path, path);
	assert_true(d->supported);
	assert_null(d->reason);
}

static void test_consoles_and_primary(void **state)
{
	struct domxml *dom = translate(
		"[{\"label\": \"compat_monitor0\", \"filename\": \"unix:/run/vm/hmp.sock,server=on\"},"
		" {\"label\": \"qmp\", \"filename\": \"unix:/run/vm/qmp.sock,server=on\"},"
		" {\"label\": \"charconsole0\", \"filename\": \"pty:/dev/pts/7\"},"
		" {\"label\": \"charserial0\", \"filename\": "
		"   \"disconnected:unix:/run/vm/serial0.sock,server=on\", \"frontend-open\": true},"
		" {\"label\": \"charserial1\", \"filename\": \"unix:/run/vm/s1.sock,server=on\"},"
		" {\"label\": \"client\", \"filename\": \"unix:/run/vm/out.sock\"},"
		" {\"label\": \"log\", \"filename\": \"file:/var/log/vm.log\"},"
		" {\"label\": \"rel\", \"filename\": \"unix:relative.sock,server=on\"},"
		" {\"filename\": \"unix:/run/vm/nolabel.sock,server=on\"}]",
		"c7a5fdbd-cdaf-9455-926a-d65c16db1809");

	assert_string_equal(dom->uuid, "c7a5fdbd-cdaf-9455-926a-d65c16db1809");
	assert_int_equal(dom->n_devs, 3);
	/* The first serial chardev is primary, whatever came before it. */
	check_dev(&dom->devs[0], "serial", "serial0", "charserial0", DOMXML_BACKEND_UNIX,
		  "/run/vm/serial0.sock");
	check_dev(&dom->devs[1], "console", "console0", "charconsole0", DOMXML_BACKEND_PTY,
		  "/dev/pts/7");
	check_dev(&dom->devs[2], "serial", "serial1", "charserial1", DOMXML_BACKEND_UNIX,
		  "/run/vm/s1.sock");
	domxml_free(dom);
}

static void test_nothing_usable(void **state)
{
	struct domxml *dom = translate("[]", NULL);

	assert_null(dom->uuid);
	assert_int_equal(dom->n_devs, 0);
	domxml_free(dom);
	dom = translate("{\"not\": \"an array\"}", NULL);
	assert_int_equal(dom->n_devs, 0);
	domxml_free(dom);
}

static void test_label_without_char_prefix(void **state)
{
	struct domxml *dom = translate(
		"[{\"label\": \"ttyS\", \"filename\": \"unix:/run/vm/ttyS.sock,server=on\"},"
		" {\"label\": \"char\", \"filename\": \"unix:/run/vm/char.sock,server=on\"}]", NULL);

	assert_int_equal(dom->n_devs, 2);
	/* No "serial" in any label: the order stays. */
	check_dev(&dom->devs[0], "serial", "ttyS", "ttyS", DOMXML_BACKEND_UNIX,
		  "/run/vm/ttyS.sock");
	check_dev(&dom->devs[1], "serial", "char", "char", DOMXML_BACKEND_UNIX,
		  "/run/vm/char.sock");
	domxml_free(dom);
}

static void test_at_most_max_devices(void **state)
{
	json_t *reply = json_array();
	struct domxml *dom = NULL;

	for (int i = 0; i < DOMXML_MAX_DEVICES + 5; i++) {
		char label[32], file[64];

		snprintf(label, sizeof(label), "charserial%d", i);
		snprintf(file, sizeof(file), "unix:/run/vm/s%d.sock,server=on", i);
		json_array_append_new(reply, json_pack("{s:s, s:s}", "label", label, "filename",
						       file));
	}
	assert_int_equal(source_qmp_chardevs_to_domain(reply, "/run/vm/qmp.sock", "vm", NULL,
						       &dom), 0);
	assert_int_equal(dom->n_devs, DOMXML_MAX_DEVICES);
	char last[64];

	snprintf(last, sizeof(last), "/run/vm/s%d.sock", DOMXML_MAX_DEVICES - 1);
	assert_string_equal(dom->devs[DOMXML_MAX_DEVICES - 1].path, last);
	domxml_free(dom);
	json_decref(reply);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_consoles_and_primary),
		cmocka_unit_test(test_nothing_usable),
		cmocka_unit_test(test_label_without_char_prefix),
		cmocka_unit_test(test_at_most_max_devices),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
