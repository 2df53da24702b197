/* W3C traceparent: parse, format, new traces and child spans. */
#include "imp/trace.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

static bool is_all_zero(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '0')
            return false;
    }
    return true;
}

static int hex_value(char c)
{
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

imp_error_t *imp_trace_parse(const char *text, size_t len, imp_trace_t *out)
{
    if (len != IMP_TRACEPARENT_LEN)
        return imp_error_new(IMP_ERR_POISON, "bad_traceparent",
                             "traceparent is not 55 characters (version 00)");
    const char *trace_id = text + 3, *parent_id = text + 36, *flags = text + 53;
    if (text[0] != '0' || text[1] != '0')
        return imp_error_new(IMP_ERR_POISON, "bad_traceparent", "traceparent version is not 00");
    if (text[2] != '-' || text[35] != '-' || text[52] != '-' ||
        !is_lower_hex(trace_id, IMP_TRACE_ID_LEN) ||
        !is_lower_hex(parent_id, IMP_TRACE_PARENT_ID_LEN) || !is_lower_hex(flags, 2))
        return imp_error_new(IMP_ERR_POISON, "bad_traceparent",
                             "traceparent is not 00-<32 hex>-<16 hex>-<2 hex> in lowercase");
    if (is_all_zero(trace_id, IMP_TRACE_ID_LEN))
        return imp_error_new(IMP_ERR_POISON, "bad_traceparent", "traceparent trace-id is zero");
    if (is_all_zero(parent_id, IMP_TRACE_PARENT_ID_LEN))
        return imp_error_new(IMP_ERR_POISON, "bad_traceparent", "traceparent parent-id is zero");

    memcpy(out->trace_id, trace_id, IMP_TRACE_ID_LEN);
    out->trace_id[IMP_TRACE_ID_LEN] = '\0';
    memcpy(out->parent_id, parent_id, IMP_TRACE_PARENT_ID_LEN);
    out->parent_id[IMP_TRACE_PARENT_ID_LEN] = '\0';
    out->flags = (uint8_t)(hex_value(flags[0]) << 4 | hex_value(flags[1]));
    return NULL;
}

void imp_trace_format(const imp_trace_t *t, char *out)
{
    snprintf(out, IMP_TRACEPARENT_LEN + 1, "00-%.32s-%.16s-%02x", t->trace_id, t->parent_id,
             t->flags);
}

/* crypto.h will own random bytes; until then the kernel's CSPRNG directly. Failure to get
 * randomness is not recoverable, so it aborts like an allocation failure. */
static void random_bytes(unsigned char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(buf + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"getrandom failed\"}\n");
            abort();
        }
        got += (size_t)r;
    }
}

/* n random bytes as 2n lowercase hex digits, never all zero (W3C forbids it). */
static void random_hex(char *out, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char bytes[16];

    do {
        random_bytes(bytes, n);
        for (size_t i = 0; i < n; i++) {
            out[2 * i] = digits[bytes[i] >> 4];
            out[2 * i + 1] = digits[bytes[i] & 0x0f];
        }
        out[2 * n] = '\0';
    } while (is_all_zero(out, 2 * n));
}

void imp_trace_new(imp_trace_t *out)
{
    random_hex(out->trace_id, IMP_TRACE_ID_LEN / 2);
    random_hex(out->parent_id, IMP_TRACE_PARENT_ID_LEN / 2);
    out->flags = IMP_TRACE_FLAG_SAMPLED;
}

void imp_trace_child(const imp_trace_t *parent, imp_trace_t *out)
{
    if (out != parent) {
        memcpy(out->trace_id, parent->trace_id, sizeof(out->trace_id));
        out->flags = parent->flags;
    }
    random_hex(out->parent_id, IMP_TRACE_PARENT_ID_LEN / 2);
}
