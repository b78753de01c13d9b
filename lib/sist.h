/*
 * sist: the sistemas (ETL source systems) table: reads for the API, the
 * admin's create/update, and the status changes the worker makes.
 */
#ifndef ETL_SIST_H
#define ETL_SIST_H

#include <stdint.h>

#include "db.h"

struct json_object;

/* {"id","nome","descricao","ativo","status","progresso","mensagem","ultima_execucao"}
 * of every sistema ordered by id (a new array). */
enum db_rc sist_list_json(struct db *db, struct json_object **out);
/* One sistema's JSON, or DB_NOTFOUND. */
enum db_rc sist_get_json(struct db *db, const char *id, struct json_object **out);
/* Creates or updates (nome, descricao, ativo); *created = 1 if it was new.
 * descricao may be NULL. */
enum db_rc sist_put(struct db *db, const char *id, const char *nome, const char *descricao,
    int ativo, int *created);
/* Sets status/progresso/mensagem (mensagem NULL for SQL NULL), in its own
 * transaction or the caller's (when one is open). */
enum db_rc sist_set_status(
    struct db *db, const char *id, const char *status, int progresso, const char *mensagem);
/* 1 if status is one of IDLE PENDING RUNNING SUCCESS ERROR. */
int sist_status_valid(const char *status);

#endif
