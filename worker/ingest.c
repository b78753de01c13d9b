/*
 * ingest: turns the bytes a pipeline writes into log lines and sistema
 * status, commits them, then announces them (DESIGN.md "Group commit, not
 * timers"). Bytes become lines in lines.c; lines go through lparse
 * (length, UTF-8 and control bytes made safe there) and wait in one bounded
 * queue shared by all slots. The loop calls ingest_flush() once per turn:
 * every waiting line goes to the database in one transaction, then out as
 * `log` events. A quiet pipeline therefore commits line by line; a flooding
 * one accumulates big batches while the previous commit runs. When the
 * queue is full (a slow or locked database) the loop stops reading the
 * pipes, so the pipelines block on write instead of us buffering without
 * limit. Runs in the loop of etl-worker only.
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "evt.h"
#include "jobq.h"
#include "log.h"
#include "lparse.h"
#include "pub.h"
#include "sist.h"
#include "worker.h"

/* Bounds of the queue of uncommitted lines (all slots together). One read
 * may overshoot them by one chunk: reads stop once they are reached. */
#define INGEST_MAX_LINES 20000
#define INGEST_MAX_BYTES (8u << 20)
/* Sizes above which an idle queue frees its memory (ingest_trim). */
#define INGEST_TRIM_BYTES (256u << 10)
#define INGEST_TRIM_LINES 4096
/* Bytes of a line's message kept as the sistema's mensagem. */
#define INGEST_SIST_MSG_MAX 512

struct pline {
	int64_t job_id;
	int64_t seq;
	int64_t ts_ms;
	int slot_id; /* DB slot id, for the event */
	size_t mensagem; /* offset of a NUL-terminated string in arena */
	char level[LPARSE_LEVEL_MAX + 1];
	char sistema[LPARSE_SISTEMA_MAX + 1];
};

struct ingest {
	size_t max_line;
	struct pline *v;
	size_t n, cap;
	struct buf arena;
	struct logline *ll; /* scratch for jobq_append_logs */
	size_t llcap;
	struct lparse_line pl;
	int64_t failed_flushes; /* consecutive busy flushes, for the log */
};

struct ingest *
ingest_new(size_t max_line)
{
	struct ingest *g = xcalloc(1, sizeof(*g));

	g->max_line = max_line;
	return g;
}

void
ingest_free(struct ingest *g)
{
	if (g == NULL)
		return;
	free(g->v);
	free(g->ll);
	buf_free(&g->arena);
	lparse_free(&g->pl);
	free(g);
}

void
ingest_trim(struct ingest *g)
{
	if (g->n > 0)
		return;
	/* After a flood the queue holds its peak size: give it back. */
	if (g->arena.cap > INGEST_TRIM_BYTES) {
		buf_free(&g->arena);
		memset(&g->arena, 0, sizeof(g->arena));
	}
	if (g->cap > INGEST_TRIM_LINES) {
		free(g->v);
		free(g->ll);
		g->v = NULL;
		g->ll = NULL;
		g->cap = g->llcap = 0;
	}
	(void)malloc_trim(0);
}

int
ingest_full(const struct ingest *g)
{
	return g->n >= INGEST_MAX_LINES || g->arena.len >= INGEST_MAX_BYTES;
}

size_t
ingest_pending(const struct ingest *g)
{
	return g->n;
}

void
ingest_job_start(struct slot *s)
{
	s->nsist = s->job.nsistemas;
	s->sist = xcalloc(s->nsist ? s->nsist : 1, sizeof(*s->sist));
	for (size_t i = 0; i < s->nsist; i++) {
		s->sist[i].id = s->job.sistemas[i];
		s->sist[i].status = "RUNNING";
	}
	s->sist_dirty = 0;
}

void
ingest_job_end(struct slot *s)
{
	for (size_t i = 0; i < s->nsist; i++)
		free(s->sist[i].mensagem);
	free(s->sist);
	s->sist = NULL;
	s->nsist = 0;
	s->sist_dirty = 0;
}

static size_t
arena_put(struct buf *a, const char *s, size_t n)
{
	size_t off = a->len;

	buf_append(a, s, n);
	buf_putc(a, '\0');
	return off;
}

/* A copy of at most INGEST_SIST_MSG_MAX bytes of m, cut on a character
 * boundary (m is valid UTF-8). */
static char *
short_copy(const char *m, size_t n)
{
	if (n > INGEST_SIST_MSG_MAX) {
		n = INGEST_SIST_MSG_MAX;
		while (n > 0 && ((unsigned char)m[n] & 0xC0) == 0x80)
			n--;
	}
	return xstrndup(m, n);
}

/* API.md "The pipeline": a line of one of the job's sistemas moves its
 * status; lines of other sistemas (stdout, stderr, ...) change nothing. */
static void
apply_status(struct slot *s, const struct lparse_line *pl)
{
	struct sist_state *ss = NULL;
	int changed = 0;

	for (size_t i = 0; i < s->nsist; i++) {
		if (strcmp(s->sist[i].id, pl->sistema) == 0) {
			ss = &s->sist[i];
			break;
		}
	}
	if (ss == NULL)
		return;
	if (strcmp(pl->level, "SUCCESS") == 0) {
		ss->status = "SUCCESS";
		ss->progresso = 100;
		ss->own_final = 1;
		changed = 1;
	} else if (strcmp(pl->level, "ERROR") == 0) {
		ss->status = "ERROR";
		ss->own_final = 1;
		changed = 1;
	}
	if (pl->progresso > ss->progresso) {
		ss->progresso = pl->progresso;
		changed = 1;
	}
	if (!changed)
		return;
	free(ss->mensagem);
	ss->mensagem = short_copy(pl->mensagem.data, pl->mensagem.len);
	ss->dirty = 1;
	s->sist_dirty = 1;
}

/* A complete line (len bytes, at most max_line + 1): parse it and queue it. */
static void
queue_line(struct worker *w, struct slot *s, struct stream *st, const char *line, size_t len,
    int64_t ts_ms)
{
	struct ingest *g = w->ing;
	struct lparse_line *pl = &g->pl;
	struct pline *e;

	lparse(line, len, st->is_stderr, g->max_line, pl);
	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 256;
		g->v = xrealloc(g->v, g->cap * sizeof(*g->v));
	}
	e = &g->v[g->n++];
	e->job_id = s->job.id;
	e->seq = s->next_seq++;
	e->ts_ms = ts_ms;
	e->slot_id = s->job.worker_slot;
	memcpy(e->level, pl->level, sizeof(e->level));
	memcpy(e->sistema, pl->sistema, sizeof(e->sistema));
	e->mensagem = arena_put(&g->arena, pl->mensagem.data, pl->mensagem.len);
	s->lines++;
	apply_status(s, pl);
}

/* What lines_feed needs to queue a line. */
struct feed {
	struct worker *w;
	struct slot *s;
	struct stream *st;
	int64_t ts_ms;
};

static void
on_line(void *arg, const char *line, size_t len)
{
	struct feed *f = arg;

	queue_line(f->w, f->s, f->st, line, len, f->ts_ms);
}

void
ingest_bytes(
    struct worker *w, struct slot *s, struct stream *st, const char *p, size_t n, int64_t ts_ms)
{
	struct feed f = { w, s, st, ts_ms };

	lines_feed(st, w->ing->max_line, p, n, on_line, &f);
}

void
ingest_eof(struct worker *w, struct slot *s, struct stream *st)
{
	struct feed f = { w, s, st, util_now_ms() };

	lines_end(st, on_line, &f);
}

/* A batch that cannot be stored (not busy: broken) is dropped; the seq of
 * each job then continues after what the database holds, so it stays
 * contiguous. */
static void
resync_seq(struct worker *w)
{
	for (int i = 0; i < w->nslots; i++) {
		struct slot *s = &w->slots[i];
		int64_t last = 0;

		if (s->state == SLOT_IDLE)
			continue;
		if (jobq_last_seq(w->db, s->job.id, &last) == DB_OK)
			s->next_seq = last + 1;
	}
}

static int
flush_lines(struct worker *w)
{
	struct ingest *g = w->ing;
	const char *a;
	enum db_rc rc;

	if (g->n == 0)
		return 0;
	if (g->llcap < g->n) {
		g->llcap = g->cap;
		g->ll = xrealloc(g->ll, g->llcap * sizeof(*g->ll));
	}
	a = g->arena.data;
	for (size_t i = 0; i < g->n; i++) {
		g->ll[i] = (struct logline){
			.job_id = g->v[i].job_id,
			.seq = g->v[i].seq,
			.ts_ms = g->v[i].ts_ms,
			.level = g->v[i].level,
			.sistema = g->v[i].sistema,
			.mensagem = a + g->v[i].mensagem,
		};
	}
	rc = jobq_append_logs(w->db, g->ll, g->n);
	if (rc == DB_BUSY || rc == DB_FULL) {
		if (g->failed_flushes++ % 50 == 0)
			log_warnx(
			    "log lines: database %s, %zu lines waiting (pipes paused when full)",
			    rc == DB_BUSY ? "busy" : "full", g->n);
		return -1;
	}
	g->failed_flushes = 0;
	if (rc != DB_OK) {
		log_warnx(
		    "log lines: cannot store %zu lines (%s): dropped", g->n, db_errmsg(w->db));
		g->n = 0;
		buf_reset(&g->arena);
		resync_seq(w);
		return 0;
	}
	if (pub_state(w->pub) != PUB_DISABLED) {
		for (size_t i = 0; i < g->n; i++)
			worker_publish(w,
			    evt_log(g->ll[i].job_id, g->v[i].slot_id, g->ll[i].seq, g->ll[i].ts_ms,
			        g->ll[i].level, g->ll[i].sistema, g->ll[i].mensagem));
	}
	g->n = 0;
	buf_reset(&g->arena);
	return 0;
}

static int
flush_status(struct worker *w)
{
	enum db_rc rc;
	int any = 0;

	for (int i = 0; i < w->nslots; i++)
		any |= w->slots[i].state != SLOT_IDLE && w->slots[i].sist_dirty;
	if (!any)
		return 0;
	if ((rc = db_begin(w->db)) != DB_OK)
		return rc == DB_BUSY ? -1 : 0;
	for (int i = 0; i < w->nslots; i++) {
		struct slot *s = &w->slots[i];

		if (s->state == SLOT_IDLE || !s->sist_dirty)
			continue;
		for (size_t k = 0; k < s->nsist; k++) {
			struct sist_state *ss = &s->sist[k];

			if (!ss->dirty)
				continue;
			rc =
			    sist_set_status(w->db, ss->id, ss->status, ss->progresso, ss->mensagem);
			if (rc != DB_OK)
				goto err;
		}
	}
	if ((rc = db_commit(w->db)) != DB_OK)
		goto err;
	for (int i = 0; i < w->nslots; i++) {
		struct slot *s = &w->slots[i];

		if (s->state == SLOT_IDLE || !s->sist_dirty)
			continue;
		for (size_t k = 0; k < s->nsist; k++) {
			struct sist_state *ss = &s->sist[k];

			if (!ss->dirty)
				continue;
			worker_publish(
			    w, evt_status(ss->id, ss->status, ss->progresso, ss->mensagem));
			ss->dirty = 0;
		}
		s->sist_dirty = 0;
	}
	return 0;
err:
	db_rollback(w->db);
	if (rc == DB_BUSY || rc == DB_FULL)
		return -1;
	/* Not retryable: the final status at the job's end still lands. */
	log_warnx("sistema status: cannot store (%s)", db_errmsg(w->db));
	for (int i = 0; i < w->nslots; i++) {
		for (size_t k = 0; k < w->slots[i].nsist; k++)
			w->slots[i].sist[k].dirty = 0;
		w->slots[i].sist_dirty = 0;
	}
	return 0;
}

int
ingest_flush(struct worker *w)
{
	if (flush_lines(w) < 0)
		return -1;
	return flush_status(w);
}
