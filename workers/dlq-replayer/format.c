/* Pure helpers of imperium-dlq: time and id arguments, UTF-8 checks, table cells and tables. */
#include "dlq.h"

#include "imp/crypto.h"
#include "imp/envelope.h"
#include "imp/mem.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- arguments ----------------------------------------------------------------------------- */

static int parse_relative(const char *text, int64_t now_ms, int64_t *out_ms)
{
    static const struct {
        char unit;
        int64_t ms;
    } units[] = {{'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}, {'w', 604800000}};
    size_t len = strlen(text);
    if (len < 2 || len > 8)
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (!isdigit((unsigned char)text[i]))
            return -1;
        n = n * 10 + (text[i] - '0');
    }
    for (size_t i = 0; i < IMP_ARRAY_LEN(units); i++) {
        if (units[i].unit != text[len - 1])
            continue;
        /* At most 7 digits of weeks: far below overflow, and before 1970 is an error. */
        if (n == 0 || n * units[i].ms > now_ms)
            return -1;
        *out_ms = now_ms - n * units[i].ms;
        return 0;
    }
    return -1;
}

int dlq_parse_time(const char *text, int64_t now_ms, int64_t *out_ms)
{
    if (text == NULL || *text == '\0')
        return -1;
    if (parse_relative(text, now_ms, out_ms) == 0)
        return 0;
    size_t len = strlen(text);
    if (len == 10) {
        char full[32];
        snprintf(full, sizeof(full), "%sT00:00:00Z", text);
        return imp_envelope_time_parse(full, strlen(full), out_ms);
    }
    return imp_envelope_time_parse(text, len, out_ms);
}

int dlq_parse_id(const char *text, long long *out)
{
    if (text == NULL || !isdigit((unsigned char)text[0]))
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0)
        return -1;
    *out = v;
    return 0;
}

bool dlq_is_uuid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* ---- UTF-8 --------------------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    unsigned min;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

bool dlq_utf8_text(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t i = 0;
    while (i < len) {
        if (p[i] == 0)
            return false;
        size_t n = utf8_seq(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

size_t dlq_utf8_len(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p & 0xc0) != 0x80;
    return n;
}

/* ---- cells and escapes ---------------------------------------------------------------------- */

/* Code points of s as dlq_cell prints them (each byte of a broken sequence counts as one). */
static size_t cell_len(const unsigned char *p, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; n++) {
        size_t k = utf8_seq(p + i, len - i);
        i += k ? k : 1;
    }
    return n;
}

char *dlq_cell(const char *s, size_t max)
{
    assert(max >= 1);
    if (s == NULL)
        return imp_strdup("-");
    size_t cap = strlen(s) + 4;
    char *out = imp_malloc(cap);
    size_t o = 0, cps = 0, total = cell_len((const unsigned char *)s, cap - 4), rem = cap - 4;
    const unsigned char *p = (const unsigned char *)s;
    while (rem > 0) {
        size_t n = utf8_seq(p, rem);
        if (total > max && cps + 1 == max) {
            memcpy(out + o, "\xe2\x80\xa6", 3); /* … */
            o += 3;
            break;
        }
        if (n <= 1) {
            /* Controls, and stray bytes of a broken sequence, print as one space. */
            out[o++] = (n == 0 || *p < 0x20 || *p == 0x7f) ? ' ' : (char)*p;
            n = 1;
        } else {
            memcpy(out + o, p, n);
            o += n;
        }
        p += n;
        rem -= n;
        cps++;
    }
    out[o] = '\0';
    return out;
}

char *dlq_escape(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    char *out = imp_malloc(len * 4 + 1);
    size_t o = 0, i = 0;
    while (i < len) {
        size_t n = utf8_seq(p + i, len - i);
        if (n == 1 && (p[i] < 0x20 || p[i] == 0x7f) && p[i] != '\n' && p[i] != '\t')
            n = 0;
        if (n == 0) {
            o += (size_t)snprintf(out + o, 5, "\\x%02x", p[i]);
            i++;
            continue;
        }
        memcpy(out + o, p + i, n);
        o += n;
        i += n;
    }
    out[o] = '\0';
    return out;
}

char *dlq_base64(const void *buf, size_t len)
{
    char *out = imp_malloc(IMP_BASE64_ENCODED_LEN(len) + 1);
    imp_base64_encode(buf, len, out);
    return out;
}

void dlq_format_age(int64_t ms, char *out, size_t cap)
{
    int64_t s = ms < 0 ? 0 : ms / 1000;
    if (s < 120)
        snprintf(out, cap, "%llds", (long long)s);
    else if (s < 2 * 3600)
        snprintf(out, cap, "%lldm", (long long)(s / 60));
    else if (s < 2 * 86400)
        snprintf(out, cap, "%lldh", (long long)(s / 3600));
    else
        snprintf(out, cap, "%lldd", (long long)(s / 86400));
}

/* ---- tables -------------------------------------------------------------------------------- */

void dlq_table_init(dlq_table_t *t, const char *const *header, size_t ncols)
{
    memset(t, 0, sizeof(*t));
    t->header = header;
    t->ncols = ncols;
}

void dlq_table_add(dlq_table_t *t, char **cells)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = imp_realloc(t->cells, t->cap * t->ncols * sizeof(*t->cells));
    }
    memcpy(t->cells + t->nrows * t->ncols, cells, t->ncols * sizeof(*cells));
    t->nrows++;
}

static void print_row(FILE *out, const char *const *cells, const size_t *width, size_t ncols)
{
    for (size_t c = 0; c < ncols; c++) {
        fputs(cells[c], out);
        if (c + 1 == ncols)
            break;
        for (size_t pad = dlq_utf8_len(cells[c]); pad < width[c] + 2; pad++)
            fputc(' ', out);
    }
    fputc('\n', out);
}

void dlq_table_print(const dlq_table_t *t, FILE *out)
{
    size_t *width = imp_calloc(t->ncols, sizeof(*width));
    for (size_t c = 0; c < t->ncols; c++)
        width[c] = dlq_utf8_len(t->header[c]);
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t c = 0; c < t->ncols; c++) {
            size_t w = dlq_utf8_len(t->cells[r * t->ncols + c]);
            if (w > width[c])
                width[c] = w;
        }
    print_row(out, t->header, width, t->ncols);
    for (size_t r = 0; r < t->nrows; r++)
        print_row(out, (const char *const *)t->cells + r * t->ncols, width, t->ncols);
    free(width);
}

void dlq_table_dispose(dlq_table_t *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}
