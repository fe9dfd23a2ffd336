/* SPDX-License-Identifier: MIT */
/*
 * Session recordings (broker/recording.h) in a temporary directory: file
 * names and their order, the file (where, mode 0640, header, events with
 * the injected clock's times), output merged into the event still in the
 * buffer within 20 ms (characters whole), input attribution ("input from" only when
 * the typist changes), markers, resize, the cap (a final "truncated"
 * marker, the file never past max_size, nothing after), rotation (the
 * oldest removed, --record-keep left), a symlinked console directory
 * refused, and the failure paths with an injected write(): a full disk
 * and a disk that does not keep up cut the recording with a marker.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "recording.h"

static char tmpdir[64];
static uint64_t fake_now;

static uint64_t fake_clock(void)
{
	return fake_now;
}

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test-recording-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	fake_now = 1000000;
	recording_set_clock(fake_clock);
	recording_set_write_fn(NULL);
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int teardown(void **state)
{
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	recording_set_clock(NULL);
	recording_set_write_fn(NULL);
	return 0;
}

static const struct recording_config *cfg_of(size_t max_size, unsigned keep, bool redact)
{
	static struct recording_config cfg;

	cfg = (struct recording_config){
		.dir = tmpdir, .max_size = max_size, .keep = keep, .redact = redact,
	};
	return &cfg;
}

static struct recording *open_rec(const struct recording_config *cfg, unsigned id)
{
	struct recording *r = NULL;

	assert_int_equal(recording_open(NULL, cfg, &(const struct recording_info){
		.console = "vm:serial0",
		.vm = "vm",
		.principal = "alice (ssh SHA256:abc)",
		.client_id = id,
		.width = 100,
		.height = 30,
	}, &r), 0);
	assert_non_null(r);
	return r;
}

/* The file's lines as JSON values (header first); returns the count. */
static size_t read_lines(const char *rel, json_t **lines, size_t max, size_t *ret_size)
{
	char path[512], *buf = NULL;
	size_t cap = 0, n = 0;
	FILE *f;
	ssize_t k;
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fstat(fileno(f), &st), 0);
	if (ret_size)
		*ret_size = (size_t)st.st_size;
	while ((k = getline(&buf, &cap, f)) > 0) {
		json_error_t err;

		assert_true(n < max);
		assert_int_equal(buf[k - 1], '\n');
		lines[n] = json_loadb(buf, (size_t)k, 0, &err);
		if (!lines[n])
			fail_msg("line %zu is not JSON: %s (%s)", n, buf, err.text);
		n++;
	}
	free(buf);
	fclose(f);
	return n;
}

static void free_lines(json_t **lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(lines[i]);
}

static const char *ev_type(json_t *ev)
{
	return json_string_value(json_array_get(ev, 1));
}

static const char *ev_data(json_t *ev)
{
	return json_string_value(json_array_get(ev, 2));
}

static void test_names(void **state)
{
	char buf[RECORDING_FILE_NAME_MAX];

	assert_int_equal(recording_file_name(1764950000, 7, 1, buf, sizeof(buf)), 23);
	assert_string_equal(buf, "20251205T155320Z-7.cast");
	assert_true(recording_file_name(1764950000, 4294967295u, 99, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "20251205T155320Z-4294967295-99.cast");
	assert_int_equal(recording_file_name(0, 1, 1, buf, 10), -EINVAL);

	assert_true(recording_is_name("20251205T155320Z-7.cast"));
	assert_true(recording_is_name("20251205T155320Z-7-2.cast"));
	assert_false(recording_is_name("20251205T155320Z-.cast"));
	assert_false(recording_is_name("20251205T155320Z-7.log"));
	assert_false(recording_is_name("x0251205T155320Z-7.cast"));
	assert_false(recording_is_name("20251205T155320Z-7-2-3.cast"));
	assert_false(recording_is_name(".cast"));

	/* Time first, then the client id and the sequence as numbers (9 before 10). */
	assert_true(recording_name_compare("20251205T155320Z-9.cast", "20251205T155320Z-10.cast") < 0);
	assert_true(recording_name_compare("20251205T155319Z-99.cast", "20251205T155320Z-1.cast") < 0);
	assert_true(recording_name_compare("20251205T155320Z-9-2.cast", "20251205T155320Z-9.cast") > 0);
	assert_int_equal(recording_name_compare("20251205T155320Z-9.cast", "20251205T155320Z-9.cast"),
			 0);
}

static void test_file(void **state)
{
	struct recording *r = open_rec(cfg_of(RECORDING_DEFAULT_MAX_SIZE, 10, true), 7);
	char rel[256], path[512];
	json_t *lines[32];
	struct stat st;
	size_t n;

	snprintf(rel, sizeof(rel), "%s", recording_path(r));
	/* The console's directory: its name made safe, as console logs do it. */
	assert_int_equal(strncmp(rel, "vm_serial0-", 11), 0);
	fake_now += 1500000;
	recording_output(r, "hello\r\n", 7);
	fake_now += 1;
	recording_input(r, "alice (ssh SHA256:abc)", NULL, "ls\r", 3);
	recording_input(r, "alice (ssh SHA256:abc)", NULL, "pwd\r", 4);
	recording_input(r, "bob (ssh SHA256:def)", NULL, "id\r", 3);
	recording_input(r, "alice (ssh SHA256:abc)", NULL, "x", 1);
	recording_marker(r, "bob took write access from alice");
	recording_resize(r, 120, 40);
	assert_int_equal(recording_flush(r), 0);
	assert_null(recording_free(r));

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0640);

	n = read_lines(rel, lines, 32, NULL);
	assert_int_equal(n, 11);
	assert_int_equal(json_integer_value(json_object_get(lines[0], "version")), 2);
	assert_int_equal(json_integer_value(json_object_get(lines[0], "width")), 100);
	assert_int_equal(json_integer_value(json_object_get(lines[0], "height")), 30);
	assert_string_equal(json_string_value(json_object_get(lines[0], "principal")),
			    "alice (ssh SHA256:abc)");
	assert_string_equal(json_string_value(json_object_get(lines[0], "console")), "vm:serial0");
	assert_string_equal(ev_type(lines[1]), "o");
	assert_string_equal(ev_data(lines[1]), "hello\r\n");
	assert_true(json_real_value(json_array_get(lines[1], 0)) == 1.5);
	assert_string_equal(ev_type(lines[2]), "m");
	assert_string_equal(ev_data(lines[2]), "input from alice (ssh SHA256:abc)");
	assert_string_equal(ev_data(lines[3]), "ls\r");
	assert_string_equal(ev_type(lines[4]), "i");
	assert_string_equal(ev_data(lines[4]), "pwd\r");
	assert_string_equal(ev_data(lines[5]), "input from bob (ssh SHA256:def)");
	assert_string_equal(ev_data(lines[6]), "id\r");
	assert_string_equal(ev_data(lines[7]), "input from alice (ssh SHA256:abc)");
	assert_string_equal(ev_data(lines[8]), "x");
	assert_string_equal(ev_data(lines[9]), "bob took write access from alice");
	assert_string_equal(ev_type(lines[10]), "r");
	assert_string_equal(ev_data(lines[10]), "120x40");
	free_lines(lines, n);
}

/* Output within RECORDING_MERGE's 20 ms of an "o" event's start joins it, while buffered. */
static void test_merge(void **state)
{
	struct recording *r = open_rec(cfg_of(RECORDING_DEFAULT_MAX_SIZE, 10, true), 6);
	char rel[256];
	json_t *lines[32];
	size_t n;

	snprintf(rel, sizeof(rel), "%s", recording_path(r));
	recording_output(r, "a", 1);
	fake_now += 1000;
	recording_output(r, "b\xc3", 2);   /* a character cut between two reads */
	fake_now += 1000;
	recording_output(r, "\xa9" "c", 2);
	fake_now += 25000;                  /* too late: a new event */
	recording_output(r, "d", 1);
	recording_marker(r, "between");     /* any other event ends the growing one */
	recording_output(r, "e", 1);
	assert_int_equal(recording_flush(r), 0);
	recording_output(r, "f", 1);        /* written out already: a new event */
	recording_output(r, "g", 1);
	recording_free(r);
	n = read_lines(rel, lines, 32, NULL);
	assert_int_equal(n, 6);
	assert_string_equal(ev_data(lines[1]), "ab\xc3\xa9" "c");
	assert_true(json_real_value(json_array_get(lines[1], 0)) == 0.0);
	assert_string_equal(ev_data(lines[2]), "d");
	assert_true(json_real_value(json_array_get(lines[2], 0)) == 0.027);
	assert_string_equal(ev_data(lines[3]), "between");
	assert_string_equal(ev_data(lines[4]), "e");
	assert_string_equal(ev_data(lines[5]), "fg");
	free_lines(lines, n);
}

static void test_redaction_in_file(void **state)
{
	struct recording *r = open_rec(cfg_of(RECORDING_DEFAULT_MAX_SIZE, 10, true), 8);
	char rel[256];
	json_t *lines[16];
	size_t n;

	snprintf(rel, sizeof(rel), "%s", recording_path(r));
	struct asciicast_prompt p;

	asciicast_prompt_init(&p);
	asciicast_prompt_feed(&p, "Password: ", 10);
	recording_output(r, "Password: ", 10);
	recording_input(r, "alice", &p, "hunter2\r", 8);
	recording_free(r);
	n = read_lines(rel, lines, 16, NULL);
	assert_int_equal(n, 4);
	assert_string_equal(ev_data(lines[3]), "[redacted]\r");
	free_lines(lines, n);
}

static void test_cap(void **state)
{
	struct recording *r = open_rec(cfg_of(RECORDING_MIN_SIZE, 10, true), 9);
	char rel[256], chunk[100];
	json_t *lines[256];
	size_t n, size;
	const char *last;

	snprintf(rel, sizeof(rel), "%s", recording_path(r));
	memset(chunk, 'x', sizeof(chunk));
	for (int i = 0; i < 100; i++)
		recording_output(r, chunk, sizeof(chunk));
	recording_marker(r, "after the cap");
	recording_input(r, "alice", NULL, "typed after the cap", 19);
	assert_true(recording_size(r) <= RECORDING_MIN_SIZE);
	recording_free(r);
	n = read_lines(rel, lines, 256, &size);
	assert_true(size <= RECORDING_MIN_SIZE);
	assert_true(size > RECORDING_MIN_SIZE - 400); /* filled, not stopped early */
	last = ev_data(lines[n - 1]);
	assert_string_equal(ev_type(lines[n - 1]), "m");
	assert_int_equal(strncmp(last, "recording truncated at ", 23), 0);
	for (size_t i = 1; i + 1 < n; i++)
		assert_string_equal(ev_type(lines[i]), "o");
	free_lines(lines, n);
}

static size_t count_casts(const char *sub, char names[][256], size_t max)
{
	char path[512];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, sub);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".cast")) {
			if (n < max)
				snprintf(names[n], 256, "%s", de->d_name);
			n++;
		}
	closedir(d);
	return n;
}

static void test_keep(void **state)
{
	const struct recording_config *cfg = cfg_of(RECORDING_DEFAULT_MAX_SIZE, 3, true);
	struct recording *r = open_rec(cfg, 1);
	char sub[256], path[600], names[16][256];
	static const char *const old[] = { "20000101T000000Z-5.cast", "20000101T000000Z-40.cast",
					   "20000101T000001Z-1.cast" };
	size_t n;

	snprintf(sub, sizeof(sub), "%s", recording_path(r));
	*strchr(sub, '/') = '\0';
	recording_free(r);
	/* Older recordings, and a file that is not one (never removed). */
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", tmpdir, sub, old[i]);
		close(open(path, O_WRONLY | O_CREAT, 0640));
	}
	snprintf(path, sizeof(path), "%s/%s/notes.txt", tmpdir, sub);
	close(open(path, O_WRONLY | O_CREAT, 0640));

	r = open_rec(cfg, 2);
	recording_free(r);
	n = count_casts(sub, names, 16);
	assert_int_equal(n, 3);
	/* Left: the newest old one and the two real ones. */
	for (size_t i = 0; i < n; i++) {
		assert_true(strcmp(names[i], old[0]) != 0);
		assert_true(strcmp(names[i], old[1]) != 0);
	}
	assert_int_equal(access(path, F_OK), 0);

	/* The same second and client id again (a restart): a second file, not an overwrite. */
	r = open_rec(cfg_of(RECORDING_DEFAULT_MAX_SIZE, 100, true), 2);
	assert_non_null(strstr(recording_path(r), "-2-2.cast") ?: strstr(recording_path(r),
									  "-2.cast"));
	recording_free(r);
	assert_int_equal(count_casts(sub, names, 16), 4);
}

static void test_symlink_refused(void **state)
{
	char path[512], target[512];
	struct recording *r = NULL;
	int rc;

	/* The console's directory as a symlink to somewhere else: refused. */
	r = open_rec(cfg_of(RECORDING_DEFAULT_MAX_SIZE, 3, true), 1);
	snprintf(path, sizeof(path), "%s/%s", tmpdir, recording_path(r));
	recording_free(r);
	*strrchr(path, '/') = '\0';
	snprintf(target, sizeof(target), "%s/elsewhere", tmpdir);
	assert_int_equal(mkdir(target, 0700), 0);
	assert_int_equal(rename(path, target) == 0 ? 0 : -1, 0);
	assert_int_equal(rmdir(target), -1); /* not empty: it has the recording */
	assert_int_equal(symlink(target, path), 0);
	rc = recording_open(NULL, cfg_of(RECORDING_DEFAULT_MAX_SIZE, 3, true),
			    &(const struct recording_info){ .console = "vm:serial0", .client_id = 3 },
			    &r);
	assert_true(rc < 0);
	assert_null(r);

	/* A directory that does not exist: an error, no crash, no recording. */
	rc = recording_open(NULL, &(const struct recording_config){
		.dir = "/nonexistent/recordings", .max_size = RECORDING_MIN_SIZE, .keep = 1 },
		&(const struct recording_info){ .console = "c" }, &r);
	assert_true(rc < 0);
	assert_null(r);
	/* Bad settings. */
	assert_int_equal(recording_open(NULL, cfg_of(100, 3, true),
					&(const struct recording_info){ .console = "c" }, &r),
			 -EINVAL);
	assert_int_equal(recording_open(NULL, cfg_of(RECORDING_MIN_SIZE, 0, true),
					&(const struct recording_info){ .console = "c" }, &r),
			 -EINVAL);
	/* NULL recordings are fine everywhere. */
	recording_output(NULL, "x", 1);
	recording_input(NULL, "a", NULL, "x", 1);
	recording_marker(NULL, "x");
	recording_resize(NULL, 1, 1);
	assert_int_equal(recording_flush(NULL), 0);
	assert_null(recording_free(NULL));
}

static int write_calls;

static ssize_t write_enospc(int fd, const void *buf, size_t len)
{
	write_calls++;
	errno = ENOSPC;
	return -1;
}

static ssize_t write_eagain(int fd, const void *buf, size_t len)
{
	write_calls++;
	errno = EAGAIN;
	return -1;
}

static void test_disk_full(void **state)
{
	struct recording *r = open_rec(cfg_of(RECORDING_DEFAULT_MAX_SIZE, 3, true), 4);
	char chunk[1000];
	int calls;

	memset(chunk, 'y', sizeof(chunk));
	recording_set_write_fn(write_enospc);
	write_calls = 0;
	recording_output(r, chunk, sizeof(chunk));
	assert_int_equal(recording_flush(r), -ENOSPC);
	calls = write_calls;
	/* Cut: nothing more is tried, the console goes on. */
	for (int i = 0; i < 100; i++)
		recording_output(r, chunk, sizeof(chunk));
	assert_int_equal(recording_flush(r), 0);
	assert_int_equal(write_calls, calls);
	recording_set_write_fn(NULL);
	recording_free(r);
}

static void test_disk_slow(void **state)
{
	struct recording *r = open_rec(cfg_of((size_t)1 << 30, 3, true), 5);
	char rel[256], *chunk = malloc(RECORDING_BUFFER / 8);
	json_t *lines[64];
	size_t n;

	assert_non_null(chunk);
	snprintf(rel, sizeof(rel), "%s", recording_path(r));
	memset(chunk, 'z', RECORDING_BUFFER / 8);
	recording_set_write_fn(write_eagain);
	/* More than the buffer holds while the disk takes nothing: cut, bounded. */
	for (int i = 0; i < 20; i++)
		recording_output(r, chunk, RECORDING_BUFFER / 8);
	assert_true(recording_size(r) <= RECORDING_BUFFER);
	recording_set_write_fn(NULL);
	recording_output(r, "after", 5);
	recording_free(r);
	n = read_lines(rel, lines, 64, NULL);
	assert_string_equal(ev_type(lines[n - 1]), "m");
	assert_string_equal(ev_data(lines[n - 1]), "recording cut: the disk does not keep up");
	free_lines(lines, n);
	free(chunk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_merge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_redaction_in_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_slow, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
