/* One error type for the whole fleet: a code, a message and a class.
 *
 * The class alone decides what a worker does with a failed event:
 *   infra     - a dependency (Postgres, Kafka, Redis) is unreachable: retry in place
 *   retriable - a transient failure of this event (provider 5xx, timeout): retry topic
 *   poison    - the event can never succeed (invalid input, a bug): dead letter at once
 *   fatal     - the process cannot go on (bad configuration): exit
 *
 * Functions that can fail return imp_error_t * (NULL on success); the caller owns it. */
#ifndef IMP_ERROR_H
#define IMP_ERROR_H

typedef enum {
    IMP_ERR_INFRA = 1,
    IMP_ERR_RETRIABLE,
    IMP_ERR_POISON,
    IMP_ERR_FATAL,
} imp_err_class_t;

typedef struct imp_error imp_error_t;

/* New error. code is a short stable identifier ("pg_connect", "bad_signature"). */
imp_error_t *imp_error_new(imp_err_class_t cls, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void imp_error_free(imp_error_t *err);
/* A new error equal to err (class, code, message, detail, retry-after). */
imp_error_t *imp_error_copy(const imp_error_t *err);

imp_err_class_t imp_error_class(const imp_error_t *err);
const char *imp_error_code(const imp_error_t *err);
const char *imp_error_message(const imp_error_t *err);
/* Optional detail (e.g. a provider's answer); NULL when none. */
const char *imp_error_detail(const imp_error_t *err);
void imp_error_set_detail(imp_error_t *err, const char *detail);

/* The earliest a retriable failure may be retried, in ms from now (a provider's Retry-After);
 * 0 when the failure says nothing. The worker runtime waits at least this long before the
 * retry, and longer when its own backoff is longer. */
void imp_error_set_retry_after_ms(imp_error_t *err, long long ms);
long long imp_error_retry_after_ms(const imp_error_t *err);

/* Prefix the message with context ("loading tenant: <old message>"); returns err. */
imp_error_t *imp_error_prefix(imp_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* "infra", "retriable", "poison", "fatal". */
const char *imp_err_class_name(imp_err_class_t cls);
/* Parse a class name; returns 0 on success, -1 when unknown. */
int imp_err_class_parse(const char *name, imp_err_class_t *out);

#endif
