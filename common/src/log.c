/* JSON-lines logger with a per-thread context. */
#include "imp/log.h"

#include "imp/mem.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

imp_log_level_t imp_log_level = IMP_LOG_LEVEL_INFO;

static const char *log_binary = "imperium";
static FILE *log_stream;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static _Thread_local char ctx_tenant[64];
static _Thread_local char ctx_operation[64];
static _Thread_local char ctx_trace[64];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void imp_log_init(const char *binary, imp_log_level_t level)
{
    log_binary = binary;
    imp_log_level = level;
}

void imp_log_set_stream(FILE *stream)
{
    log_stream = stream;
}

int imp_log_level_parse(const char *name, imp_log_level_t *out)
{
    for (size_t i = 0; i < IMP_ARRAY_LEN(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (imp_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

const char *imp_log_level_name(imp_log_level_t level)
{
    if ((size_t)level >= IMP_ARRAY_LEN(level_names))
        return "unknown";
    return level_names[level];
}

static void set_ctx(char *dst, size_t cap, const char *src)
{
    if (src == NULL) {
        dst[0] = '\0';
        return;
    }
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void imp_log_set_context(const char *tenant_id, const char *operation_id, const char *trace_id)
{
    set_ctx(ctx_tenant, sizeof(ctx_tenant), tenant_id);
    set_ctx(ctx_operation, sizeof(ctx_operation), operation_id);
    set_ctx(ctx_trace, sizeof(ctx_trace), trace_id);
}

void imp_log_clear_context(void)
{
    ctx_tenant[0] = ctx_operation[0] = ctx_trace[0] = '\0';
}

/* A growable line buffer; lines are short, so a stack buffer covers nearly all of them. */
typedef struct {
    char *p;
    size_t len, cap;
    char stack[1024];
} line_t;

static void put(line_t *l, const char *s, size_t n)
{
    if (l->len + n + 2 > l->cap) {
        size_t cap = (l->len + n + 2) * 2;
        if (l->p == l->stack) {
            l->p = imp_malloc(cap);
            memcpy(l->p, l->stack, l->len);
        } else {
            l->p = imp_realloc(l->p, cap);
        }
        l->cap = cap;
    }
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

static void puts_raw(line_t *l, const char *s)
{
    put(l, s, strlen(s));
}

/* Length of the well-formed UTF-8 sequence starting at s (1 to 4), or 0 when s does not start
 * one (a stray continuation byte, an overlong form, a surrogate, a truncated sequence). */
static size_t utf8_len(const unsigned char *s)
{
    static const unsigned min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    size_t n;
    unsigned cp;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* A JSON string. Bytes that are not valid UTF-8 (customer text cut mid-character, binary
 * junk) become U+FFFD, so the line always parses as JSON. */
static void put_json_string(line_t *l, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    put(l, "\"", 1);
    if (s == NULL)
        s = "";
    const unsigned char *c = (const unsigned char *)s;
    while (*c) {
        size_t n = 1;
        switch (*c) {
        case '"':
            put(l, "\\\"", 2);
            break;
        case '\\':
            put(l, "\\\\", 2);
            break;
        case '\n':
            put(l, "\\n", 2);
            break;
        case '\r':
            put(l, "\\r", 2);
            break;
        case '\t':
            put(l, "\\t", 2);
            break;
        default:
            if (*c < 0x20) {
                char esc[6] = {'\\', 'u', '0', '0', hex[*c >> 4], hex[*c & 15]};
                put(l, esc, 6);
            } else if ((n = utf8_len(c)) == 0) {
                put(l, "\\ufffd", 6);
                n = 1;
            } else {
                put(l, (const char *)c, n);
            }
        }
        c += n;
    }
    put(l, "\"", 1);
}

static void put_key(line_t *l, const char *key)
{
    put(l, ",", 1);
    put_json_string(l, key);
    put(l, ":", 1);
}

static void put_field(line_t *l, const imp_log_field_t *f)
{
    char num[64];
    switch (f->type) {
    case 's':
        put_key(l, f->key);
        put_json_string(l, f->s);
        break;
    case 'i':
        put_key(l, f->key);
        snprintf(num, sizeof(num), "%lld", f->i);
        puts_raw(l, num);
        break;
    case 'f':
        put_key(l, f->key);
        if (isfinite(f->f))
            snprintf(num, sizeof(num), "%.17g", f->f);
        else
            snprintf(num, sizeof(num), "null");
        puts_raw(l, num);
        break;
    case 'b':
        put_key(l, f->key);
        puts_raw(l, f->i ? "true" : "false");
        break;
    case 'e':
        if (f->e == NULL)
            break;
        put_key(l, "error");
        put_json_string(l, imp_error_message(f->e));
        put_key(l, "error_code");
        put_json_string(l, imp_error_code(f->e));
        put_key(l, "error_class");
        put_json_string(l, imp_err_class_name(imp_error_class(f->e)));
        if (imp_error_detail(f->e) != NULL) {
            put_key(l, "error_detail");
            put_json_string(l, imp_error_detail(f->e));
        }
        break;
    default:
        break;
    }
}

void imp_log_emit(imp_log_level_t level, const char *msg, const imp_log_field_t *fields,
                  int nfields)
{
    line_t l = {.p = NULL, .len = 0, .cap = sizeof(l.stack)};
    l.p = l.stack;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char tsbuf[96];
    snprintf(tsbuf, sizeof(tsbuf), "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\"",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts.tv_nsec / 1000000);
    puts_raw(&l, tsbuf);
    put_key(&l, "level");
    put_json_string(&l, imp_log_level_name(level));
    put_key(&l, "msg");
    put_json_string(&l, msg);
    put_key(&l, "binary");
    put_json_string(&l, log_binary);
    if (ctx_tenant[0]) {
        put_key(&l, "tenant_id");
        put_json_string(&l, ctx_tenant);
    }
    if (ctx_operation[0]) {
        put_key(&l, "operation_id");
        put_json_string(&l, ctx_operation);
    }
    if (ctx_trace[0]) {
        put_key(&l, "trace_id");
        put_json_string(&l, ctx_trace);
    }
    for (int i = 0; i < nfields; i++)
        put_field(&l, &fields[i]);
    put(&l, "}\n", 2);

    FILE *out = log_stream ? log_stream : stderr;
    pthread_mutex_lock(&log_lock);
    fwrite(l.p, 1, l.len, out);
    fflush(out);
    pthread_mutex_unlock(&log_lock);
    if (l.p != l.stack)
        free(l.p);
}
