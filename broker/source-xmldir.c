/* SPDX-License-Identifier: MIT */
/*
 * Domain-XML directory source (see source-xmldir.h).
 *
 * Each *.xml file maps to the consoles it defined (a struct domain, which
 * does the diffing on reload).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "console.h"
#include "domain.h"
#include "domxml.h"
#include "fileio.h"
#include "log.h"
#include "util.h"
#include "source-xmldir.h"

struct xmlfile {
	char *path; /* owned */
	struct domain domain;
	struct xmlfile *next;
};

struct xmldir {
	struct source source; /* first */
	const struct source_env *env;
	char *dir;            /* owned */
	int inotify_fd;       /* owned */
	sd_event_source *io;  /* owned */
	struct xmlfile *files;
};

static bool xmldir_wants(const char *name)
{
	size_t len = strlen(name);

	return name[0] != '.' && len > 4 && strcmp(name + len - 4, ".xml") == 0;
}

static struct xmlfile *xmldir_find(struct xmldir *d, const char *path, bool create)
{
	struct xmlfile *f;

	for (f = d->files; f; f = f->next)
		if (strcmp(f->path, path) == 0)
			return f;
	if (!create)
		return NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->path = strdup(path);
	if (!f->path) {
		free(f);
		return NULL;
	}
	f->next = d->files;
	d->files = f;
	return f;
}

static void xmldir_forget(struct xmldir *d, const char *path, const char *why)
{
	struct xmlfile **pp, *f;

	registry_clear_error(d->env->registry, path);
	for (pp = &d->files; (f = *pp); pp = &f->next) {
		if (strcmp(f->path, path) != 0)
			continue;
		domain_clear(d->env, &f->domain, why);
		*pp = f->next;
		free(f->path);
		free(f);
		return;
	}
}

/* Read a definition file, with the reason in err when it cannot be used. */
static int xmldir_read(const char *path, char **ret, size_t *ret_len, char *err, size_t errsz)
{
	int r = read_file_bounded(path, DOMXML_MAX_SIZE, ret, ret_len);

	if (r == -ELOOP)
		snprintf(err, errsz, "is a symbolic link; refusing to follow it");
	else if (r == -EBADF)
		snprintf(err, errsz, "not a regular file");
	else if (r == -EFBIG)
		snprintf(err, errsz, "file is over the %u byte limit", DOMXML_MAX_SIZE);
	else if (r < 0)
		snprintf(err, errsz, "cannot read: %s", strerror(-r));
	return r;
}

static void xmldir_load(struct xmldir *d, const char *path)
{
	_cleanup_free_ char *buf = NULL, *perr = NULL;
	struct domxml *dom = NULL;
	struct xmlfile *f;
	char err[512];
	size_t len;
	int r;

	r = xmldir_read(path, &buf, &len, err, sizeof(err));
	if (r >= 0) {
		r = domxml_parse(buf, len, &dom, &perr);
		if (r < 0)
			snprintf(err, sizeof(err), "%s", perr ? perr : strerror(-r));
	}
	if (r < 0) {
		char esc[600];

		log_escape(err, strlen(err), esc, sizeof(esc));
		log_error("%s: %s; keeping its previous consoles, if any", path, esc);
		registry_set_error(d->env->registry, path, esc);
		return;
	}
	registry_clear_error(d->env->registry, path);
	f = xmldir_find(d, path, true);
	if (f)
		domain_apply(d->env, &f->domain, dom, path, NULL, NULL);
	domxml_free(dom);
}

static void xmldir_event(struct xmldir *d, const char *name, bool gone)
{
	char path[PATH_MAX];

	if (!xmldir_wants(name))
		return;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", d->dir, name) >= sizeof(path))
		return;
	if (gone)
		xmldir_forget(d, path, "its domain definition was removed");
	else
		xmldir_load(d, path);
}

static int xmldir_scan(struct xmldir *d)
{
	DIR *dir = opendir(d->dir);
	struct dirent *de;

	if (!dir)
		return log_error_errno(negative_errno(), "cannot read directory %s", d->dir);
	while ((de = readdir(dir)))
		if (de->d_type == DT_REG || de->d_type == DT_UNKNOWN || de->d_type == DT_LNK)
			xmldir_event(d, de->d_name, false);
	closedir(dir);
	/* Files that disappeared while events were lost. */
	for (struct xmlfile *f = d->files, *next; f; f = next) {
		next = f->next;
		if (access(f->path, F_OK) < 0)
			xmldir_forget(d, f->path, "its domain definition was removed");
	}
	return 0;
}

static int xmldir_on_inotify(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct xmldir *d = userdata;
	union {
		struct inotify_event ev;
		char buf[4096];
	} u;
	ssize_t n;

	for (;;) {
		n = read(fd, u.buf, sizeof(u.buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (char *p = u.buf; p < u.buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;

			if (ev->mask & IN_Q_OVERFLOW)
				xmldir_scan(d);
			else if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
				log_error("%s: directory removed or moved; no longer watched", d->dir);
			else if (ev->len > 0)
				xmldir_event(d, ev->name, ev->mask & (IN_DELETE | IN_MOVED_FROM));
			p += sizeof(struct inotify_event) + ev->len;
		}
	}
	return 0;
}

static const struct source_ops xmldir_ops;
static struct source *xmldir_free(struct source *s);

int source_xmldir_open(const struct source_env *env, const char *dir, struct source **ret)
{
	struct xmldir *d;
	struct stat st;
	int r;

	if (stat(dir, &st) < 0)
		return log_error_errno(negative_errno(), "--domain-xml %s", dir);
	if (!S_ISDIR(st.st_mode))
		return log_error_errno(-ENOTDIR, "--domain-xml %s", dir);
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->source.ops = &xmldir_ops;
	d->env = env;
	d->inotify_fd = -EBADF;
	d->dir = strdup(dir);
	if (!d->dir) {
		xmldir_free(&d->source);
		return -ENOMEM;
	}
	d->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (d->inotify_fd < 0) {
		r = log_error_errno(negative_errno(), "inotify");
		xmldir_free(&d->source);
		return r;
	}
	if (inotify_add_watch(d->inotify_fd, dir,
			      IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
				      IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR) < 0) {
		r = log_error_errno(negative_errno(), "cannot watch %s", dir);
		xmldir_free(&d->source);
		return r;
	}
	r = sd_event_add_io(env->event, &d->io, d->inotify_fd, EPOLLIN, xmldir_on_inotify, d);
	if (r < 0) {
		xmldir_free(&d->source);
		return r;
	}
	xmldir_scan(d);
	*ret = &d->source;
	return 0;
}

static struct source *xmldir_free(struct source *s)
{
	struct xmldir *d = (struct xmldir *)s;

	if (!d)
		return NULL;
	while (d->files)
		xmldir_forget(d, d->files->path, "ttyhubd is shutting down");
	d->io = sd_event_source_disable_unref(d->io);
	d->inotify_fd = safe_close(d->inotify_fd);
	free(d->dir);
	free(d);
	return NULL;
}

static int xmldir_rescan(struct source *s)
{
	return xmldir_scan((struct xmldir *)s);
}

static const struct source_ops xmldir_ops = {
	.kind = "xmldir",
	.free = xmldir_free,
	.rescan = xmldir_rescan,
};
