/* SPDX-License-Identifier: MIT */
/*
 * ttyhub-webd's HTTP side (webd.h).  Every request gets a struct req on its
 * first call (MHD's per-request pointer), freed when MHD reports the
 * request completed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "call.h"
#include "fileio.h"
#include "log.h"
#include "tlsproxy.h"
#include "util.h"
#include "webd.h"
#include "webreq.h"
#include "wsconn.h"
#include "wsproto.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/*
 * libmicrohttpd's memory per connection: room to read a request with far
 * more than WEBD_HEADER_MAX of headers, so the 431 is ours (at once) rather
 * than libmicrohttpd's, which 0.9.75 sends only at its next timeout.
 */
#define WEBD_CONNECTION_MEMORY (128 * 1024)
/* TLS connections being handshaken or relayed at once. */
#define WEBD_TLS_MAX 4096
#define WEBD_CSP                                                                            \
	"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "     \
	"img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

struct req {
	TAILQ_ENTRY(req) entry;
	struct webd *d;
	struct MHD_Connection *conn;
	char body[WEBREQ_BODY_MAX];
	size_t body_len;
	bool too_big;
	bool suspended;
	struct call *call;
	bool answered;     /* the call is over: status and answer are set */
	json_t *answer;    /* the broker's answer (NULL: unreachable) */
	enum { REQ_SESSION, REQ_CONSOLES } kind;
	char addr[64];
	char session[WEBREQ_SECRET_MAX + 1]; /* GET /ws: the cookie's, until the upgrade */
	char session_id[17];
};

static const struct {
	const char *name;
	const char *type;
} static_files[] = {
	{ "index.html", "text/html; charset=utf-8" },
	{ "app.js", "text/javascript; charset=utf-8" },
	{ "app.css", "text/css; charset=utf-8" },
	{ "xterm.js", "text/javascript; charset=utf-8" },
	{ "xterm.css", "text/css; charset=utf-8" },
	{ "addon-fit.js", "text/javascript; charset=utf-8" },
};

unsigned webd_n_conns(const struct webd *d)
{
	return d->ws.n_conns;
}

/* SHA-256 of s, the first 16 hex digits: how logs name a token or a session. */
static void secret_id(const char *s, char out[17])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	if (!EVP_Digest(s, strlen(s), md, &mdlen, EVP_sha256(), NULL) || mdlen < 8) {
		snprintf(out, 17, "?");
		return;
	}
	for (unsigned i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void client_addr(struct MHD_Connection *c, char *buf, size_t size)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(buf, size, "?");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf, (socklen_t)size);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
			  (socklen_t)size);
}

static void add_headers(struct webd *d, struct MHD_Response *r)
{
	MHD_add_response_header(r, "Content-Security-Policy", WEBD_CSP);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	if (d->tls)
		MHD_add_response_header(r, "Strict-Transport-Security", "max-age=31536000");
}

static enum MHD_Result reply(struct webd *d, struct MHD_Connection *c, unsigned status,
			     const char *type, const char *body, size_t len, const char *cookie)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	add_headers(d, r);
	MHD_add_response_header(r, "Content-Type", type);
	if (cookie)
		MHD_add_response_header(r, "Set-Cookie", cookie);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct webd *d, struct MHD_Connection *c, unsigned status,
				  const char *text)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "%s\n", text);

	return reply(d, c, status, "text/plain; charset=utf-8", buf, (size_t)n, NULL);
}

static enum MHD_Result reply_json(struct webd *d, struct MHD_Connection *c, unsigned status,
				  json_t *o, const char *cookie)
{
	_cleanup_free_ char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	if (!s)
		return reply_text(d, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error");
	return reply(d, c, status, "application/json", s, strlen(s), cookie);
}

static enum MHD_Result reply_error(struct webd *d, struct MHD_Connection *c, unsigned status,
				   const char *text)
{
	json_t *o = json_pack("{s:s}", "error", text);
	enum MHD_Result r = reply_json(d, c, status, o, NULL);

	json_decref(o);
	return r;
}

/*
 * The page's files are served from memory.  A response from an fd makes
 * libmicrohttpd 0.9.75 in epoll mode send one 4 KiB buffer per MHD_run(),
 * and nothing asks for the next run while the socket stays writable: 488 KB
 * of xterm.js took 24 s.  From a buffer it writes until the socket is full,
 * and the socket says when it has room again.
 */
#define WEBD_STATIC_MAX (4 * 1024 * 1024)

static enum MHD_Result serve_static(struct webd *d, struct MHD_Connection *c, const char *name)
{
	char path[4096];
	struct MHD_Response *r;
	enum MHD_Result ret;
	char *data = NULL;
	size_t len = 0;
	int k;

	for (size_t i = 0; i < ELEMENTSOF(static_files); i++) {
		if (strcmp(name, static_files[i].name) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", d->config.static_dir, name);
		k = read_file_bounded(path, WEBD_STATIC_MAX, &data, &len);
		if (k < 0) {
			log_warning_errno(k, "the page's file %s cannot be read", path);
			return reply_text(d, c, MHD_HTTP_NOT_FOUND, "not found");
		}
		r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
		if (!r) {
			free(data);
			return MHD_NO;
		}
		add_headers(d, r);
		MHD_add_response_header(r, "Content-Type", static_files[i].type);
		ret = MHD_queue_response(c, MHD_HTTP_OK, r);
		MHD_destroy_response(r);
		return ret;
	}
	return reply_text(d, c, MHD_HTTP_NOT_FOUND, "not found");
}

static enum MHD_Result sum_header(void *cls, enum MHD_ValueKind kind, const char *key,
				  const char *value)
{
	size_t *n = cls;

	*n += strlen(key) + (value ? strlen(value) : 0) + 4;
	return MHD_YES;
}

static const char *header(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static const char *cookie_name(const struct webd *d)
{
	return d->tls ? WEBD_COOKIE_TLS : WEBD_COOKIE_PLAIN;
}

/* The session secret from the Cookie header; false when absent or malformed. */
static bool session_cookie(struct webd *d, struct MHD_Connection *c, char *out, size_t size)
{
	const char *h = header(c, MHD_HTTP_HEADER_COOKIE);

	return h && webreq_cookie(h, cookie_name(d), out, size) == 0;
}

static bool from_our_page(struct webd *d, struct MHD_Connection *c)
{
	return webreq_origin_allowed(header(c, MHD_HTTP_HEADER_ORIGIN), d->origins,
				     d->n_origins) &&
	       webreq_host_allowed(header(c, MHD_HTTP_HEADER_HOST), d->origins, d->n_origins);
}

/* -- the API's broker calls ---------------------------------------------------------- */

static void req_call_done(void *userdata, json_t *answer)
{
	struct req *q = userdata;

	q->call = NULL;
	q->answered = true;
	q->answer = json_incref(answer);
	if (q->suspended) {
		q->suspended = false;
		TAILQ_REMOVE(&q->d->pending, q, entry);
		MHD_resume_connection(q->conn);
		webd_kick(q->d);
	}
}

static enum MHD_Result req_start_call(struct req *q, const char *session, json_t *request,
				      const char *expect)
{
	int r = call_start(q->d->event, q->d->config.broker, session, q->addr, request, expect,
			   req_call_done, q, &q->call);

	if (r < 0) {
		log_warning_errno(r, "cannot reach ttyhubd at %s", q->d->config.broker);
		return reply_error(q->d, q->conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				   "ttyhubd is not reachable");
	}
	q->suspended = true;
	TAILQ_INSERT_TAIL(&q->d->pending, q, entry);
	MHD_suspend_connection(q->conn);
	return MHD_YES;
}

static enum MHD_Result session_answer(struct req *q)
{
	struct webd *d = q->d;
	json_t *a = q->answer, *out;
	const char *type = json_string_value(json_object_get(a, "type"));
	const char *secret = json_string_value(json_object_get(a, "session"));
	json_int_t ttl = json_integer_value(json_object_get(a, "expires_in"));
	char cookie[256];
	enum MHD_Result r;

	if (!a)
		return reply_error(d, q->conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				   "ttyhubd is not reachable");
	if (!type || strcmp(type, "redeemed") != 0 || !secret ||
	    strlen(secret) > WEBREQ_SECRET_MAX) {
		const char *m = json_string_value(json_object_get(a, "message"));

		log_info("token exchange from %s refused: %s", q->addr, m ?: "?");
		return reply_error(d, q->conn, MHD_HTTP_FORBIDDEN,
				   m ?: "this link is not valid (used, expired or unknown)");
	}
	if (ttl <= 0)
		ttl = 1;
	if (d->tls)
		snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; HttpOnly; SameSite=Strict; Secure; "
			 "Max-Age=%lld", WEBD_COOKIE_TLS, secret, (long long)ttl);
	else
		snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; HttpOnly; SameSite=Strict; "
			 "Max-Age=%lld", WEBD_COOKIE_PLAIN, secret, (long long)ttl);
	out = json_pack("{s:O?, s:O?, s:O?, s:I}", "console", json_object_get(a, "console"),
			"access", json_object_get(a, "access"), "you", json_object_get(a, "you"),
			"expires_in", (json_int_t)ttl);
	r = reply_json(d, q->conn, MHD_HTTP_OK, out, cookie);
	explicit_bzero(cookie, sizeof(cookie));
	json_decref(out);
	return r;
}

static enum MHD_Result consoles_answer(struct req *q)
{
	json_t *a = q->answer, *out;
	const char *type = json_string_value(json_object_get(a, "type"));
	enum MHD_Result r;

	if (!a)
		return reply_error(q->d, q->conn, MHD_HTTP_SERVICE_UNAVAILABLE,
				   "ttyhubd is not reachable");
	if (!type || strcmp(type, "list") != 0) {
		const char *m = json_string_value(json_object_get(a, "message"));

		return reply_error(q->d, q->conn, MHD_HTTP_FORBIDDEN, m ?: "denied");
	}
	out = json_pack("{s:O}", "consoles", json_object_get(a, "consoles") ?: json_array());
	r = reply_json(q->d, q->conn, MHD_HTTP_OK, out, NULL);
	json_decref(out);
	return r;
}

static enum MHD_Result api_session(struct req *q)
{
	char token[WEBREQ_SECRET_MAX + 1], id[17];
	json_t *request;

	if (q->too_big)
		return reply_error(q->d, q->conn, MHD_HTTP_CONTENT_TOO_LARGE, "request too big");
	if (webreq_session_token(q->body, q->body_len, token, sizeof(token)) < 0)
		return reply_error(q->d, q->conn, MHD_HTTP_BAD_REQUEST,
				   "expected {\"token\": \"...\"}");
	secret_id(token, id);
	log_info("token exchange from %s for token %s", q->addr, id);
	request = json_pack("{s:s, s:s, s:s}", "type", "redeem", "token", token, "from",
			    q->addr);
	explicit_bzero(token, sizeof(token));
	q->kind = REQ_SESSION;
	return req_start_call(q, NULL, request, "redeemed");
}

/* -- the WebSocket upgrade ------------------------------------------------------------ */

/*
 * The upgrade went out: the WebSocket is wsconn.c's.  req_cls is the
 * request's struct req, which holds the session until here.
 */
static void on_upgrade(void *cls, struct MHD_Connection *c, void *req_cls, const char *extra_in,
		       size_t extra_in_size, MHD_socket sock,
		       struct MHD_UpgradeResponseHandle *urh)
{
	struct webd *d = cls;
	struct req *q = req_cls;
	int r;

	r = wsconn_new(&d->ws, urh, sock, extra_in, extra_in_size, q->session, q->session_id,
		       q->addr);
	if (r < 0)
		log_warning_errno(r, "cannot set up the WebSocket from %s", q->addr);
	explicit_bzero(q->session, sizeof(q->session));
}

static bool token_in_list(const char *list, const char *want)
{
	size_t n = strlen(want);

	for (const char *p = list; p && *p;) {
		p += strspn(p, " \t,");
		if (strncasecmp(p, want, n) == 0 && (p[n] == '\0' || p[n] == ',' || p[n] == ' ' ||
						     p[n] == '\t'))
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

static enum MHD_Result ws_upgrade(struct webd *d, struct MHD_Connection *c, struct req *q)
{
	const char *addr = q->addr;
	const char *key = header(c, "Sec-WebSocket-Key");
	const char *proto = header(c, "Sec-WebSocket-Protocol");
	const char *version = header(c, "Sec-WebSocket-Version");
	char secret[WEBREQ_SECRET_MAX + 1], id[17], accept[64], buf[128];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0, per_session = 0, per_addr = 0;
	struct MHD_Response *r;
	struct wsconn *w;
	enum MHD_Result ret;

	if (!token_in_list(header(c, MHD_HTTP_HEADER_UPGRADE), "websocket") ||
	    !token_in_list(header(c, MHD_HTTP_HEADER_CONNECTION), "upgrade") || !key ||
	    strlen(key) != 24 || !version || strcmp(version, "13") != 0)
		return reply_text(d, c, MHD_HTTP_BAD_REQUEST, "a WebSocket upgrade is expected");
	if (!from_our_page(d, c)) {
		log_info("WebSocket from %s refused: foreign Origin or Host", addr);
		return reply_text(d, c, MHD_HTTP_FORBIDDEN, "forbidden: foreign Origin or Host");
	}
	if (!session_cookie(d, c, secret, sizeof(secret))) {
		log_info("WebSocket from %s refused: no session cookie", addr);
		return reply_text(d, c, MHD_HTTP_FORBIDDEN, "forbidden: no session; open a link");
	}
	if (!token_in_list(proto, "ttyhub.v1"))
		return reply_text(d, c, MHD_HTTP_FORBIDDEN, "forbidden: subprotocol ttyhub.v1 "
				  "required");
	secret_id(secret, id);
	TAILQ_FOREACH(w, &d->ws.conns, entry) {
		per_session += strcmp(w->session_id, id) == 0;
		per_addr += strcmp(w->addr, addr) == 0;
	}
	if (per_session >= d->config.max_ws_per_session || per_addr >= d->config.max_ws_per_addr) {
		log_info("WebSocket of session %s from %s refused: too many", id, addr);
		return reply_text(d, c, MHD_HTTP_SERVICE_UNAVAILABLE,
				  "too many consoles open for this session or address");
	}
	snprintf(buf, sizeof(buf), "%s" WS_GUID, key);
	if (!EVP_Digest(buf, strlen(buf), md, &mdlen, EVP_sha1(), NULL))
		return MHD_NO;
	EVP_EncodeBlock((unsigned char *)accept, md, (int)mdlen);
	memcpy(q->session, secret, sizeof(secret));
	explicit_bzero(secret, sizeof(secret));
	memcpy(q->session_id, id, sizeof(id));
	r = MHD_create_response_for_upgrade(on_upgrade, d);
	if (!r)
		return MHD_NO;
	add_headers(d, r);
	MHD_add_response_header(r, MHD_HTTP_HEADER_UPGRADE, "websocket");
	MHD_add_response_header(r, "Sec-WebSocket-Accept", accept);
	MHD_add_response_header(r, "Sec-WebSocket-Protocol", "ttyhub.v1");
	ret = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, r);
	MHD_destroy_response(r);
	return ret;
}

/* -- dispatch ------------------------------------------------------------------------ */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	struct webd *d = cls;
	struct req *q = *req_cls;
	char secret[WEBREQ_SECRET_MAX + 1];
	size_t hsize = 0;

	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q)
			return MHD_NO;
		q->d = d;
		q->conn = c;
		client_addr(c, q->addr, sizeof(q->addr));
		*req_cls = q;
		(void)MHD_get_connection_values(c, MHD_HEADER_KIND, sum_header, &hsize);
		if (hsize > WEBD_HEADER_MAX)
			return reply_text(d, c, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
					  "request headers too large");
		/* A POST body comes in the next calls. */
		if (strcmp(method, "POST") == 0)
			return MHD_YES;
	}
	if (q->answered)
		return q->kind == REQ_SESSION ? session_answer(q) : consoles_answer(q);
	if (strcmp(method, "POST") == 0) {
		if (strcmp(url, "/api/session") != 0)
			return reply_text(d, c, MHD_HTTP_NOT_FOUND, "not found");
		if (*upload_data_size) {
			if (q->body_len + *upload_data_size > sizeof(q->body))
				q->too_big = true;
			else
				memcpy(q->body + q->body_len, upload_data, *upload_data_size);
			if (!q->too_big)
				q->body_len += *upload_data_size;
			*upload_data_size = 0;
			return MHD_YES;
		}
		if (!from_our_page(d, c)) {
			log_info("token exchange from %s refused: foreign Origin or Host", q->addr);
			return reply_error(d, c, MHD_HTTP_FORBIDDEN, "foreign Origin or Host");
		}
		return api_session(q);
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return reply_text(d, c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
	if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0)
		return serve_static(d, c, "index.html");
	if (strncmp(url, "/static/", 8) == 0)
		return serve_static(d, c, url + 8);
	if (strcmp(url, "/ws") == 0)
		return ws_upgrade(d, c, q);
	if (strcmp(url, "/api/consoles") == 0) {
		if (!webreq_host_allowed(header(c, MHD_HTTP_HEADER_HOST), d->origins, d->n_origins))
			return reply_error(d, c, MHD_HTTP_FORBIDDEN, "foreign Host");
		if (!session_cookie(d, c, secret, sizeof(secret)))
			return reply_error(d, c, MHD_HTTP_FORBIDDEN, "no session; open a link");
		q->kind = REQ_CONSOLES;
		return req_start_call(q, secret, json_pack("{s:s}", "type", "list"), "list");
	}
	return reply_text(d, c, MHD_HTTP_NOT_FOUND, "not found");
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct req *q = *req_cls;

	if (!q)
		return;
	if (q->suspended)
		TAILQ_REMOVE(&q->d->pending, q, entry);
	call_free(q->call);
	json_decref(q->answer);
	explicit_bzero(q->body, sizeof(q->body));
	explicit_bzero(q->session, sizeof(q->session));
	free(q);
	*req_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	log_debug("libmicrohttpd: %s", buf);
}

/* -- the event loop ------------------------------------------------------------------ */

void webd_kick(struct webd *d)
{
	MHD_UNSIGNED_LONG_LONG ms;

	if (!d->mhd)
		return;
	(void)MHD_run(d->mhd);
	if (MHD_get_timeout(d->mhd, &ms) == MHD_YES) {
		(void)sd_event_source_set_time_relative(d->mhd_timer, (uint64_t)ms * 1000);
		(void)sd_event_source_set_enabled(d->mhd_timer, SD_EVENT_ONESHOT);
	} else {
		(void)sd_event_source_set_enabled(d->mhd_timer, SD_EVENT_OFF);
	}
}

static void webd_kick_cb(void *userdata)
{
	webd_kick(userdata);
}

static int on_mhd_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	webd_kick(userdata);
	return 0;
}

static int on_mhd_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	webd_kick(userdata);
	return 0;
}

/* -- TLS: webd accepts, tlsproxy.c handshakes and relays ------------------------------- */

static int webd_hand_over(void *userdata, int fd, const struct sockaddr *peer, socklen_t len)
{
	struct webd *d = userdata;

	/* libmicrohttpd owns (and closes) fd from here, even when it refuses it. */
	if (MHD_add_connection(d->mhd, fd, peer, len) != MHD_YES)
		return -ECONNABORTED;
	webd_kick(d);
	return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct webd *d = userdata;
	struct sockaddr_storage ss;
	socklen_t len;
	int c;

	for (unsigned i = 0; i < 64; i++) {
		len = sizeof(ss);
		c = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warning_errno(negative_errno(), "accept");
			break;
		}
		/* Small frames (keystrokes, echo) go out at once: see wsconn_new(). */
		(void)setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
		if (d->tlsp.n_proxies >= WEBD_TLS_MAX) {
			log_warning("%u TLS connections open: refusing another", d->tlsp.n_proxies);
			safe_close(c);
			continue;
		}
		(void)tlsproxy_new(&d->tlsp, c, (struct sockaddr *)&ss, len);
	}
	return 0;
}

/* -- set-up ---------------------------------------------------------------------------- */

static int parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[128];
	const char *colon = strrchr(spec, ':');
	long port;
	char *end;

	if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof(host))
		return log_error_errno(-EINVAL, "--listen %s: expected ADDR:PORT", spec);
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || port < 1 || port > 65535)
		return log_error_errno(-EINVAL, "--listen %s: bad port", spec);
	*ss = (struct sockaddr_storage){ 0 };
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		struct sockaddr_in6 *sa = (struct sockaddr_in6 *)ss;

		host[strlen(host) - 1] = '\0';
		sa->sin6_family = AF_INET6;
		sa->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &sa->sin6_addr) != 1)
			return log_error_errno(-EINVAL, "--listen %s: bad IPv6 address", spec);
		*len = sizeof(*sa);
	} else {
		struct sockaddr_in *sa = (struct sockaddr_in *)ss;

		sa->sin_family = AF_INET;
		sa->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
			return log_error_errno(-EINVAL, "--listen %s: bad IPv4 address", spec);
		*len = sizeof(*sa);
	}
	return 0;
}

static bool addr_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return false;
}

static int webd_listener(struct webd *d, struct sockaddr_storage *ss)
{
	socklen_t len = sizeof(*ss);
	int n = sd_listen_fds(1), one = 1, r;
	_cleanup_close_ int fd = -EBADF;

	if (n > 1)
		return log_error_errno(-EINVAL, "expected one socket from systemd, got %d", n);
	if (n == 1) {
		if (sd_is_socket(SD_LISTEN_FDS_START, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
			return log_error_errno(-EINVAL, "the socket from systemd is not a listening "
					       "stream socket");
		fd = SD_LISTEN_FDS_START;
		if (getsockname(fd, (struct sockaddr *)ss, &len) < 0 ||
		    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
			return log_error_errno(negative_errno(), "the socket from systemd");
		log_info("listening on the socket passed by systemd");
		return TAKE_FD(fd);
	}
	r = parse_listen(d->config.listen, ss, &len);
	if (r < 0)
		return r;
	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return log_error_errno(negative_errno(), "socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)ss, len) < 0)
		return log_error_errno(negative_errno(), "cannot listen on %s", d->config.listen);
	if (listen(fd, 256) < 0)
		return log_error_errno(negative_errno(), "listen on %s", d->config.listen);
	log_info("listening on %s", d->config.listen);
	return TAKE_FD(fd);
}

static int add_origin(struct webd *d, const char *url)
{
	char norm[WEBREQ_ORIGIN_MAX];
	char **o;

	if (webreq_origin_normalize(url, norm, sizeof(norm)) < 0)
		return log_error_errno(-EINVAL, "--origin %s: expected http(s)://HOST[:PORT]", url);
	for (size_t i = 0; i < d->n_origins; i++)
		if (strcmp(d->origins[i], norm) == 0)
			return 0;
	o = reallocarray(d->origins, d->n_origins + 1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	d->origins = o;
	d->origins[d->n_origins] = strdup(norm);
	if (!d->origins[d->n_origins])
		return -ENOMEM;
	d->n_origins++;
	return 0;
}

static int webd_origins(struct webd *d, const struct sockaddr_storage *ss)
{
	const char *scheme = d->tls ? "https" : "http";
	char host[INET6_ADDRSTRLEN], url[WEBREQ_ORIGIN_MAX];
	unsigned port;
	int r;

	for (size_t i = 0; i < d->config.n_origins; i++) {
		r = add_origin(d, d->config.origins[i]);
		if (r < 0)
			return r;
	}
	if (d->loopback) {
		if (ss->ss_family == AF_INET) {
			inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, host,
				  sizeof(host));
			port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
			snprintf(url, sizeof(url), "%s://%s:%u", scheme, host, port);
		} else {
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, host,
				  sizeof(host));
			port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
			snprintf(url, sizeof(url), "%s://[%s]:%u", scheme, host, port);
		}
		r = add_origin(d, url);
		if (r >= 0) {
			snprintf(url, sizeof(url), "%s://localhost:%u", scheme, port);
			r = add_origin(d, url);
		}
		if (r < 0)
			return r;
	}
	if (d->n_origins == 0)
		return log_error_errno(-EINVAL, "not on a loopback address: give the page's "
				       "origin with --origin https://HOST[:PORT]");
	for (size_t i = 0; i < d->n_origins; i++)
		log_debug("allowed origin: %s", d->origins[i]);
	return 0;
}

int webd_init(struct webd *d, sd_event *e, const struct webd_config *config)
{
	struct sockaddr_storage ss;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_UPGRADE | MHD_ALLOW_SUSPEND_RESUME |
			 MHD_USE_ERROR_LOG;
	const union MHD_DaemonInfo *info;
	int r;

	*d = (struct webd){ .event = sd_event_ref(e), .config = *config, .listen_fd = -EBADF };
	d->ws = (struct wsconn_env){ .event = e, .broker = config->broker,
				     .ping_s = config->ping_s, .kick = webd_kick_cb, .kick_data = d };
	TAILQ_INIT(&d->ws.conns);
	TAILQ_INIT(&d->pending);
	if (!!config->tls_cert != !!config->tls_key)
		return log_error_errno(-EINVAL, "--tls-cert and --tls-key go together");
	d->tls = config->tls_cert;
	if (d->tls) {
		d->tlsp.event = e;
		d->tlsp.handshake_usec = WEBD_HANDSHAKE_S * 1000000ULL;
		d->tlsp.hand_over = webd_hand_over;
		d->tlsp.userdata = d;
		r = tlsproxy_env_init(&d->tlsp, config->tls_cert, config->tls_key);
		if (r < 0)
			return r;
	}
	d->listen_fd = webd_listener(d, &ss);
	if (d->listen_fd < 0)
		return d->listen_fd;
	d->loopback = addr_is_loopback(&ss);
	if (!d->tls && !d->loopback)
		return log_error_errno(-EPERM, "plain HTTP only on a loopback address: give "
				       "--tls-cert and --tls-key");
	if (!d->tls)
		log_warning("plain HTTP without TLS: for tests and demos on loopback only");
	r = webd_origins(d, &ss);
	if (r < 0)
		return r;
	if (d->tls)
		d->mhd = MHD_start_daemon(flags | MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, on_request,
			d, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, d,
			MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)WEBD_CONNECTION_MEMORY,
			MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)WEBD_HANDSHAKE_S,
			MHD_OPTION_NOTIFY_COMPLETED, on_completed, d, MHD_OPTION_END);
	else
		d->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, d,
			MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, d,
			MHD_OPTION_LISTEN_SOCKET, d->listen_fd,
			MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)WEBD_CONNECTION_MEMORY,
			MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)WEBD_HANDSHAKE_S,
			MHD_OPTION_NOTIFY_COMPLETED, on_completed, d, MHD_OPTION_END);
	if (!d->mhd)
		return log_error_errno(-EINVAL, "cannot start libmicrohttpd");
	if (d->tls) {
		r = sd_event_add_io(e, &d->listen_io, d->listen_fd, EPOLLIN, on_accept, d);
		if (r < 0)
			return log_error_errno(r, "cannot watch the listening socket");
	} else {
		d->listen_fd = -EBADF; /* libmicrohttpd's now */
	}
	info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info)
		return log_error_errno(-EINVAL, "libmicrohttpd has no epoll fd");
	r = sd_event_add_io(e, &d->mhd_io, info->epoll_fd, EPOLLIN, on_mhd_io, d);
	if (r >= 0)
		r = sd_event_add_time_relative(e, &d->mhd_timer, CLOCK_MONOTONIC, 0, 0,
					       on_mhd_timer, d);
	if (r < 0)
		return log_error_errno(r, "cannot add libmicrohttpd to the event loop");
	webd_kick(d);
	return 0;
}

void webd_done(struct webd *d)
{
	struct req *q;

	while (!TAILQ_EMPTY(&d->ws.conns))
		wsconn_shutdown(TAILQ_FIRST(&d->ws.conns));
	/* Suspended requests must be resumed before libmicrohttpd stops. */
	while ((q = TAILQ_FIRST(&d->pending))) {
		TAILQ_REMOVE(&d->pending, q, entry);
		q->suspended = false;
		q->call = call_free(q->call);
		q->answered = true;
		MHD_resume_connection(q->conn);
	}
	sd_event_source_disable_unref(d->listen_io);
	if (d->tls)
		tlsproxy_env_done(&d->tlsp);
	if (d->mhd) {
		(void)MHD_run(d->mhd);
		MHD_stop_daemon(d->mhd);
		d->mhd = NULL;
	}
	sd_event_source_disable_unref(d->mhd_io);
	sd_event_source_disable_unref(d->mhd_timer);
	safe_close(d->listen_fd);
	for (size_t i = 0; i < d->n_origins; i++)
		free(d->origins[i]);
	free(d->origins);
	sd_event_unref(d->event);
}
