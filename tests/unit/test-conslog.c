/* SPDX-License-Identifier: MIT */
/*
 * Console logs: file naming, the pure split/line planner (checked against an
 * in-memory model of the files), real rotation in a temporary directory
 * (cap after every write, whole lines, newest output in the newest file),
 * restart continuation, backups = 0, over-long lines, timestamps, markers,
 * symlinks, and the error path: one error line, dropped bytes counted,
 * no write attempts between retries, resumption with a marker.  When the
 * test may mount (root with CAP_SYS_ADMIN), a real full and a real
 * read-only tmpfs are used too.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "conslog.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

#define RETRY_USEC 100000

struct buf {
	uint8_t *p;
	size_t len;
	size_t cap; /* allocated, > len (room for a NUL) */
};

static uint64_t rng_state;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 11);
}

/* A random write size in [1, max_chunk], at most left. */
static size_t chunk_len(size_t left, size_t max_chunk)
{
	size_t n = 1 + rnd() % max_chunk;

	return n < left ? n : left;
}

static void buf_add(struct buf *b, const void *p, size_t n)
{
	if (!b->p || b->len + n + 1 > b->cap) {
		b->cap = MAX(2 * b->cap, b->len + n + 1);
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* Random lines: mostly short, some longer than max_size when long_lines. */
static void make_input(struct buf *all, size_t total, size_t max_size, bool long_lines)
{
	while (all->len < total) {
		size_t n = rnd() % 300;
		uint8_t line[3 * 4096 + 1];

		if (long_lines && rnd() % 40 == 0)
			n = max_size - 50 + rnd() % (2 * max_size);
		if (n > sizeof(line) - 1)
			n = sizeof(line) - 1;
		for (size_t i = 0; i < n; i++)
			line[i] = (uint8_t)(' ' + rnd() % 95);
		line[n] = '\n';
		buf_add(all, line, n + 1);
	}
}

/* ---- temp dirs, files, stderr capture ---- */

/* Temporary directories still to be removed (by the test, or by teardown() after a failure). */
static char *temp_dirs[4];

static char *make_dir(void)
{
	char *d = strdup("/tmp/test-conslog-XXXXXX");

	assert_non_null(d);
	assert_non_null(mkdtemp(d));
	for (size_t i = 0; i < ELEMENTS(temp_dirs); i++)
		if (!temp_dirs[i]) {
			temp_dirs[i] = d;
			return d;
		}
	fail();
	return NULL;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

static int rm_tree(char *d)
{
	int r = nftw(d, rm_entry, 16, FTW_DEPTH | FTW_PHYS);

	for (size_t i = 0; i < ELEMENTS(temp_dirs); i++)
		if (temp_dirs[i] == d)
			temp_dirs[i] = NULL;
	free(d);
	return r;
}

static void remove_dir(char *d)
{
	assert_int_equal(rm_tree(d), 0);
}

/* Contents of dir/name; false if it does not exist. */
static bool read_at(const char *dir, const char *name, struct buf *ret)
{
	char path[512];
	uint8_t tmp[65536];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	*ret = (struct buf){};
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		assert_int_equal(errno, ENOENT);
		return false;
	}
	buf_add(ret, "", 0);
	while ((n = read(fd, tmp, sizeof(tmp))) > 0)
		buf_add(ret, tmp, (size_t)n);
	assert_int_equal(n, 0);
	close(fd);
	return true;
}

/* Existing log files oldest first (NAME.log.backups ... NAME.log); returns the count. */
static size_t read_log(const char *dir, const char *name, unsigned backups, struct buf *files)
{
	char fn[128];
	struct buf extra;
	size_t n = 0;

	for (unsigned i = backups + 1; i > 0; i--) {
		if (i - 1 == 0)
			snprintf(fn, sizeof(fn), "%s", name);
		else
			snprintf(fn, sizeof(fn), "%s.%u", name, i - 1);
		if (read_at(dir, fn, &files[n]))
			n++;
	}
	snprintf(fn, sizeof(fn), "%s.%u", name, backups + 1);
	assert_false(read_at(dir, fn, &extra));
	return n;
}

static void free_files(struct buf *files, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(files[i].p);
}

static uint64_t dir_usage(const char *d)
{
	DIR *dir = opendir(d);
	struct dirent *de;
	uint64_t sum = 0;
	struct stat st;

	assert_non_null(dir);
	while ((de = readdir(dir)))
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode))
			sum += (uint64_t)st.st_size;
	closedir(dir);
	return sum;
}

static int saved_stderr = -1;
static char capture_path[64];

static void capture_start(void)
{
	int fd;

	strcpy(capture_path, "/tmp/test-conslog-err-XXXXXX");
	fd = mkstemp(capture_path);
	assert_true(fd >= 0);
	fflush(stderr);
	saved_stderr = dup(2);
	assert_true(dup2(fd, 2) == 2);
	close(fd);
}

static void capture_restore(void)
{
	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	saved_stderr = -1;
}

/* Stop capturing; returns what was logged (NUL-terminated, caller frees). */
static char *capture_stop(void)
{
	struct buf b;
	char *dir = strdup(capture_path), *slash = strrchr(dir, '/');

	capture_restore();
	*slash = '\0';
	assert_true(read_at(dir, slash + 1, &b));
	b.p[b.len] = '\0';
	unlink(capture_path);
	free(dir);
	return (char *)b.p;
}

static unsigned count_substr(const char *s, const char *what)
{
	unsigned n = 0;

	for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

static uint64_t mono_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void sleep_usec(uint64_t usec)
{
	struct timespec ts = { .tv_sec = (time_t)(usec / 1000000),
			       .tv_nsec = (long)(usec % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * The line rules, given the files (oldest first) and all input: the files
 * concatenated are a suffix of the input; each file is within the cap;
 * a file starts mid-line only if that line is longer than max_size (and then
 * the previous file is full); a rotated file is as full as whole lines allow
 * (the next line would not have fitted).
 */
static void check_files(const struct buf *files, size_t n, const struct buf *all, size_t max_size)
{
	size_t total = 0, pos;

	for (size_t i = 0; i < n; i++) {
		assert_true(files[i].len <= max_size);
		total += files[i].len;
	}
	assert_true(total <= all->len);
	pos = all->len - total;
	for (size_t i = 0; i < n; i++) {
		assert_memory_equal(files[i].p, all->p + pos, files[i].len);
		if (i > 0 && all->p[pos - 1] != '\n') {
			/* Cut: only a line longer than max_size, with the previous file full. */
			size_t ls = pos, le = pos;

			while (ls > 0 && all->p[ls - 1] != '\n')
				ls--;
			while (le < all->len && all->p[le] != '\n')
				le++;
			assert_true(le - ls + 1 > max_size);
			assert_int_equal(files[i - 1].len, max_size);
		} else if (i > 0) {
			/* Boundary: the first line of file i did not fit into file i - 1. */
			const uint8_t *nl = memchr(all->p + pos, '\n', all->len - pos);
			size_t first = nl ? (size_t)(nl - (all->p + pos)) + 1 : all->len - pos;

			assert_true(files[i - 1].len + first > max_size);
		}
		pos += files[i].len;
	}
}

/* ---- pure helpers ---- */

static void test_file_name(void **state)
{
	char b[CONSLOG_FILE_NAME_MAX], b2[CONSLOG_FILE_NAME_MAX], lng[300];
	int n;

	/* Clean names are kept as they are. */
	assert_int_equal(conslog_file_name("web-01", b, sizeof(b)), 10);
	assert_string_equal(b, "web-01.log");
	conslog_file_name("web-01.prod_x", b, sizeof(b));
	assert_string_equal(b, "web-01.prod_x.log");
	/* Any replaced byte, ':' included, adds the hash of the full name. */
	assert_int_equal(conslog_file_name("vm:serial0", b, sizeof(b)), 31);
	assert_string_equal(b, "vm_serial0-ba82ad52b2a7ae09.log");
	conslog_file_name("a_b:c", b, sizeof(b));
	conslog_file_name("a:b_c", b2, sizeof(b2));
	assert_string_equal(b, "a_b_c-b42d7d0bca2c4f53.log");
	assert_string_equal(b2, "a_b_c-7b2a61b0fdbfe985.log");
	conslog_file_name("a_b_c", b, sizeof(b));
	assert_string_equal(b, "a_b_c.log");
	/* A clean name that looks hashed cannot take a changed name's file. */
	conslog_file_name("vm_serial0-ba82ad52b2a7ae09", b, sizeof(b));
	assert_string_not_equal(b, "vm_serial0-ba82ad52b2a7ae09.log");
	assert_true(strncmp(b, "vm_serial0-ba82ad52b2a7ae09-", 28) == 0);
	conslog_file_name("vm-123456789abcdef", b, sizeof(b));
	assert_string_equal(b, "vm-123456789abcdef.log");
	conslog_file_name("vm-123456789abcdefg", b, sizeof(b));
	assert_string_equal(b, "vm-123456789abcdefg.log");
	assert_int_equal(conslog_file_name("", b, sizeof(b)), -EINVAL);
	assert_int_equal(conslog_file_name("vm", b, CONSLOG_FILE_NAME_MAX - 1), -ENOBUFS);

	/* Unsafe names: no '/', no leading '.', and a hash so they do not collide. */
	n = conslog_file_name("../../etc/passwd", b, sizeof(b));
	assert_int_equal(n, (int)strlen(b));
	assert_null(strchr(b, '/'));
	assert_true(b[0] != '.');
	assert_true(strncmp(b, "_._.._etc_passwd-", 17) == 0);
	assert_string_equal(b + strlen(b) - 4, ".log");
	conslog_file_name(".hidden", b, sizeof(b));
	assert_true(b[0] == '_');
	conslog_file_name("\xe6\xb5\x8b\xe8\xaf\x95", b, sizeof(b));
	conslog_file_name("\xe8\xaf\x95\xe9\xaa\x8c", b2, sizeof(b2));
	assert_string_not_equal(b, b2);
	conslog_file_name("a b", b, sizeof(b));
	conslog_file_name("a\nb", b2, sizeof(b2));
	assert_string_not_equal(b, b2);
	for (const char *p = b2; *p; p++)
		assert_true(strchr("abcdefghijklmnopqrstuvwxyz0123456789._-", *p) != NULL);

	/* Long names are bounded and still distinct. */
	memset(lng, 'x', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	n = conslog_file_name(lng, b, sizeof(b));
	assert_true(n > 0 && n < CONSLOG_FILE_NAME_MAX);
	lng[200] = 'y';
	conslog_file_name(lng, b2, sizeof(b2));
	assert_string_not_equal(b, b2);
	assert_int_equal(strncmp(b, b2, CONSLOG_NAME_BASE_MAX), 0);
}

static void test_format_time(void **state)
{
	struct timespec ts = { .tv_sec = 1700000000, .tv_nsec = 987654321 };
	char b[CONSLOG_TIME_LEN + 1];

	assert_int_equal(conslog_format_time(&ts, b, sizeof(b)), CONSLOG_TIME_LEN);
	assert_string_equal(b, "2023-11-14T22:13:20.987Z");
	ts = (struct timespec){ .tv_sec = 0, .tv_nsec = 5000000 };
	conslog_format_time(&ts, b, sizeof(b));
	assert_string_equal(b, "1970-01-01T00:00:00.005Z");
	assert_int_equal(conslog_format_time(&ts, b, CONSLOG_TIME_LEN), -EINVAL);
}

static void test_format(void **state)
{
	char out[64];
	size_t olen, used;
	bool mid = false;

	used = conslog_format("a\nbc", 4, &mid, "T ", 2, out, sizeof(out), &olen);
	assert_int_equal(used, 4);
	assert_memory_equal(out, "T a\nT bc", olen);
	assert_int_equal(olen, 8);
	assert_true(mid);
	/* Continues the line across calls; an empty line gets a prefix too. */
	used = conslog_format("d\n\ne", 4, &mid, "T ", 2, out, sizeof(out), &olen);
	assert_int_equal(used, 4);
	assert_int_equal(olen, 8);
	assert_memory_equal(out, "d\nT \nT e", 8);

	/* Bounded output: consumed input is exactly what fits. */
	mid = false;
	used = conslog_format("abc\ndef\n", 8, &mid, "TS ", 3, out, 9, &olen);
	assert_int_equal(olen, 7);
	assert_int_equal(used, 4);
	assert_memory_equal(out, "TS abc\n", 7);
	assert_false(mid);
	/* A prefix is never written alone. */
	used = conslog_format("xyz", 3, &mid, "TS ", 3, out, 3, &olen);
	assert_int_equal(used, 0);
	assert_int_equal(olen, 0);
	used = conslog_format("xyz", 3, &mid, "TS ", 3, out, 5, &olen);
	assert_int_equal(used, 2);
	assert_memory_equal(out, "TS xy", 5);
	/* Without a prefix it is a plain copy. */
	mid = false;
	used = conslog_format("a\nb", 3, &mid, "", 0, out, sizeof(out), &olen);
	assert_int_equal(olen, 3);
	assert_memory_equal(out, "a\nb", 3);
}

static void test_plan_cases(void **state)
{
	struct conslog_step st;
	char big[5000];

	conslog_plan(10, 10, 4096, "hello", 5, &st);
	assert_int_equal(st.take, 5);
	assert_false(st.rotate);
	conslog_plan(4091, 4091, 4096, "hello", 5, &st);
	assert_int_equal(st.take, 5);
	assert_false(st.rotate);

	/* Fill up to the last complete line that fits. */
	conslog_plan(4090, 4090, 4096, "ab\ncd\nefgh\n", 11, &st);
	assert_int_equal(st.take, 6);
	assert_true(st.rotate);
	assert_int_equal(st.carry, 0);
	/* No complete line fits, file at a line boundary: rotate, nothing moves. */
	conslog_plan(4090, 4090, 4096, "0123456789\n", 11, &st);
	assert_int_equal(st.take, 0);
	assert_true(st.rotate);
	assert_int_equal(st.carry, 0);
	/* An incomplete line at the end of the file moves to the next file. */
	conslog_plan(4090, 4000, 4096, "0123456789\n", 11, &st);
	assert_int_equal(st.take, 0);
	assert_true(st.rotate);
	assert_int_equal(st.carry, 90);
	/* ... unless it started at the top of the file: too long, cut at the cap. */
	conslog_plan(4090, 0, 4096, "0123456789\n", 11, &st);
	assert_int_equal(st.take, 6);
	assert_true(st.rotate);
	assert_int_equal(st.carry, 0);
	memset(big, 'x', sizeof(big));
	conslog_plan(0, 0, 4096, big, sizeof(big), &st);
	assert_int_equal(st.take, 4096);
	assert_true(st.rotate);
	/* A file already over the cap (max_size lowered since). */
	conslog_plan(5000, 5000, 4096, "a\n", 2, &st);
	assert_int_equal(st.take, 0);
	assert_true(st.rotate);
	assert_int_equal(st.carry, 0);
	conslog_plan(5000, 100, 4096, "a\n", 2, &st);
	assert_int_equal(st.take, 0);
	assert_int_equal(st.carry, 0);
	conslog_plan(5000, 4000, 4096, "a\n", 2, &st);
	assert_int_equal(st.carry, 1000);
}

/* The planner driven over an in-memory model of the files. */
static void run_model(uint64_t seed, size_t max_size, unsigned backups, bool long_lines)
{
	struct buf all = {}, files[CONSLOG_MAX_BACKUPS + 1] = {};
	size_t nfiles = 1, done = 0;
	uint64_t line_off = 0;

	rng_state = seed;
	make_input(&all, 40 * max_size, max_size, long_lines);
	buf_add(&files[0], "", 0);
	while (done < all.len) {
		size_t len = chunk_len(all.len - done, max_size / 2);
		const uint8_t *p = all.p + done;

		while (len > 0) {
			struct buf *cur = &files[nfiles - 1];
			struct conslog_step st;

			conslog_plan(cur->len, line_off, max_size, p, len, &st);
			buf_add(cur, p, st.take);
			for (size_t i = 0; i < st.take; i++)
				if (p[i] == '\n')
					line_off = cur->len - st.take + i + 1;
			p += st.take;
			len -= st.take;
			done += st.take;
			if (st.rotate) {
				struct buf next = {};

				assert_true(st.carry < max_size);
				buf_add(&next, cur->p + cur->len - st.carry, st.carry);
				cur->len -= st.carry;
				if (nfiles == backups + 1) {
					free(files[0].p);
					memmove(files, files + 1, backups * sizeof(files[0]));
					nfiles--;
				}
				files[nfiles++] = next;
				line_off = 0;
			}
		}
		check_files(files, nfiles, &(struct buf){ .p = all.p, .len = done }, max_size);
	}
	assert_true(all.p[all.len - 1] == '\n');
	/* Every file ends with a complete line, unless it holds a cut over-long line. */
	for (size_t i = 0; i < nfiles; i++)
		assert_true(files[i].len == 0 || files[i].p[files[i].len - 1] == '\n' ||
			    files[i].len == max_size);
	free_files(files, nfiles);
	free(all.p);
}

static void test_plan_model(void **state)
{
	for (uint64_t seed = 1; seed <= 20; seed++) {
		run_model(seed, 4096, 3, false);
		run_model(seed * 77, 4096, 2, true);
		run_model(seed * 91, 8192, 1, true);
	}
}

/* ---- real files ---- */

static void write_all_checked(struct conslog *l, const char *dir, const struct buf *all,
			      size_t max_size, unsigned backups, size_t max_chunk)
{
	struct buf files[CONSLOG_MAX_BACKUPS + 1];
	size_t done = 0, n;

	while (done < all->len) {
		size_t len = chunk_len(all->len - done, max_chunk);

		conslog_write(l, all->p + done, len);
		done += len;
		assert_true(dir_usage(dir) <= (uint64_t)max_size * (backups + 1));
		n = read_log(dir, conslog_name(l), backups, files);
		check_files(files, n, &(struct buf){ .p = all->p, .len = done }, max_size);
		free_files(files, n);
	}
}

static void run_rotation(uint64_t seed, size_t max_size, unsigned backups, bool long_lines)
{
	struct conslog_config cfg = { .max_size = max_size, .backups = backups };
	struct buf all = {}, files[CONSLOG_MAX_BACKUPS + 1];
	struct conslog *l;
	char *dir = make_dir();
	size_t n;

	cfg.dir = dir;
	rng_state = seed;
	make_input(&all, 30 * max_size, max_size, long_lines);
	assert_int_equal(conslog_open(&cfg, "vm:serial0", &l), 0);
	assert_string_equal(conslog_name(l), "vm_serial0-ba82ad52b2a7ae09.log");
	write_all_checked(l, dir, &all, max_size, backups, max_size / 2);
	l = conslog_free(l);

	/* The newest output is at the end of the newest file; all files hold whole lines. */
	n = read_log(dir, "vm_serial0-ba82ad52b2a7ae09.log", backups, files);
	assert_int_equal(n, backups + 1);
	assert_true(files[n - 1].len > 0);
	assert_memory_equal(files[n - 1].p, all.p + all.len - files[n - 1].len, files[n - 1].len);
	for (size_t i = 0; i < n; i++)
		assert_true(files[i].p[files[i].len - 1] == '\n' || files[i].len == max_size);
	free_files(files, n);
	free(all.p);
	remove_dir(dir);
}

static void test_rotation_whole_lines(void **state)
{
	run_rotation(11, 4096, 3, false);
	run_rotation(12, 4096, 2, true);
	run_rotation(13, 16384, 1, false);
}

static void test_backups_zero(void **state)
{
	run_rotation(21, 4096, 0, false);
	run_rotation(22, 4096, 0, true);
}

static void test_long_line_cut(void **state)
{
	struct conslog_config cfg = { .max_size = 4096, .backups = 2 };
	struct buf all = {}, files[3];
	struct conslog *l;
	char *dir = make_dir();
	char chunk[1000];

	cfg.dir = dir;
	assert_int_equal(conslog_open(&cfg, "vm", &l), 0);
	buf_add(&all, "short\n", 6);
	conslog_write(l, "short\n", 6);
	for (int i = 0; i < 10; i++) {
		memset(chunk, 'a' + i, sizeof(chunk));
		buf_add(&all, chunk, sizeof(chunk));
		conslog_write(l, chunk, sizeof(chunk));
		assert_true(dir_usage(dir) <= 3 * 4096);
	}
	buf_add(&all, "\ntail\n", 6);
	conslog_write(l, "\ntail\n", 6);
	l = conslog_free(l);

	/* The 10000-byte line moved whole out of "short\n"'s file, then was cut at 4096. */
	assert_int_equal(read_log(dir, "vm.log", 2, files), 3);
	assert_int_equal(files[0].len, 4096);
	assert_memory_equal(files[0].p, all.p + 6, 4096);
	assert_int_equal(files[1].len, 4096);
	assert_memory_equal(files[1].p, all.p + 6 + 4096, 4096);
	assert_int_equal(files[2].len, 10000 - 8192 + 6);
	assert_memory_equal(files[2].p, all.p + 6 + 8192, files[2].len);
	free_files(files, 3);
	free(all.p);
	remove_dir(dir);
}

static void test_reopen_continues(void **state)
{
	struct conslog_config cfg = { .max_size = 4096, .backups = 1 };
	struct buf f0, f1;
	struct conslog *l;
	char *dir = make_dir(), line[100];

	cfg.dir = dir;
	assert_int_equal(conslog_open(&cfg, "vm", &l), 0);
	conslog_write(l, "hello\n", 6);
	l = conslog_free(l);
	assert_int_equal(conslog_open(&cfg, "vm", &l), 0);
	conslog_write(l, "world\n", 6);
	l = conslog_free(l);
	assert_true(read_at(dir, "vm.log", &f0));
	assert_int_equal(f0.len, 12);
	assert_memory_equal(f0.p, "hello\nworld\n", 12);
	free(f0.p);

	/* Fill to 4012 bytes and leave a line open, then restart. */
	memset(line, 'z', sizeof(line));
	line[99] = '\n';
	assert_int_equal(conslog_open(&cfg, "vm", &l), 0);
	for (int i = 0; i < 40; i++)
		conslog_write(l, line, 100);
	conslog_write(l, "abc", 3);
	l = conslog_free(l);

	/* The new instance takes the size from the file and moves the open line whole. */
	assert_int_equal(conslog_open(&cfg, "vm", &l), 0);
	conslog_write(l, "def", 3);
	conslog_write(l, line, 100);
	l = conslog_free(l);
	assert_true(read_at(dir, "vm.log.1", &f1));
	assert_true(read_at(dir, "vm.log", &f0));
	assert_int_equal(f1.len, 12 + 4000);
	assert_int_equal(f0.len, 106);
	assert_memory_equal(f0.p, "abcdefzzz", 9);
	assert_int_equal(f0.p[105], '\n');
	free(f0.p);
	free(f1.p);

	/* A marker after a restart in the middle of a line starts its own line. */
	assert_int_equal(conslog_open(&cfg, "vm2", &l), 0);
	conslog_write(l, "abc", 3);
	l = conslog_free(l);
	assert_int_equal(conslog_open(&cfg, "vm2", &l), 0);
	conslog_mark(l, "restarted");
	l = conslog_free(l);
	assert_true(read_at(dir, "vm2.log", &f0));
	assert_int_equal(f0.len, 4 + 9 + CONSLOG_TIME_LEN + 11);
	assert_memory_equal(f0.p, "abc\n[ttyhub] ", 13);
	assert_memory_equal(f0.p + 13 + CONSLOG_TIME_LEN, " restarted\n", 11);
	free(f0.p);
	remove_dir(dir);
}

static void test_stale_backups_removed(void **state)
{
	struct conslog_config cfg = { .max_size = 4096, .backups = 2 };
	struct conslog *l;
	char *dir = make_dir(), path[256];
	struct buf b;

	cfg.dir = dir;
	for (int i = 1; i <= 5; i++) {
		snprintf(path, sizeof(path), "%s/vm.log.%d", dir, i);
		close(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	}
	assert_int_equal(conslog_open(&cfg, "vm", &l), 0);
	l = conslog_free(l);
	assert_true(read_at(dir, "vm.log.1", &b));
	free(b.p);
	assert_true(read_at(dir, "vm.log.2", &b));
	free(b.p);
	assert_false(read_at(dir, "vm.log.3", &b));
	assert_false(read_at(dir, "vm.log.5", &b));
	remove_dir(dir);
}

static bool is_time_prefix(const uint8_t *p, size_t len)
{
	static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ ";
	struct tm tm = {};
	time_t t, now = time(NULL);

	if (len < sizeof(pat) - 1)
		return false;
	for (size_t i = 0; i < sizeof(pat) - 1; i++)
		if (pat[i] == 'd' ? (p[i] < '0' || p[i] > '9') : p[i] != (uint8_t)pat[i])
			return false;
	if (!strptime((const char *)p, "%Y-%m-%dT%H:%M:%S", &tm))
		return false;
	t = timegm(&tm);
	return t >= now - 60 && t <= now + 1;
}

static void test_timestamps(void **state)
{
	struct conslog_config cfg = { .max_size = 4096, .backups = 2, .timestamps = true };
	struct buf all = {}, files[3], plain = {};
	struct conslog *l;
	char *dir = make_dir();
	size_t n, done = 0;

	cfg.dir = dir;
	assert_int_equal(conslog_open(&cfg, "vm", &l), 0);
	conslog_write(l, "a\nb", 3);
	conslog_write(l, "c\n\nd\n", 5);
	l = conslog_free(l);
	assert_int_equal(read_log(dir, "vm.log", 2, files), 1);
	assert_int_equal(files[0].len, 4 * 25 + 8);
	for (size_t off = 0, k = 0; off < files[0].len; k++) {
		static const char *const want[] = { "a\n", "bc\n", "\n", "d\n" };
		const uint8_t *nl = memchr(files[0].p + off, '\n', files[0].len - off);

		assert_true(is_time_prefix(files[0].p + off, files[0].len - off));
		assert_memory_equal(files[0].p + off + 25, want[k], strlen(want[k]));
		off = (size_t)(nl - files[0].p) + 1;
	}
	free_files(files, 1);
	remove_dir(dir);

	/* Under rotation: cap with prefixes, every line stamped, content intact. */
	dir = make_dir();
	cfg.dir = dir;
	rng_state = 5;
	make_input(&all, 20 * 4096, 4096, false);
	assert_int_equal(conslog_open(&cfg, "vm", &l), 0);
	while (done < all.len) {
		size_t len = chunk_len(all.len - done, 3000);

		conslog_write(l, all.p + done, len);
		done += len;
		n = read_log(dir, "vm.log", 2, files);
		for (size_t i = 0; i < n; i++)
			assert_true(files[i].len <= 4096);
		free_files(files, n);
	}
	l = conslog_free(l);
	n = read_log(dir, "vm.log", 2, files);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(files[i].p[files[i].len - 1], '\n');
		for (size_t off = 0; off < files[i].len;) {
			const uint8_t *nl = memchr(files[i].p + off, '\n', files[i].len - off);
			size_t end = (size_t)(nl - files[i].p) + 1;

			assert_true(is_time_prefix(files[i].p + off, end - off));
			buf_add(&plain, files[i].p + off + 25, end - off - 25);
			off = end;
		}
	}
	assert_true(plain.len > 5000);
	assert_memory_equal(plain.p, all.p + all.len - plain.len, plain.len);
	free_files(files, n);
	free(plain.p);
	free(all.p);
	remove_dir(dir);
}

static void test_markers(void **state)
{
	struct conslog_config cfg = { .max_size = 4096, .backups = 1 };
	struct conslog *l;
	char *dir = make_dir(), *s;
	struct buf f;

	cfg.dir = dir;
	assert_int_equal(conslog_open(&cfg, "vm", &l), 0);
	conslog_write(l, "login: ", 7);
	conslog_mark(l, "attach alice\n\x1b[2Jrw");
	conslog_mark(l, "guest reset");
	conslog_write(l, "more\n", 5);
	l = conslog_free(l);
	assert_true(read_at(dir, "vm.log", &f));
	f.p[f.len] = '\0';
	s = (char *)f.p;
	assert_true(strncmp(s, "login: \n[ttyhub] ", 17) == 0);
	assert_true(is_time_prefix((uint8_t *)s + 17, f.len - 17));
	s += 17 + 25;
	assert_true(strncmp(s, "attach alice\\x0a\\x1b[2Jrw\n[ttyhub] ", 35) == 0);
	s += 35 + 25;
	assert_string_equal(s, "guest reset\nmore\n");
	free(f.p);
	remove_dir(dir);
}

static void test_symlinks_refused(void **state)
{
	struct conslog_config cfg = { .max_size = 4096, .backups = 1, .retry_usec = RETRY_USEC };
	char *dir = make_dir(), path[256], target[256], *err;
	struct conslog *l;
	struct buf t;

	cfg.dir = dir;
	snprintf(target, sizeof(target), "%s/target", dir);
	close(open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	snprintf(path, sizeof(path), "%s/vm.log", dir);
	assert_int_equal(symlink(target, path), 0);
	capture_start();
	assert_int_equal(conslog_open(&cfg, "vm", &l), 0);
	conslog_write(l, "secret\n", 7);
	err = capture_stop();
	assert_int_equal(count_substr(err, "<3>"), 1);
	assert_non_null(strstr(err, path));
	free(err);
	l = conslog_free(l);
	assert_true(read_at(dir, "target", &t));
	assert_int_equal(t.len, 0);
	free(t.p);

	/* Nor a hard link to another file. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(link(target, path), 0);
	capture_start();
	assert_int_equal(conslog_open(&cfg, "vm", &l), 0);
	conslog_write(l, "secret\n", 7);
	err = capture_stop();
	assert_int_equal(count_substr(err, "<3>"), 1);
	assert_non_null(strstr(err, "Too many links"));
	free(err);
	l = conslog_free(l);
	assert_true(read_at(dir, "target", &t));
	assert_int_equal(t.len, 0);
	free(t.p);

	/* A symlink in a backup slot is replaced by the rename, not followed. */
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/vm.log.1", dir);
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(conslog_open(&cfg, "vm", &l), 0);
	for (int i = 0; i < 100; i++)
		conslog_write(l, "0123456789012345678901234567890123456789012345678\n", 50);
	l = conslog_free(l);
	assert_true(read_at(dir, "target", &t));
	assert_int_equal(t.len, 0);
	free(t.p);
	assert_true(read_at(dir, "vm.log.1", &t));
	assert_true(t.len > 4000);
	free(t.p);

	/* The directory itself must not be a symlink either. */
	snprintf(path, sizeof(path), "%s/link", dir);
	assert_int_equal(symlink(dir, path), 0);
	cfg.dir = path;
	capture_start();
	assert_int_equal(conslog_open(&cfg, "vm", &l), 0);
	err = capture_stop();
	assert_int_equal(count_substr(err, "<3>"), 1);
	free(err);
	l = conslog_free(l);
	remove_dir(dir);
}

static void test_bad_config(void **state)
{
	struct conslog_config cfg = { .dir = "/tmp", .max_size = 4095, .backups = 1 };
	struct conslog *l = NULL;

	assert_int_equal(conslog_open(&cfg, "vm", &l), -EINVAL);
	cfg.max_size = 4096;
	cfg.backups = CONSLOG_MAX_BACKUPS + 1;
	assert_int_equal(conslog_open(&cfg, "vm", &l), -EINVAL);
	cfg.backups = 1;
	assert_int_equal(conslog_open(&cfg, "", &l), -EINVAL);
	cfg.dir = NULL;
	assert_int_equal(conslog_open(&cfg, "vm", &l), -EINVAL);
	assert_null(l);
	conslog_write(NULL, "x", 1);
	conslog_mark(NULL, "x");
	assert_null(conslog_free(NULL));
}

/* Missing directory (and a directory that is a file): one error, drops, resumes. */
static void test_open_failure_resumes(void **state)
{
	struct conslog_config cfg = { .max_size = 4096, .backups = 1,
				      .retry_usec = 3 * RETRY_USEC };
	char *dir = make_dir(), sub[256], path[300], *err, want[64];
	struct conslog *l;
	struct buf f;

	snprintf(sub, sizeof(sub), "%s/logs", dir);
	cfg.dir = sub;
	capture_start();
	assert_int_equal(conslog_open(&cfg, "vm", &l), 0);
	for (int i = 0; i < 100; i++)
		conslog_write(l, "dropped line\n", 13);
	conslog_mark(l, "attach");
	assert_int_equal(mkdir(sub, 0700), 0);
	conslog_write(l, "still dropped\n", 14); /* before the retry time */
	sleep_usec(3 * RETRY_USEC + 50000);
	conslog_write(l, "back\n", 5);
	conslog_write(l, "again\n", 6);
	err = capture_stop();
	l = conslog_free(l);

	assert_int_equal(count_substr(err, "<3>"), 1);
	assert_non_null(strstr(err, "logs/vm.log"));
	assert_non_null(strstr(err, "No such file or directory"));
	assert_int_equal(count_substr(err, "logging resumed"), 1);
	free(err);
	assert_true(read_at(sub, "vm.log", &f));
	f.p[f.len] = '\0';
	snprintf(want, sizeof(want), " %d bytes not logged\nback\nagain\n", 100 * 13 + 14);
	assert_true(strncmp((char *)f.p, "[ttyhub] ", 9) == 0);
	assert_string_equal((char *)f.p + 9 + CONSLOG_TIME_LEN, want);
	free(f.p);
	snprintf(path, sizeof(path), "%s/vm.log", sub);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(sub), 0);

	/* Not a directory. */
	close(open(sub, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	capture_start();
	assert_int_equal(conslog_open(&cfg, "vm", &l), 0);
	conslog_write(l, "x\n", 2);
	conslog_mark(l, "detach");
	err = capture_stop();
	l = conslog_free(l);
	assert_int_equal(count_substr(err, "<3>"), 1);
	assert_non_null(strstr(err, "Not a directory"));
	free(err);
	remove_dir(dir);
}

/* Injected "disk" with a byte quota, like a filling file system. */
static size_t quota;
static unsigned write_calls;

static ssize_t quota_write(int fd, const void *buf, size_t len)
{
	ssize_t n;

	write_calls++;
	if (quota == 0) {
		errno = ENOSPC;
		return -1;
	}
	n = write(fd, buf, MIN(len, quota));
	if (n > 0)
		quota -= (size_t)n;
	return n;
}

static void run_enospc(bool timestamps)
{
	struct conslog_config cfg = { .max_size = 1 << 20, .backups = 1, .retry_usec = RETRY_USEC,
				      .timestamps = timestamps };
	struct buf all = {}, f = {};
	char *dir = make_dir(), *err, *marker, *after;
	struct conslog *l;
	unsigned calls;
	unsigned long long notlogged;
	uint64_t t0;
	size_t logged;

	cfg.dir = dir;
	rng_state = 99;
	make_input(&all, 20000, 4096, false);
	conslog_set_write_fn(quota_write);
	quota = 3000;
	assert_int_equal(conslog_open(&cfg, "vm", &l), 0);
	capture_start();
	t0 = mono_usec();
	for (size_t done = 0; done < all.len;) {
		size_t len = chunk_len(all.len - done, 500);

		conslog_write(l, all.p + done, len);
		done += len;
	}
	/* No write attempt at all until the retry is due (if this machine was fast enough). */
	calls = write_calls;
	for (int i = 0; i < 50; i++) {
		conslog_write(l, "x\n", 2);
		conslog_mark(l, "attach");
	}
	if (mono_usec() - t0 < RETRY_USEC)
		assert_int_equal(write_calls, calls);
	calls = write_calls;
	/* A retry on a still-full disk: tried once, stays quiet. */
	sleep_usec(RETRY_USEC + 50000);
	conslog_write(l, "y\n", 2);
	assert_int_equal(write_calls, calls + 1);
	/* Space is back. */
	quota = SIZE_MAX;
	sleep_usec(RETRY_USEC + 50000);
	conslog_write(l, "end\n", 4);
	err = capture_stop();
	conslog_set_write_fn(NULL);
	l = conslog_free(l);

	assert_int_equal(count_substr(err, "<3>"), 1);
	assert_non_null(strstr(err, "/vm.log"));
	assert_non_null(strstr(err, "No space left on device"));
	assert_int_equal(count_substr(err, "logging resumed"), 1);
	free(err);

	assert_true(read_at(dir, "vm.log", &f));
	f.p[f.len] = '\0';
	marker = strstr((char *)f.p, "[ttyhub] ");
	assert_non_null(marker);
	assert_int_equal(sscanf(marker + 9 + CONSLOG_TIME_LEN, "%llu bytes not logged", &notlogged),
			 1);
	after = strchr(marker, '\n') + 1;
	if (timestamps) {
		assert_true(is_time_prefix((uint8_t *)after, strlen(after)));
		after += 25;
	}
	assert_string_equal(after, "end\n");
	/* What was written before the failure is a prefix of the input (plus stamps). */
	logged = (size_t)(marker - (char *)f.p);
	if (!timestamps) {
		if (logged > 0 && f.p[logged - 1] == '\n' && all.p[logged - 1] != '\n')
			logged--; /* the line break in front of the marker */
		assert_true(logged <= 3000);
		assert_memory_equal(f.p, all.p, logged);
	} else {
		struct buf plain = {};

		for (size_t off = 0; off < logged;) {
			const uint8_t *nl = memchr(f.p + off, '\n', logged - off);
			size_t end = nl ? (size_t)(nl - f.p) + 1 : logged;

			assert_true(is_time_prefix(f.p + off, end - off));
			buf_add(&plain, f.p + off + 25, end - off - 25);
			off = end;
		}
		if (plain.len > 0 && plain.p[plain.len - 1] == '\n' &&
		    all.p[plain.len - 1] != '\n')
			plain.len--;
		assert_memory_equal(plain.p, all.p, plain.len);
		logged = plain.len;
		free(plain.p);
	}
	/* Every guest byte is either in the file or counted. */
	assert_int_equal(notlogged, all.len - logged + 50 * 2 + 2);
	free(f.p);
	free(all.p);
	remove_dir(dir);
}

static void test_enospc_one_error(void **state)
{
	run_enospc(false);
	run_enospc(true);
}

/* Real full and read-only file systems, in a private mount namespace. */
static void test_real_tmpfs(void **state)
{
	struct conslog_config cfg = { .max_size = 1 << 20, .backups = 1, .retry_usec = RETRY_USEC };
	char *dir, *err, line[101];
	struct conslog *l;
	struct buf f;
	size_t sent = 0;

	if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0)
		skip();
	dir = make_dir();
	cfg.dir = dir;
	assert_int_equal(mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700"), 0);

	memset(line, 'q', sizeof(line));
	line[100] = '\n';
	capture_start();
	assert_int_equal(conslog_open(&cfg, "vm", &l), 0);
	for (int i = 0; i < 2000; i++, sent += 101)
		conslog_write(l, line, sizeof(line));
	err = capture_stop();
	assert_int_equal(count_substr(err, "<3>"), 1);
	assert_non_null(strstr(err, "No space left on device"));
	free(err);

	capture_start();
	assert_int_equal(mount("tmpfs", dir, "tmpfs", MS_REMOUNT, "size=1m"), 0);
	sleep_usec(RETRY_USEC + 50000);
	conslog_write(l, "end\n", 4);
	err = capture_stop();
	assert_int_equal(count_substr(err, "<3>"), 0);
	assert_int_equal(count_substr(err, "logging resumed"), 1);
	free(err);
	l = conslog_free(l);
	assert_true(read_at(dir, "vm.log", &f));
	f.p[f.len] = '\0';
	assert_true(f.len > 32768 && f.len < 65536 + 200);
	assert_non_null(strstr((char *)f.p, " bytes not logged\nend\n"));
	free(f.p);
	assert_int_equal(umount2(dir, MNT_DETACH), 0);

	/* Read-only at start: one error; works once it is writable. */
	assert_int_equal(mount("tmpfs", dir, "tmpfs", MS_RDONLY, "size=64k"), 0);
	capture_start();
	assert_int_equal(conslog_open(&cfg, "vm", &l), 0);
	conslog_write(l, "lost\n", 5);
	conslog_mark(l, "attach");
	err = capture_stop();
	assert_int_equal(count_substr(err, "<3>"), 1);
	assert_non_null(strstr(err, "Read-only file system"));
	free(err);
	assert_int_equal(mount("tmpfs", dir, "tmpfs", MS_REMOUNT, "size=64k"), 0);
	sleep_usec(RETRY_USEC + 50000);
	capture_start();
	conslog_write(l, "ok\n", 3);
	err = capture_stop();
	assert_int_equal(count_substr(err, "<3>"), 0);
	assert_int_equal(count_substr(err, "logging resumed, 5 bytes not logged"), 1);
	free(err);
	l = conslog_free(l);
	assert_true(read_at(dir, "vm.log", &f));
	f.p[f.len] = '\0';
	assert_non_null(strstr((char *)f.p, " 5 bytes not logged\nok\n"));
	free(f.p);
	assert_int_equal(umount2(dir, MNT_DETACH), 0);
	remove_dir(dir);
}

/* Undo what a failed test left behind. */
static int teardown(void **state)
{
	if (saved_stderr >= 0) {
		capture_restore();
		unlink(capture_path);
	}
	conslog_set_write_fn(NULL);
	for (size_t i = 0; i < ELEMENTS(temp_dirs); i++)
		if (temp_dirs[i]) {
			umount2(temp_dirs[i], MNT_DETACH);
			rm_tree(temp_dirs[i]);
		}
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_file_name, teardown),
		cmocka_unit_test_teardown(test_format_time, teardown),
		cmocka_unit_test_teardown(test_format, teardown),
		cmocka_unit_test_teardown(test_plan_cases, teardown),
		cmocka_unit_test_teardown(test_plan_model, teardown),
		cmocka_unit_test_teardown(test_rotation_whole_lines, teardown),
		cmocka_unit_test_teardown(test_backups_zero, teardown),
		cmocka_unit_test_teardown(test_long_line_cut, teardown),
		cmocka_unit_test_teardown(test_reopen_continues, teardown),
		cmocka_unit_test_teardown(test_stale_backups_removed, teardown),
		cmocka_unit_test_teardown(test_timestamps, teardown),
		cmocka_unit_test_teardown(test_markers, teardown),
		cmocka_unit_test_teardown(test_symlinks_refused, teardown),
		cmocka_unit_test_teardown(test_bad_config, teardown),
		cmocka_unit_test_teardown(test_open_failure_resumes, teardown),
		cmocka_unit_test_teardown(test_enospc_one_error, teardown),
		cmocka_unit_test_teardown(test_real_tmpfs, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
