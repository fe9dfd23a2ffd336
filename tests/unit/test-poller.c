/* SPDX-License-Identifier: MIT */
/*
 * Poller: one sd-event iteration serves every ready descriptor exactly
 * once; a watch freed or disabled by an earlier callback of the same batch
 * is not called; events are masked to what the watch wants, hang-ups
 * included unless disabled; a watch added during a batch works next round.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "poller.h"

#define N_PAIRS 50

struct peer {
	int sv[2];
	struct watch *w;
	unsigned calls;
	uint32_t last;
	struct peer *victim; /* freed by this one's callback, if still there */
	struct poller *p;    /* for adding a watch from a callback */
	struct peer *spawn;
};

static void on_event(struct watch *w, int fd, uint32_t revents, void *userdata)
{
	struct peer *pe = userdata;

	assert_int_equal(fd, pe->sv[0]);
	pe->calls++;
	pe->last = revents;
	if (pe->victim && pe->victim->w) {
		pe->victim->w = watch_free(pe->victim->w);
		close(pe->victim->sv[0]);
		pe->victim->sv[0] = -1;
	}
	if (pe->spawn && !pe->spawn->w)
		assert_int_equal(watch_add(pe->p, pe->spawn->sv[0], EPOLLIN, on_event, pe->spawn,
					   &pe->spawn->w), 0);
}

static void pair_open(struct peer *pe)
{
	memset(pe, 0, sizeof(*pe));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pe->sv), 0);
}

static void pair_close(struct peer *pe)
{
	pe->w = watch_free(pe->w);
	if (pe->sv[0] >= 0)
		close(pe->sv[0]);
	if (pe->sv[1] >= 0)
		close(pe->sv[1]);
}

struct loop {
	sd_event *e;
	struct poller *p;
};

static int loop_setup(void **state)
{
	struct loop *l = calloc(1, sizeof(*l));

	assert_non_null(l);
	assert_int_equal(sd_event_new(&l->e), 0);
	assert_int_equal(poller_new(l->e, &l->p), 0);
	*state = l;
	return 0;
}

/* After every watch was freed (pair_close). */
static int loop_teardown(void **state)
{
	struct loop *l = *state;

	poller_free(l->p);
	sd_event_unref(l->e);
	free(l);
	return 0;
}

static void test_one_iteration_serves_all(void **state)
{
	struct peer pe[N_PAIRS];
	struct loop *l = *state;
	struct poller *p = l->p;
	sd_event *e = l->e;

	for (int i = 0; i < N_PAIRS; i++) {
		pair_open(&pe[i]);
		assert_int_equal(watch_add(p, pe[i].sv[0], EPOLLIN, on_event, &pe[i], &pe[i].w), 0);
		/* Every other one readable; nothing is ever read, so they stay ready. */
		if (i % 2 == 0)
			assert_int_equal(write(pe[i].sv[1], "x", 1), 1);
	}
	for (int round = 1; round <= 3; round++) {
		assert_true(sd_event_run(e, 1000000) > 0);
		for (int i = 0; i < N_PAIRS; i++) {
			assert_int_equal(pe[i].calls, i % 2 == 0 ? round : 0);
			if (i % 2 == 0)
				assert_int_equal(pe[i].last, EPOLLIN);
		}
	}
	for (int i = 0; i < N_PAIRS; i++)
		pair_close(&pe[i]);
}

static void test_free_during_batch(void **state)
{
	struct peer a, b;
	struct loop *l = *state;
	struct poller *p = l->p;
	sd_event *e = l->e;

	pair_open(&a);
	pair_open(&b);
	a.victim = &b;
	b.victim = &a;
	assert_int_equal(watch_add(p, a.sv[0], EPOLLIN, on_event, &a, &a.w), 0);
	assert_int_equal(watch_add(p, b.sv[0], EPOLLIN, on_event, &b, &b.w), 0);
	assert_int_equal(write(a.sv[1], "x", 1), 1);
	assert_int_equal(write(b.sv[1], "x", 1), 1);
	/* Both are in the same batch; whichever runs first frees the other. */
	assert_true(sd_event_run(e, 1000000) > 0);
	assert_int_equal(a.calls + b.calls, 1);
	assert_true(sd_event_run(e, 1000000) > 0);
	assert_int_equal(a.calls + b.calls, 2);
	pair_close(&a);
	pair_close(&b);
}

static void test_masks_and_hangup(void **state)
{
	struct peer a;
	struct loop *l = *state;
	struct poller *p = l->p;
	sd_event *e = l->e;

	pair_open(&a);
	/* Writable, not readable: nothing for an EPOLLIN watch. */
	assert_int_equal(watch_add(p, a.sv[0], EPOLLIN, on_event, &a, &a.w), 0);
	assert_int_equal(sd_event_run(e, 50000), 0);
	assert_int_equal(a.calls, 0);
	assert_int_equal(watch_set_events(a.w, EPOLLOUT), 0);
	assert_true(sd_event_run(e, 1000000) > 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.last, EPOLLOUT);
	/* Disabled: not even a hang-up. */
	assert_int_equal(watch_disable(a.w), 0);
	close(a.sv[1]);
	a.sv[1] = -1;
	assert_int_equal(sd_event_run(e, 50000), 0);
	assert_int_equal(a.calls, 1);
	/* Events 0 still report the hang-up, as epoll does. */
	assert_int_equal(watch_set_events(a.w, 0), 0);
	assert_true(sd_event_run(e, 1000000) > 0);
	assert_int_equal(a.calls, 2);
	assert_true(a.last & EPOLLHUP);
	assert_false(a.last & (EPOLLIN | EPOLLOUT));
	pair_close(&a);
}

static void test_add_during_batch(void **state)
{
	struct peer a, b;
	struct loop *l = *state;
	struct poller *p = l->p;
	sd_event *e = l->e;

	pair_open(&a);
	pair_open(&b);
	a.p = p;
	a.spawn = &b;
	assert_int_equal(write(b.sv[1], "x", 1), 1);
	assert_int_equal(watch_add(p, a.sv[0], EPOLLIN, on_event, &a, &a.w), 0);
	assert_int_equal(write(a.sv[1], "x", 1), 1);
	assert_true(sd_event_run(e, 1000000) > 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 0);
	assert_non_null(b.w);
	assert_true(sd_event_run(e, 1000000) > 0);
	assert_int_equal(a.calls, 2);
	assert_int_equal(b.calls, 1);
	pair_close(&a);
	pair_close(&b);
}

#define LOOP_TEST(t) cmocka_unit_test_setup_teardown(t, loop_setup, loop_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		LOOP_TEST(test_one_iteration_serves_all),
		LOOP_TEST(test_free_during_batch),
		LOOP_TEST(test_masks_and_hangup),
		LOOP_TEST(test_add_during_batch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
