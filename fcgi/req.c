/*
 * req: reading one request, the boundary where untrusted bytes come in.
 * The path is taken from REQUEST_URI (raw, without its query), made
 * relative to the configured base (ETL_API_BASE), split on '/' and each
 * segment percent-decoded; the query string is split and decoded the same
 * way. Both are bounded (segments, parameters, lengths), and anything that
 * does not decode cleanly (bad escapes, NUL bytes, empty segments) is
 * marked unusable rather than guessed at. The body is read against the
 * body limit whatever CONTENT_LENGTH claims. The same code serves the three
 * modes: FastCGI streams, or stdin/stdout for plain CGI.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "api.h"
#include "log.h"

#define REQ_MAX_URI 8192 /* bytes of REQUEST_URI we look at */
#define REQ_DRAIN_MAX (16u << 20) /* bytes of an oversized body we discard before giving up */

const char *
req_env(const struct req *r, const char *name)
{
	if (r->cgi)
		return getenv(name);
	return FCGX_GetParam(name, r->envp);
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Percent-decodes s[0..n) into a new string ('+' is a space when plus is
 * set). Returns NULL for a malformed escape or a decoded NUL byte.
 */
static char *
pct_decode(const char *s, size_t n, int plus)
{
	char *out = xmalloc(n + 1);
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= n)
				goto bad;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				goto bad;
			c = hi * 16 + lo;
			i += 2;
		} else if (c == '+' && plus) {
			c = ' ';
		}
		if (c == 0)
			goto bad;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

/* Splits the path below the base into decoded segments. */
static void
parse_path(struct req *r, const char *uri, const char *base)
{
	size_t blen = strlen(base), ulen;
	const char *p, *end;

	r->path_ok = 0;
	if (uri == NULL)
		return;
	ulen = strcspn(uri, "?#");
	if (ulen > REQ_MAX_URI)
		return;
	while (blen > 0 && base[blen - 1] == '/')
		blen--;
	if (ulen < blen || strncmp(uri, base, blen) != 0)
		return;
	p = uri + blen;
	end = uri + ulen;
	if (p == end)
		return; /* the base itself: no route */
	if (*p != '/')
		return; /* "/apix" is not below "/api" */
	p++;
	while (p < end) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		const char *segend = slash ? slash : end;
		char *seg;

		if (segend == p || r->nsegs == REQ_MAX_SEGS)
			return; /* empty segment ("//", trailing '/') or too deep */
		seg = pct_decode(p, (size_t)(segend - p), 0);
		if (seg == NULL)
			return;
		r->segs[r->nsegs++] = seg;
		p = slash ? slash + 1 : end;
		if (slash && p == end)
			return; /* trailing slash */
	}
	r->path_ok = r->nsegs > 0;
}

static void
parse_query(struct req *r, const char *qs)
{
	const char *p, *end;

	r->query_ok = 1;
	if (qs == NULL || *qs == '\0')
		return;
	end = qs + strlen(qs);
	if (end - qs > REQ_MAX_URI) {
		r->query_ok = 0;
		return;
	}
	for (p = qs; p < end;) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *pe = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(pe - p));
		char *k, *v;

		if (pe == p) {
			p = pe + 1;
			continue;
		}
		if (r->nquery == REQ_MAX_QUERY) {
			r->query_ok = 0;
			return;
		}
		k = pct_decode(p, (size_t)((eq ? eq : pe) - p), 1);
		v = eq ? pct_decode(eq + 1, (size_t)(pe - eq - 1), 1) : xstrdup("");
		if (k == NULL || v == NULL) {
			free(k);
			free(v);
			r->query_ok = 0;
			return;
		}
		r->query[r->nquery].key = k;
		r->query[r->nquery].val = v;
		r->nquery++;
		p = amp ? amp + 1 : end;
	}
}

void
req_init(struct req *r, struct api *api, int cgi, FCGX_Stream *in, FCGX_Stream *out,
    FCGX_ParamArray envp)
{
	const char *uri;

	memset(r, 0, sizeof(*r));
	r->api = api;
	r->cgi = cgi;
	r->in = in;
	r->out = out;
	r->envp = envp;
	r->t0 = util_mono_ms();
	r->method = req_env(r, "REQUEST_METHOD");
	if (r->method == NULL)
		r->method = "GET";
	uri = req_env(r, "REQUEST_URI");
	if (uri == NULL) /* some plain CGI callers: rebuild it */
		uri = req_env(r, "SCRIPT_NAME");
	parse_path(r, uri, api->conf.api_base ? api->conf.api_base : "/api");
	parse_query(r, req_env(r, "QUERY_STRING"));
}

void
req_free(struct req *r)
{
	for (size_t i = 0; i < r->nsegs; i++)
		free(r->segs[i]);
	for (size_t i = 0; i < r->nquery; i++) {
		free(r->query[i].key);
		free(r->query[i].val);
	}
	if (r->json)
		json_object_put(r->json);
	users_clear(&r->user);
	free(r->body);
	buf_free(&r->xhdr);
	for (size_t i = 0; i < r->nevents; i++) /* none unless a path skipped sending */
		free(r->events[i]);
	free(r->events);
	memset(r, 0, sizeof(*r));
}

const char *
req_query(const struct req *r, const char *key)
{
	const char *v = NULL;

	for (size_t i = 0; i < r->nquery; i++)
		if (strcmp(r->query[i].key, key) == 0)
			v = r->query[i].val;
	return v;
}

int64_t
req_content_length(const struct req *r)
{
	const char *cl = req_env(r, "CONTENT_LENGTH");
	int64_t n;

	if (cl == NULL || *cl == '\0')
		return 0;
	if (util_parse_i64(cl, 0, INT64_MAX, &n) != 0)
		return -1;
	return n;
}

int
req_is_json(const struct req *r)
{
	const char *ct = req_env(r, "CONTENT_TYPE");
	static const char want[] = "application/json";
	size_t n = sizeof(want) - 1;

	if (ct == NULL)
		return 0;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, want, n) != 0)
		return 0;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* Reads at most n bytes. Returns the count (0 at end of input), -1 on error. */
static long
raw_read(struct req *r, char *p, size_t n)
{
	if (n > (1u << 30))
		n = 1u << 30;
	if (r->cgi) {
		size_t got = fread(p, 1, n, stdin);
		if (got == 0 && ferror(stdin))
			return -1;
		return (long)got;
	}
	return FCGX_GetStr(p, (int)n, r->in);
}

/* In CGI mode stdin is not closed after the body: never read past CONTENT_LENGTH. */
static size_t
cgi_left(const struct req *r, size_t consumed)
{
	int64_t cl = req_content_length(r);

	if (cl <= 0 || (uint64_t)cl <= consumed)
		return 0;
	return (size_t)cl - consumed;
}

static size_t
discard(struct req *r, size_t consumed)
{
	char tmp[16384];

	while (consumed < REQ_DRAIN_MAX) {
		size_t want = sizeof(tmp);
		long got;
		if (r->cgi) {
			size_t left = cgi_left(r, consumed);
			if (left == 0)
				break;
			if (left < want)
				want = left;
		}
		got = raw_read(r, tmp, want);
		if (got <= 0)
			break;
		consumed += (size_t)got;
	}
	return consumed;
}

void
req_drain(struct req *r)
{
	(void)discard(r, r->body_len);
}

int
req_read_body(struct req *r, size_t max)
{
	int64_t cl = req_content_length(r);
	size_t cap, len = 0;
	char *p;

	if (cl < 0 || (uint64_t)cl > max) {
		(void)discard(r, 0);
		return 413;
	}
	/* one byte more than allowed tells an over-long body without a true CONTENT_LENGTH */
	cap = r->cgi ? (size_t)cl : max + 1;
	p = xmalloc(cap + 1);
	while (len < cap) {
		long got = raw_read(r, p + len, cap - len);
		if (got <= 0)
			break;
		len += (size_t)got;
	}
	if (len > max) {
		free(p);
		(void)discard(r, len);
		return 413;
	}
	p[len] = '\0';
	r->body = p;
	r->body_len = len;
	return 0;
}

void
req_flush(struct req *r)
{
	if (r->cgi)
		(void)fflush(stdout);
	else
		(void)FCGX_FFlush(r->out);
}

int
req_write(struct req *r, const char *p, size_t n)
{
	if (n == 0)
		return 0;
	if (r->cgi) {
		if (fwrite(p, 1, n, stdout) != n)
			return -1;
		return 0;
	}
	while (n > 0) {
		int chunk = n > (1u << 30) ? (1 << 30) : (int)n;
		int w = FCGX_PutStr(p, chunk, r->out);
		if (w != chunk)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}
