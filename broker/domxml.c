/* SPDX-License-Identifier: MIT */
/*
 * Consoles of one guest from libvirt domain XML.
 *
 * Model: the document is parsed from memory by libxml2 with a private parser
 * context (no network, no entity substitution, no DTD loading, default size
 * limits).  The context's own SAX table is adjusted so that
 *   - a <!DOCTYPE ...> stops the parser before its internal subset is read
 *     (no entity is ever declared, so none can be expanded or fetched), and
 *   - errors go to a silent per-context handler that remembers the first one
 *     (line and message) instead of libxml2's global handlers.
 * Nothing here does I/O, logs, or changes libxml2's global settings.
 *
 * The tree is then walked without XPath: root <domain>, or <domstatus> and
 * its first <domain> child; the first <name>, <uuid> and <devices>
 * children of <domain>; and the <serial>/<console> children of <devices> in
 * document order.  Only elements in no namespace are considered, as libvirt
 * does.  For each device the first <source>, <target> and <alias> children
 * are used.  The QEMU user comes from the first <seclabel model='dac'> child
 * of <domain> whose type is 'dynamic' or 'static': its <label> text, kept
 * as written ("+64055:+64055", "libvirt-qemu:kvm"); too long is dropped.
 *
 * A <console> whose target type is 'serial' (or absent) is the same chardev
 * as the first <serial> when it carries the same alias, or, having no alias,
 * when its port is absent or 0; it is then dropped (only when a <serial>
 * exists).  Missing aliases are synthesised libvirt-style: "serial" or
 * "console" followed by the target port, or by the element's index among
 * its kind when there is no port.
 *
 * Every string taken from the document is at most DOMXML_MAX_STRING bytes: a
 * longer <name> or <uuid> fails the parse, a longer device attribute is
 * dropped (NULL, alias synthesised) and makes that device unsupported.  More
 * than DOMXML_MAX_DEVICES listed devices fail the parse with -E2BIG rather
 * than being silently truncated.
 */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "domxml.h"
#include "util.h"

#define DOMXML_PARSE_OPTIONS \
	(XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_IGNORE_ENC)

/* Longest libxml2 message kept for *ret_error. */
#define DOMXML_MAX_ERROR 256

/* Per-parse state, reached from the SAX callbacks through ctxt->_private. */
struct parse_state {
	bool saw_dtd;
	bool have_error;
	int error_line;
	int error_code;
	char error_msg[DOMXML_MAX_ERROR];
};

static int set_error(char **ret_error, int r, const char *fmt, ...) _printf_(3, 4);

static int set_error(char **ret_error, int r, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (!ret_error)
		return r;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	*ret_error = s;
	return r;
}

/*
 * Copy a libxml2 message into dst (size n): one line, control characters as
 * spaces, and no UTF-8 sequence cut in half when it has to be shortened.
 */
static void copy_message(char *dst, size_t n, const char *src)
{
	size_t i = 0;

	for (; src && *src && i + 1 < n; src++)
		dst[i++] = (unsigned char)*src < 0x20 || *src == 0x7f ? ' ' : *src;
	if (src && *src) {
		while (i > 0 && ((unsigned char)dst[i - 1] & 0xc0) == 0x80)
			i--;
		if (i > 0 && (unsigned char)dst[i - 1] >= 0xc0)
			i--;
	}
	while (i > 0 && dst[i - 1] == ' ')
		i--;
	dst[i] = '\0';
}

static void parse_on_error(void *user_data, xmlErrorPtr error)
{
	xmlParserCtxtPtr ctxt = user_data;
	struct parse_state *st = ctxt ? ctxt->_private : NULL;

	if (!st || !error || st->have_error || error->level < XML_ERR_ERROR)
		return;
	st->have_error = true;
	st->error_line = error->line;
	st->error_code = error->code;
	copy_message(st->error_msg, sizeof(st->error_msg), error->message);
}

/* Called at "<!DOCTYPE name ...", before any internal subset is parsed. */
static void parse_on_internal_subset(void *user_data, const xmlChar *name,
				     const xmlChar *external_id, const xmlChar *system_id)
{
	xmlParserCtxtPtr ctxt = user_data;
	struct parse_state *st = ctxt ? ctxt->_private : NULL;

	if (st)
		st->saw_dtd = true;
	if (ctxt)
		xmlStopParser(ctxt);
}

static int parse_failed(xmlParserCtxtPtr ctxt, const struct parse_state *st, char **ret_error)
{
	char msg[DOMXML_MAX_ERROR];
	const xmlError *e;
	int line, code;

	if (st->have_error) {
		line = st->error_line;
		code = st->error_code;
		snprintf(msg, sizeof(msg), "%s", st->error_msg);
	} else {
		e = xmlCtxtGetLastError(ctxt);
		if (!e || e->code == XML_ERR_OK)
			return set_error(ret_error, -EBADMSG, "malformed XML document");
		line = e->line;
		code = e->code;
		copy_message(msg, sizeof(msg), e->message);
	}
	if (code == XML_ERR_NO_MEMORY)
		return set_error(ret_error, -ENOMEM, "out of memory while parsing XML");
	return set_error(ret_error, -EBADMSG, "line %d: %s", line,
			 msg[0] ? msg : "malformed XML document");
}

static bool node_is(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && !n->ns && xmlStrEqual(n->name, BAD_CAST name);
}

static xmlNode *node_first_child(const xmlNode *parent, const char *name)
{
	xmlNode *c;

	if (!parent)
		return NULL;
	for (c = parent->children; c; c = c->next)
		if (node_is(c, name))
			return c;
	return NULL;
}

/*
 * Copy an xmlChar string into *ret if it is at most DOMXML_MAX_STRING bytes.
 * Returns 0 (*ret set), -E2BIG (*ret NULL, *ret_len the length) or -ENOMEM.
 * Frees v.
 */
static int xml_take_string(xmlChar *v, char **ret, size_t *ret_len)
{
	size_t n = strlen((const char *)v);
	char *s = NULL;

	if (ret_len)
		*ret_len = n;
	if (n <= DOMXML_MAX_STRING) {
		s = strdup((const char *)v);
		if (!s) {
			xmlFree(v);
			return -ENOMEM;
		}
	}
	xmlFree(v);
	*ret = s;
	return s ? 0 : -E2BIG;
}

/* Attribute without namespace; *ret is NULL when absent (returns 0) or too long (-E2BIG). */
static int xml_get_attr(xmlNode *node, const char *name, char **ret, size_t *ret_len)
{
	xmlChar *v;

	*ret = NULL;
	if (!node || !xmlHasNsProp(node, BAD_CAST name, NULL))
		return 0;
	v = xmlGetNoNsProp(node, BAD_CAST name);
	if (!v)
		return -ENOMEM;
	return xml_take_string(v, ret, ret_len);
}

/* Text content of an element; same return convention as xml_get_attr(). */
static int xml_get_text(xmlNode *node, char **ret, size_t *ret_len)
{
	xmlChar *v;

	*ret = NULL;
	v = xmlNodeGetContent(node);
	if (!v)
		return -ENOMEM;
	return xml_take_string(v, ret, ret_len);
}

static void domxml_dev_done(struct domxml_dev *dev)
{
	free(dev->element);
	free(dev->alias);
	free(dev->target_type);
	free(dev->type);
	free(dev->path);
	free(dev->reason);
	free(dev->chardev);
	*dev = (struct domxml_dev){ .port = -1 };
}

/* Record why dev is unsupported; the first reason wins.  Returns 0 or -ENOMEM. */
static int dev_unsupported(struct domxml_dev *dev, const char *fmt, ...) _printf_(2, 3);

static int dev_unsupported(struct domxml_dev *dev, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	dev->supported = false;
	if (dev->reason)
		return 0;
	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	dev->reason = s;
	return 0;
}

/*
 * Fetch one attribute for a device.  Too long: the field stays NULL and the
 * device becomes unsupported with a reason naming what.  Returns 0 or -ENOMEM.
 */
static int dev_get_attr(struct domxml_dev *dev, xmlNode *node, const char *attr,
			const char *what, char **ret)
{
	size_t len = 0;
	int r;

	r = xml_get_attr(node, attr, ret, &len);
	if (r == -E2BIG)
		return dev_unsupported(dev, "%s is %zu bytes, over the %d byte limit", what, len,
				       DOMXML_MAX_STRING);
	return r;
}

/* Strict decimal 0..INT_MAX. */
static int parse_port(const char *s, int *ret)
{
	long v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		v = v * 10 + (*s - '0');
		if (v > INT_MAX)
			return -ERANGE;
	}
	*ret = (int)v;
	return 0;
}

static int dev_check_path(struct domxml_dev *dev)
{
	if (dev->path[0] != '/')
		return dev_unsupported(dev, "path '%s' is not absolute", dev->path);
	return 0;
}

/* Decide backend, path and support from the type attribute and <source>. */
static int dev_classify(struct domxml_dev *dev, xmlNode *node, xmlNode *source, bool is_console)
{
	_cleanup_free_ char *mode = NULL;
	_cleanup_free_ char *tty = NULL;
	int r;

	r = dev_get_attr(dev, source, "path", "<source path>", &dev->path);
	if (r < 0)
		return r;
	if (dev->path && !dev->path[0]) {
		free(dev->path);
		dev->path = NULL;
	}

	if (!dev->type) {
		dev->backend = DOMXML_BACKEND_OTHER;
		return dev_unsupported(dev, "no type attribute");
	}

	if (strcmp(dev->type, "unix") == 0) {
		dev->backend = DOMXML_BACKEND_UNIX;
		r = dev_get_attr(dev, source, "mode", "<source mode>", &mode);
		if (r < 0)
			return r;
		if (!mode || strcmp(mode, "connect") == 0)
			return dev_unsupported(dev, "mode='connect' (QEMU connects out) is not "
					       "supported");
		if (strcmp(mode, "bind") != 0)
			return dev_unsupported(dev, "unknown source mode '%.64s'", mode);
		if (!dev->path)
			return dev_unsupported(dev, "unix socket has no <source path>");
		return dev_check_path(dev);
	}

	if (strcmp(dev->type, "pty") == 0) {
		dev->backend = DOMXML_BACKEND_PTY;
		if (!dev->path && is_console) {
			r = dev_get_attr(dev, node, "tty", "tty attribute", &tty);
			if (r < 0)
				return r;
			if (tty && tty[0])
				dev->path = TAKE_PTR(tty);
		}
		if (!dev->path)
			return dev_unsupported(dev, "pty path not allocated (domain not running)");
		return dev_check_path(dev);
	}

	dev->backend = DOMXML_BACKEND_OTHER;
	return dev_unsupported(dev, "backend type '%.64s' is not supported", dev->type);
}

/*
 * Parse one <serial> or <console>.  nth is the element's position among its
 * kind, used for a missing alias when there is no port.  *ret_alias_given
 * tells whether the alias came from the document.
 */
static int dev_parse(xmlNode *node, bool is_console, unsigned nth, struct domxml_dev *ret,
		     bool *ret_alias_given)
{
	struct domxml_dev dev = { .port = -1, .supported = true };
	const char *kind = is_console ? "console" : "serial";
	xmlNode *source = node_first_child(node, "source");
	xmlNode *target = node_first_child(node, "target");
	xmlNode *alias = node_first_child(node, "alias");
	_cleanup_free_ char *port = NULL;
	int r;

	dev.element = strdup(kind);
	if (!dev.element) {
		r = -ENOMEM;
		goto fail;
	}
	r = dev_get_attr(&dev, node, "type", "type attribute", &dev.type);
	if (r < 0)
		goto fail;
	r = dev_get_attr(&dev, target, "type", "<target type>", &dev.target_type);
	if (r < 0)
		goto fail;
	r = dev_get_attr(&dev, target, "port", "<target port>", &port);
	if (r < 0)
		goto fail;
	if (port && parse_port(port, &dev.port) < 0) {
		r = dev_unsupported(&dev, "invalid <target port='%.32s'>", port);
		if (r < 0)
			goto fail;
	}
	r = dev_get_attr(&dev, alias, "name", "<alias name>", &dev.alias);
	if (r < 0)
		goto fail;
	if (dev.alias && !dev.alias[0]) {
		free(dev.alias);
		dev.alias = NULL;
	}
	*ret_alias_given = dev.alias != NULL;
	if (!dev.alias &&
	    asprintf(&dev.alias, "%s%u", kind, dev.port >= 0 ? (unsigned)dev.port : nth) < 0) {
		dev.alias = NULL;
		r = -ENOMEM;
		goto fail;
	}
	r = dev_classify(&dev, node, source, is_console);
	if (r < 0)
		goto fail;
	*ret = dev;
	return 0;

fail:
	domxml_dev_done(&dev);
	return r;
}

/* Is this <console> the first <serial> seen again (libvirt's console compat)? */
static bool console_is_serial(const struct domxml_dev *con, bool alias_given,
			      const char *serial_alias)
{
	if (con->target_type && strcmp(con->target_type, "serial") != 0)
		return false;
	if (alias_given)
		return strcmp(con->alias, serial_alias) == 0;
	return con->port <= 0;
}

static int domxml_add_dev(struct domxml *d, size_t *cap, struct domxml_dev *dev)
{
	struct domxml_dev *p;
	size_t n;

	if (d->n_devs >= DOMXML_MAX_DEVICES)
		return -E2BIG;
	if (d->n_devs == *cap) {
		n = *cap ? *cap * 2 : 4;
		p = reallocarray(d->devs, MIN(n, (size_t)DOMXML_MAX_DEVICES), sizeof(*p));
		if (!p)
			return -ENOMEM;
		d->devs = p;
		*cap = MIN(n, (size_t)DOMXML_MAX_DEVICES);
	}
	d->devs[d->n_devs++] = *dev;
	*dev = (struct domxml_dev){ .port = -1 };
	return 0;
}

static int domxml_parse_devices(struct domxml *d, xmlNode *devices, char **ret_error)
{
	struct domxml_dev dev = { .port = -1 };
	_cleanup_free_ char *serial_alias = NULL;
	unsigned n_serials = 0, n_consoles = 0;
	xmlNode *first_serial, *c;
	bool is_console, alias_given;
	size_t cap = 0;
	int r;

	if (!devices)
		return 0;

	first_serial = node_first_child(devices, "serial");
	if (first_serial) {
		r = dev_parse(first_serial, false, 0, &dev, &alias_given);
		if (r < 0)
			goto fail;
		serial_alias = TAKE_PTR(dev.alias);
		domxml_dev_done(&dev);
	}

	for (c = devices->children; c; c = c->next) {
		if (node_is(c, "serial"))
			is_console = false;
		else if (node_is(c, "console"))
			is_console = true;
		else
			continue;

		r = dev_parse(c, is_console, is_console ? n_consoles++ : n_serials++, &dev,
			      &alias_given);
		if (r < 0)
			goto fail;
		if (is_console && serial_alias &&
		    console_is_serial(&dev, alias_given, serial_alias)) {
			domxml_dev_done(&dev);
			continue;
		}
		r = domxml_add_dev(d, &cap, &dev);
		if (r == -E2BIG) {
			domxml_dev_done(&dev);
			return set_error(ret_error, r, "more than %d serial/console devices",
					 DOMXML_MAX_DEVICES);
		}
		if (r < 0)
			goto fail;
	}
	return 0;

fail:
	domxml_dev_done(&dev);
	return set_error(ret_error, r, "out of memory");
}

/* The first <tag> child of domain as a bounded string; *ret NULL if absent or empty. */
static int domxml_get_child_text(xmlNode *domain, const char *tag, char **ret, char **ret_error)
{
	xmlNode *node = node_first_child(domain, tag);
	size_t len = 0;
	int r;

	*ret = NULL;
	if (!node)
		return 0;
	r = xml_get_text(node, ret, &len);
	if (r == -E2BIG)
		return set_error(ret_error, -EBADMSG, "<%s> is %zu bytes, over the %d byte limit",
				 tag, len, DOMXML_MAX_STRING);
	if (r < 0)
		return set_error(ret_error, r, "out of memory");
	if (!(*ret)[0]) {
		free(*ret);
		*ret = NULL;
	}
	return 0;
}

/* <seclabel type='dynamic|static' model='dac'><label>...</label>: the QEMU user. */
static int domxml_get_dac_label(xmlNode *domain, char **ret)
{
	*ret = NULL;
	for (xmlNode *c = domain->children; c; c = c->next) {
		char *model = NULL, *type = NULL;
		bool dac;
		xmlNode *label;
		int r;

		if (!node_is(c, "seclabel"))
			continue;
		r = xml_get_attr(c, "model", &model, NULL);
		if (r >= 0)
			r = xml_get_attr(c, "type", &type, NULL);
		dac = model && type && strcmp(model, "dac") == 0 &&
		      (strcmp(type, "dynamic") == 0 || strcmp(type, "static") == 0);
		free(model);
		free(type);
		if (r == -ENOMEM)
			return r;
		if (!dac)
			continue;
		label = node_first_child(c, "label");
		if (!label)
			return 0;
		r = xml_get_text(label, ret, NULL);
		if (r == -ENOMEM)
			return r;
		if (*ret && !(*ret)[0]) {
			free(*ret);
			*ret = NULL;
		}
		return 0;
	}
	return 0;
}

static int domxml_from_doc(xmlDoc *doc, struct domxml **ret, char **ret_error)
{
	struct domxml *d = NULL;
	xmlNode *root, *domain;
	int r;

	root = xmlDocGetRootElement(doc);
	if (!root)
		return set_error(ret_error, -EBADMSG, "no root element");
	if (node_is(root, "domain")) {
		domain = root;
	} else if (node_is(root, "domstatus")) {
		domain = node_first_child(root, "domain");
		if (!domain)
			return set_error(ret_error, -EBADMSG, "no <domain> element in <domstatus>");
	} else if (root->ns && root->ns->href) {
		return set_error(ret_error, -EBADMSG,
				 "root element is <%.64s> in namespace '%.128s', expected <domain> "
				 "or <domstatus>", (const char *)root->name,
				 (const char *)root->ns->href);
	} else {
		return set_error(ret_error, -EBADMSG,
				 "root element is <%.64s>, expected <domain> or <domstatus>",
				 (const char *)root->name);
	}

	d = calloc(1, sizeof(*d));
	if (!d)
		return set_error(ret_error, -ENOMEM, "out of memory");

	if (!node_first_child(domain, "name")) {
		r = set_error(ret_error, -EBADMSG, "no <name> element");
		goto fail;
	}
	r = domxml_get_child_text(domain, "name", &d->name, ret_error);
	if (r < 0)
		goto fail;
	if (!d->name) {
		r = set_error(ret_error, -EBADMSG, "<name> is empty");
		goto fail;
	}
	r = domxml_get_child_text(domain, "uuid", &d->uuid, ret_error);
	if (r < 0)
		goto fail;
	r = domxml_parse_devices(d, node_first_child(domain, "devices"), ret_error);
	if (r < 0)
		goto fail;
	r = domxml_get_dac_label(domain, &d->dac_label);
	if (r < 0) {
		r = set_error(ret_error, r, "out of memory");
		goto fail;
	}

	*ret = d;
	return 0;

fail:
	domxml_free(d);
	return r;
}

int domxml_parse(const char *buf, size_t len, struct domxml **ret, char **ret_error)
{
	struct parse_state st = {};
	xmlParserCtxtPtr ctxt;
	xmlDocPtr doc;
	int r;

	assert(ret);

	if (len > DOMXML_MAX_SIZE)
		return set_error(ret_error, -EFBIG, "document is %zu bytes, over the %u byte limit",
				 len, DOMXML_MAX_SIZE);
	if (!buf || len == 0)
		return set_error(ret_error, -EBADMSG, "document is empty");

	xmlInitParser();
	ctxt = xmlNewParserCtxt();
	if (!ctxt)
		return set_error(ret_error, -ENOMEM, "out of memory");
	/* Both only touch this context's own SAX handler copy. */
	ctxt->_private = &st;
	ctxt->sax->internalSubset = parse_on_internal_subset;
	ctxt->sax->serror = parse_on_error;

	doc = xmlCtxtReadMemory(ctxt, buf, (int)len, NULL, "UTF-8", DOMXML_PARSE_OPTIONS);
	if (st.saw_dtd || (doc && (doc->intSubset || doc->extSubset)))
		r = set_error(ret_error, -EBADMSG, "DTDs and entities are not allowed");
	else if (!doc)
		r = parse_failed(ctxt, &st, ret_error);
	else
		r = domxml_from_doc(doc, ret, ret_error);

	xmlFreeDoc(doc);
	ctxt->_private = NULL;
	xmlFreeParserCtxt(ctxt);
	return r;
}

struct domxml *domxml_free(struct domxml *d)
{
	if (!d)
		return NULL;
	for (size_t i = 0; i < d->n_devs; i++)
		domxml_dev_done(&d->devs[i]);
	free(d->devs);
	free(d->name);
	free(d->uuid);
	free(d->dac_label);
	free(d);
	return NULL;
}
