/* Reading webhook bodies: the documents json_loadb(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY)
 * accepts, into the same jansson values, several times faster (strings are scanned a word at
 * a time and copied once; jansson's lexer takes them a byte at a time through callbacks). */
#include "core_internal.h"

#include "imp/json_text.h"
#include "imp/mem.h"

#include <stdlib.h>
#include <string.h>

/* jansson's JSON_PARSER_MAX_DEPTH; like jansson, every value counts, scalars too. */
#define DEPTH_MAX 2048
/* Integers of at most this many digits cannot overflow 64 bits. */
#define SAFE_DIGITS 18

typedef struct {
    const unsigned char *start, *p, *end;
    int depth;
    char *scratch; /* strings with escapes, decoded */
    size_t scap;
    const char *error;
    size_t error_at;
} reader_t;

static json_t *fail(reader_t *r, const char *why)
{
    if (r->error == NULL) {
        r->error = why;
        r->error_at = (size_t)(r->p - r->start);
    }
    return NULL;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int hex_value(unsigned char c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void skip_ws(reader_t *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

/* ---- strings ---- */

/* The first byte from q on that is not printable ASCII other than '"' and '\\' (or end). */
static const unsigned char *skip_plain(const unsigned char *q, const unsigned char *end)
{
    uint64_t x;
    for (; end - q >= 8; q += 8) {
        memcpy(&x, q, 8);
        if (imp_json_word_special(x))
            break;
    }
    while (q < end && *q >= 0x20 && *q < 0x80 && *q != '"' && *q != '\\')
        q++;
    return q;
}

/* Four hex digits at q: the code unit, or -1. */
static long hex4(const unsigned char *q, const unsigned char *end)
{
    long v = 0;
    if (end - q < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(q[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* The \u escape at r->p (the backslash), a surrogate pair taken whole, into out. Returns the
 * bytes written; 0 when malformed, a lone surrogate or U+0000 (jansson refuses NUL in strings
 * and keys alike). */
static size_t decode_unicode(reader_t *r, char *out)
{
    long cp = hex4(r->p + 2, r->end);
    if (cp < 0)
        return 0;
    r->p += 6;
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return 0;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u')
            return 0;
        long low = hex4(r->p + 2, r->end);
        if (low < 0xdc00 || low > 0xdfff)
            return 0;
        r->p += 6;
        cp = ((cp - 0xd800) << 10) + (low - 0xdc00) + 0x10000;
    }
    return cp == 0 ? 0 : utf8_encode((uint32_t)cp, out);
}

/* One escape at r->p (the backslash) into out: the bytes written, 0 when invalid. */
static size_t decode_escape(reader_t *r, char *out)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (r->end - r->p < 2)
        return 0;
    if (r->p[1] == 'u')
        return decode_unicode(r, out);
    const char *k = r->p[1] != '\0' ? strchr(from, r->p[1]) : NULL;
    if (k == NULL)
        return 0;
    *out = to[k - from];
    r->p += 2;
    return 1;
}

/* The rest of a string that has escapes, decoded into r->scratch from r->p on; the plain text
 * already scanned, begin[0..r->p), is copied first. */
static bool read_escaped(reader_t *r, const unsigned char *begin, const char **s, size_t *n)
{
    /* Decoding never makes text longer: the rest of the body is room enough. */
    size_t need = (size_t)(r->end - begin);
    if (need > r->scap) {
        free(r->scratch);
        r->scap = need;
        r->scratch = imp_malloc(need);
    }
    size_t k = (size_t)(r->p - begin);
    memcpy(r->scratch, begin, k);
    while (r->p < r->end) {
        const unsigned char *q = skip_plain(r->p, r->end);
        memcpy(r->scratch + k, r->p, (size_t)(q - r->p));
        k += (size_t)(q - r->p);
        r->p = q;
        if (q == r->end)
            break;
        if (*q == '"') {
            r->p++;
            *s = r->scratch;
            *n = k;
            return true;
        }
        size_t w = 0;
        if (*q == '\\') {
            w = decode_escape(r, r->scratch + k);
        } else if (*q >= 0x80 && (w = imp_json_utf8_sequence(q, (size_t)(r->end - q))) != 0) {
            memcpy(r->scratch + k, q, w);
            r->p += w;
        }
        if (w == 0) {
            fail(r, *q == '\\'  ? "invalid escape"
                    : *q < 0x20 ? "control character"
                                : "invalid utf-8");
            return false;
        }
        k += w;
    }
    fail(r, "premature end of input");
    return false;
}

/* The string whose opening quote is at r->p: *s and *n, borrowed (from the body, or from
 * r->scratch when *escaped, valid until the next string is read). */
static bool read_string(reader_t *r, const char **s, size_t *n, bool *escaped)
{
    const unsigned char *begin = ++r->p;
    *escaped = false;
    for (;;) {
        const unsigned char *q = skip_plain(r->p, r->end);
        r->p = q;
        if (q == r->end) {
            fail(r, "premature end of input");
            return false;
        }
        if (*q == '"') {
            *s = (const char *)begin;
            *n = (size_t)(q - begin);
            r->p++;
            return true;
        }
        if (*q == '\\') {
            *escaped = true;
            return read_escaped(r, begin, s, n);
        }
        size_t w = *q >= 0x80 ? imp_json_utf8_sequence(q, (size_t)(r->end - q)) : 0;
        if (w == 0) {
            fail(r, *q < 0x20 ? "control character" : "invalid utf-8");
            return false;
        }
        r->p += w;
    }
}

/* ---- numbers and literals ---- */

static const unsigned char *digits_end(const unsigned char *q, const unsigned char *end)
{
    while (q < end && is_digit(*q))
        q++;
    return q;
}

/* JSON's number grammar from r->p: the end of the number, or NULL. *integer when it has
 * neither fraction nor exponent. */
static const unsigned char *number_end(reader_t *r, bool *integer)
{
    const unsigned char *q = r->p, *end = r->end;
    if (*q == '-')
        q++;
    if (q == end || !is_digit(*q))
        return NULL;
    if (*q == '0') {
        if (++q < end && is_digit(*q))
            return NULL; /* no leading zeros */
    } else {
        q = digits_end(q, end);
    }
    *integer = true;
    if (q < end && *q == '.') {
        if (++q == end || !is_digit(*q))
            return NULL;
        q = digits_end(q, end);
        *integer = false;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        if (++q < end && (*q == '+' || *q == '-'))
            q++;
        if (q == end || !is_digit(*q))
            return NULL;
        q = digits_end(q, end);
        *integer = false;
    }
    return q;
}

static json_t *read_number(reader_t *r)
{
    bool integer = false;
    const unsigned char *q = number_end(r, &integer);
    if (q == NULL)
        return fail(r, "invalid token");
    const unsigned char *s = r->p;
    bool negative = *s == '-';
    size_t ndigits = (size_t)(q - s) - negative;
    if (integer && ndigits <= SAFE_DIGITS) {
        uint64_t v = 0;
        for (const unsigned char *d = s + negative; d < q; d++)
            v = v * 10 + (uint64_t)(*d - '0');
        r->p = q;
        return json_integer(negative ? -(json_int_t)v : (json_int_t)v);
    }
    /* Reals and long integers are rare in webhooks: jansson converts them itself, so their
     * values, and what overflows, are its own. */
    json_t *v = json_loadb((const char *)s, (size_t)(q - s), JSON_DECODE_ANY, NULL);
    if (v == NULL)
        return fail(r, integer ? "too big integer" : "real number overflow");
    r->p = q;
    return v;
}

static json_t *read_literal(reader_t *r)
{
    const unsigned char *q = r->p;
    while (q < r->end && is_alpha(*q))
        q++;
    size_t n = (size_t)(q - r->p);
    json_t *v = n == 4 && memcmp(r->p, "true", 4) == 0    ? json_true()
                : n == 5 && memcmp(r->p, "false", 5) == 0 ? json_false()
                : n == 4 && memcmp(r->p, "null", 4) == 0  ? json_null()
                                                          : NULL;
    if (v == NULL)
        return fail(r, "invalid token");
    r->p = q;
    return v;
}

/* jansson reads one byte past a number or a literal to see where it ends and puts it back,
 * but a NUL byte put back is lost: "1\0" is the document 1. Kept, so that exactly the same
 * bodies are accepted. */
static void skip_lookahead_nul(reader_t *r)
{
    if (r->p < r->end && *r->p == '\0')
        r->p++;
}

/* ---- structure ---- */

static json_t *read_value(reader_t *r);

/* One "key": value member into obj; false on error. */
static bool read_member(reader_t *r, json_t *obj)
{
    const char *key;
    size_t klen;
    bool escaped;
    if (r->p == r->end || *r->p != '"') {
        fail(r, "string or '}' expected");
        return false;
    }
    if (!read_string(r, &key, &klen, &escaped))
        return false;
    if (json_object_getn(obj, key, klen) != NULL) {
        fail(r, "duplicate object key");
        return false;
    }
    skip_ws(r);
    if (r->p == r->end || *r->p != ':') {
        fail(r, "':' expected");
        return false;
    }
    r->p++;
    /* The value's own strings may reuse the scratch buffer (a key holds no NUL). */
    char *owned = escaped ? imp_strndup(key, klen) : NULL;
    json_t *v = read_value(r);
    if (v != NULL)
        json_object_setn_new_nocheck(obj, owned != NULL ? owned : key, klen, v);
    free(owned);
    return v != NULL;
}

static json_t *read_object(reader_t *r)
{
    json_t *obj = json_object();
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return obj;
    }
    for (;;) {
        if (!read_member(r, obj))
            break;
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            skip_ws(r);
            continue;
        }
        if (r->p < r->end && *r->p == '}') {
            r->p++;
            return obj;
        }
        fail(r, "'}' expected");
        break;
    }
    json_decref(obj);
    return NULL;
}

static json_t *read_array(reader_t *r)
{
    json_t *arr = json_array();
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return arr;
    }
    for (;;) {
        json_t *v = read_value(r);
        if (v == NULL)
            break;
        json_array_append_new(arr, v);
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == ']') {
            r->p++;
            return arr;
        }
        fail(r, "']' expected");
        break;
    }
    json_decref(arr);
    return NULL;
}

static json_t *read_scalar_string(reader_t *r)
{
    const char *s;
    size_t n;
    bool escaped;
    return read_string(r, &s, &n, &escaped) ? json_stringn_nocheck(s, n) : NULL;
}

static json_t *read_value(reader_t *r)
{
    if (++r->depth > DEPTH_MAX)
        return fail(r, "maximum parsing depth reached");
    skip_ws(r);
    if (r->p == r->end)
        return fail(r, "unexpected end of input");
    json_t *v;
    unsigned char c = *r->p;
    if (c == '{') {
        v = read_object(r);
    } else if (c == '[') {
        v = read_array(r);
    } else if (c == '"') {
        v = read_scalar_string(r);
    } else if (c == '-' || is_digit(c) || is_alpha(c)) {
        v = is_alpha(c) ? read_literal(r) : read_number(r);
        skip_lookahead_nul(r);
    } else {
        v = fail(r, "invalid token");
    }
    if (v != NULL)
        r->depth--;
    return v;
}

json_t *ing_json_load(const char *buf, size_t len, ing_json_error_t *err)
{
    const unsigned char *start = (const unsigned char *)(buf != NULL ? buf : "");
    reader_t r = {.start = start, .p = start, .end = start + (buf != NULL ? len : 0)};
    json_t *v = read_value(&r);
    if (v != NULL) {
        skip_ws(&r);
        if (r.p != r.end) {
            json_decref(v);
            v = fail(&r, "end of file expected");
        }
    }
    free(r.scratch);
    if (err != NULL) {
        err->text = v != NULL ? "" : r.error;
        err->position = v != NULL ? 0 : r.error_at;
    }
    return v;
}
