/*
 * evt: builds the live events of API.md as the JSON text published to
 * Redis: {"type": T, "payload": {...}, "source_instance": "<host>-<8 hex>"}.
 * Each function returns a malloc'd string (caller frees).
 */
#ifndef ETL_EVT_H
#define ETL_EVT_H

#include <stdint.h>

char *evt_log(int64_t job_id, int slot_id, int64_t seq, int64_t ts_ms, const char *level,
    const char *sistema, const char *mensagem);
/* mensagem may be NULL. */
char *evt_status(const char *sistema_id, const char *status, int progresso, const char *mensagem);
char *evt_job_complete(int64_t job_id, const char *status, double duracao_segundos);
/* worker_slot < 0 for null. */
char *evt_job_status(int64_t job_id, const char *status, int worker_slot);

#endif
