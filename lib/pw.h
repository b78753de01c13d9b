/*
 * pw: password hashing with crypt(3) from libxcrypt: new hashes are
 * yescrypt ("$y$"); legacy bcrypt ("$2b$", "$2a$", "$2y$") from the Python
 * dashboard still verify.
 */
#ifndef ETL_PW_H
#define ETL_PW_H

#define PW_MIN_LEN 8
#define PW_MAX_LEN 1024

/* Returns a malloc'd yescrypt hash of password, or NULL on failure (logged). */
char *pw_hash(const char *password);
/* Zeroes and frees a hash pw_hash made (NULL is fine). */
void pw_hash_free(char *hash);
/* 1 if password matches hash, 0 otherwise (also for unsupported or malformed
 * hashes). Constant-time comparison of the computed hash. */
int pw_verify(const char *password, const char *hash);
/* Burns the time of one verification (for unknown users, so the answer time
 * does not tell whether a user exists). */
void pw_dummy_verify(const char *password);

#endif
