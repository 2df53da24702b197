/* Structured logging: one JSON object per line on stderr.
 *
 *   {"ts":"2026-11-21T01:02:03.456Z","level":"info","msg":"consumer started",
 *    "binary":"imperium-send","tenant_id":"…","operation_id":"…","trace_id":"…", …fields}
 *
 * The level is tested before anything is formatted:
 *
 *   IMP_LOG_INFO("consumer started", IMP_LS("topic", topic), IMP_LI("partitions", n));
 *
 * tenant_id, operation_id and trace_id come from a per-thread context that the worker
 * runtime sets around each event. Never pass a secret as a field. */
#ifndef IMP_LOG_H
#define IMP_LOG_H

#include <stdio.h>

#include "imp/error.h"

typedef enum {
    IMP_LOG_LEVEL_DEBUG = 0,
    IMP_LOG_LEVEL_INFO,
    IMP_LOG_LEVEL_WARN,
    IMP_LOG_LEVEL_ERROR,
} imp_log_level_t;

typedef struct {
    const char *key;
    char type; /* 's' string, 'i' integer, 'f' double, 'b' bool, 'e' error */
    const char *s;
    long long i;
    double f;
    const imp_error_t *e;
} imp_log_field_t;

#define IMP_LS(k, v) ((imp_log_field_t){.key = (k), .type = 's', .s = (v)})
#define IMP_LI(k, v) ((imp_log_field_t){.key = (k), .type = 'i', .i = (long long)(v)})
#define IMP_LF(k, v) ((imp_log_field_t){.key = (k), .type = 'f', .f = (double)(v)})
#define IMP_LB(k, v) ((imp_log_field_t){.key = (k), .type = 'b', .i = (v) ? 1 : 0})
/* An error as fields error, error_code, error_class (and error_detail when set). */
#define IMP_LE(err) ((imp_log_field_t){.key = "error", .type = 'e', .e = (err)})

extern imp_log_level_t imp_log_level;

/* Set the binary name and minimum level (call once at start-up). */
void imp_log_init(const char *binary, imp_log_level_t level);
/* Redirect output (tests); NULL restores stderr. */
void imp_log_set_stream(FILE *stream);
/* "debug" | "info" | "warn" | "error"; 0 on success, -1 when unknown. */
int imp_log_level_parse(const char *name, imp_log_level_t *out);
const char *imp_log_level_name(imp_log_level_t level);

/* Per-thread context; NULL clears a field. Strings are copied. */
void imp_log_set_context(const char *tenant_id, const char *operation_id, const char *trace_id);
void imp_log_clear_context(void);

/* Format and write one line. Use the macros, which test the level first. */
void imp_log_emit(imp_log_level_t level, const char *msg, const imp_log_field_t *fields,
                  int nfields);

#define IMP_LOG_AT(level, msg, ...)                                                                \
    do {                                                                                           \
        if ((level) >= imp_log_level) {                                                            \
            const imp_log_field_t imp_log_f_[] = {{0}, __VA_ARGS__};                               \
            imp_log_emit((level), (msg), imp_log_f_ + 1,                                           \
                         (int)(sizeof(imp_log_f_) / sizeof(imp_log_f_[0])) - 1);                   \
        }                                                                                          \
    } while (0)

#define IMP_LOG_DEBUG(msg, ...) IMP_LOG_AT(IMP_LOG_LEVEL_DEBUG, msg, __VA_ARGS__)
#define IMP_LOG_INFO(msg, ...) IMP_LOG_AT(IMP_LOG_LEVEL_INFO, msg, __VA_ARGS__)
#define IMP_LOG_WARN(msg, ...) IMP_LOG_AT(IMP_LOG_LEVEL_WARN, msg, __VA_ARGS__)
#define IMP_LOG_ERROR(msg, ...) IMP_LOG_AT(IMP_LOG_LEVEL_ERROR, msg, __VA_ARGS__)

#endif
