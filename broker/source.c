/* SPDX-License-Identifier: MIT */
/*
 * The list of console sources (see source.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "source.h"

void break_req_fail(struct break_req *req, int error, const char *fmt, ...)
{
	char text[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	req->done(req, error, text);
}

void source_list_add(struct source_list *l, struct source *s)
{
	TAILQ_INSERT_TAIL(l, s, entry);
}

size_t source_list_count(const struct source_list *l, const char *kind)
{
	const struct source *s;
	size_t n = 0;

	TAILQ_FOREACH(s, l, entry)
		if (strcmp(s->ops->kind, kind) == 0)
			n++;
	return n;
}

int source_list_rescan(struct source_list *l)
{
	struct source *s;
	int r = 0;

	TAILQ_FOREACH(s, l, entry)
		if (s->ops->rescan) {
			int k = s->ops->rescan(s);

			if (k < 0 && r == 0)
				r = k;
		}
	return r;
}

void source_list_free(struct source_list *l)
{
	struct source *s;

	while ((s = TAILQ_FIRST(l))) {
		TAILQ_REMOVE(l, s, entry);
		s->ops->free(s);
	}
}
