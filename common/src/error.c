/* The error type: code, message, class and an optional detail. */
#include "imp/error.h"

#include "imp/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct imp_error {
    imp_err_class_t cls;
    char *code;
    char *message;
    char *detail;
    long long retry_after_ms;
};

static const char *const class_names[] = {
    [IMP_ERR_INFRA] = "infra",
    [IMP_ERR_RETRIABLE] = "retriable",
    [IMP_ERR_POISON] = "poison",
    [IMP_ERR_FATAL] = "fatal",
};

imp_error_t *imp_error_new(imp_err_class_t cls, const char *code, const char *fmt, ...)
{
    imp_error_t *err = imp_calloc(1, sizeof(*err));
    err->cls = cls;
    err->code = imp_strdup(code ? code : "error");
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&err->message, fmt, ap) < 0)
        err->message = imp_strdup(fmt);
    va_end(ap);
    return err;
}

imp_error_t *imp_error_copy(const imp_error_t *err)
{
    imp_error_t *c = imp_calloc(1, sizeof(*c));
    c->cls = err->cls;
    c->code = imp_strdup(err->code);
    c->message = imp_strdup(err->message);
    c->detail = err->detail ? imp_strdup(err->detail) : NULL;
    c->retry_after_ms = err->retry_after_ms;
    return c;
}

void imp_error_free(imp_error_t *err)
{
    if (err == NULL)
        return;
    free(err->code);
    free(err->message);
    free(err->detail);
    free(err);
}

imp_err_class_t imp_error_class(const imp_error_t *err)
{
    return err->cls;
}

const char *imp_error_code(const imp_error_t *err)
{
    return err->code;
}

const char *imp_error_message(const imp_error_t *err)
{
    return err->message;
}

const char *imp_error_detail(const imp_error_t *err)
{
    return err->detail;
}

void imp_error_set_detail(imp_error_t *err, const char *detail)
{
    free(err->detail);
    err->detail = detail ? imp_strdup(detail) : NULL;
}

void imp_error_set_retry_after_ms(imp_error_t *err, long long ms)
{
    err->retry_after_ms = ms > 0 ? ms : 0;
}

long long imp_error_retry_after_ms(const imp_error_t *err)
{
    return err->retry_after_ms;
}

imp_error_t *imp_error_prefix(imp_error_t *err, const char *fmt, ...)
{
    char *prefix = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&prefix, fmt, ap) < 0)
        prefix = NULL;
    va_end(ap);
    if (prefix != NULL) {
        char *joined = imp_asprintf("%s: %s", prefix, err->message);
        free(prefix);
        free(err->message);
        err->message = joined;
    }
    return err;
}

const char *imp_err_class_name(imp_err_class_t cls)
{
    if (cls < IMP_ERR_INFRA || cls > IMP_ERR_FATAL)
        return "unknown";
    return class_names[cls];
}

int imp_err_class_parse(const char *name, imp_err_class_t *out)
{
    for (int c = IMP_ERR_INFRA; c <= IMP_ERR_FATAL; c++) {
        if (strcmp(name, class_names[c]) == 0) {
            *out = (imp_err_class_t)c;
            return 0;
        }
    }
    return -1;
}
