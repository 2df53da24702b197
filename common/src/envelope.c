/* The CloudEvents envelope: parse and validate, serialize, build, and RFC 3339 times. */
#include "imp/envelope.h"

#include "imp/json_text.h"
#include "imp/mem.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BAD(...) imp_error_new(IMP_ERR_POISON, "bad_envelope", __VA_ARGS__)

/* 9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write. */
#define TIME_MAX_MS INT64_C(253402300799999)

static const char *const attribute_names[] = {
    "specversion", "id",          "source",          "type",
    "time",        "subject",     "datacontenttype", "tenantid",
    "traceparent", "causationid", "attempt",         "notbefore",
    "dlq",         "data",
};

static const char *const dlq_member_names[] = {
    "worker", "class", "reason", "topic", "partition", "offset", "at",
};

/* ---- Character-level rules: each checks s[0..n) and bounds n itself. ---- */

typedef bool (*rule_fn)(const char *s, size_t n);

typedef struct {
    const char *path; /* the attribute as messages name it: "id", "dlq.topic" */
    rule_fn ok;
    const char *what; /* completes "<path> is not <what>" */
} rule_t;

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_lower_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z');
}

static bool is_lower_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f');
}

static bool is_uuid(const char *s, size_t n)
{
    bool zero = true;
    if (n != IMP_ENVELOPE_UUID_LEN)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!is_lower_hex(s[i])) {
            return false;
        } else if (s[i] != '0') {
            zero = false;
        }
    }
    return !zero;
}

/* ^[a-z0-9][a-z0-9_-]{0,62}$: tenant ids and worker names. */
static bool is_name(const char *s, size_t n)
{
    if (n == 0 || n > IMP_ENVELOPE_NAME_MAX || !is_lower_alnum(s[0]))
        return false;
    for (size_t i = 1; i < n; i++) {
        if (!is_lower_alnum(s[i]) && s[i] != '_' && s[i] != '-')
            return false;
    }
    return true;
}

/* ^imperium/[a-z0-9][a-z0-9._-]{0,54}$ */
static bool is_source(const char *s, size_t n)
{
    static const char prefix[] = "imperium/";
    const size_t plen = sizeof(prefix) - 1;

    if (n <= plen || n > IMP_ENVELOPE_SOURCE_MAX || memcmp(s, prefix, plen) != 0 ||
        !is_lower_alnum(s[plen]))
        return false;
    for (size_t i = plen + 1; i < n; i++) {
        if (!is_lower_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    }
    return true;
}

/* ^imp(\.[a-z0-9_]+)+\.v[0-9]+$: "imp", at least one name segment, then the version. */
static bool is_type(const char *s, size_t n)
{
    size_t segments = 0, last = 0;

    if (n > IMP_ENVELOPE_TYPE_MAX || n < 4 || memcmp(s, "imp.", 4) != 0)
        return false;
    for (size_t i = 3; i < n; i++) {
        if (s[i] == '.') {
            if (i + 1 == n || s[i + 1] == '.')
                return false;
            segments++;
            last = i + 1;
        } else if (!is_lower_alnum(s[i]) && s[i] != '_') {
            return false;
        }
    }
    if (segments < 2 || s[last] != 'v' || last + 1 == n)
        return false;
    for (size_t i = last + 1; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
    }
    return true;
}

/* Kafka's legal topic names: ^[A-Za-z0-9._-]{1,249}$ */
static bool is_topic(const char *s, size_t n)
{
    if (n == 0 || n > IMP_ENVELOPE_TOPIC_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!is_lower_alnum(c) && !(c >= 'A' && c <= 'Z') && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

static const rule_t rule_id = {"id", is_uuid, "a lowercase uuid"};
static const rule_t rule_source = {"source", is_source, "imperium/<binary>"};
static const rule_t rule_type = {"type", is_type, "imp.<name>.v<n>"};
static const rule_t rule_tenantid = {"tenantid", is_name, "a tenant id ([a-z0-9_-], 1-63)"};
static const rule_t rule_causationid = {"causationid", is_uuid, "a lowercase uuid"};
static const rule_t rule_dlq_worker = {"dlq.worker", is_name, "a worker name ([a-z0-9_-], 1-63)"};
static const rule_t rule_dlq_topic = {"dlq.topic", is_topic, "a kafka topic name"};

static imp_error_t *check_rule(const rule_t *r, const char *s, size_t n)
{
    return r->ok(s, n) ? NULL : BAD("%s is not %s", r->path, r->what);
}

/* A fixed field of a struct: "" is absent. strnlen keeps an unterminated buffer in bounds. */
static imp_error_t *check_fixed(const rule_t *r, const char *buf, size_t cap, bool required)
{
    size_t n = strnlen(buf, cap);
    if (n == 0)
        return required ? BAD("%s is missing", r->path) : NULL;
    return check_rule(r, buf, n);
}

/* Copy NUL-terminated s into a fixed field after checking it; NULL s is missing. */
static imp_error_t *set_fixed(const rule_t *r, const char *s, char *dst, size_t cap)
{
    if (s == NULL || s[0] == '\0')
        return BAD("%s is missing", r->path);
    size_t n = strlen(s);
    imp_error_t *err = check_rule(r, s, n);
    if (err != NULL)
        return err;
    assert(n < cap);
    (void)cap;
    memcpy(dst, s, n + 1);
    return NULL;
}

static imp_error_t *check_traceparent(const char *s, size_t n)
{
    imp_trace_t t;
    imp_error_t *terr = imp_trace_parse(s, n, &t);
    if (terr == NULL)
        return NULL;
    imp_error_t *err = BAD("%s", imp_error_message(terr));
    imp_error_free(terr);
    return err;
}

static bool time_in_range(int64_t ms)
{
    return ms >= 0 && ms <= TIME_MAX_MS;
}

/* ---- RFC 3339 ---- */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar, for y >= 0: count in
 * 400-year eras of a calendar whose year starts on March 1st, so leap days fall last. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* n decimal digits at s into *out. */
static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

typedef struct {
    int year, month, day, hour, minute, second, millis, offset_min;
} rfc3339_t;

/* "YYYY-MM-DDTHH:MM:SS", the fixed 19-byte head. */
static bool parse_head(const char *s, rfc3339_t *t)
{
    return digits(s, 4, &t->year) && s[4] == '-' && digits(s + 5, 2, &t->month) && s[7] == '-' &&
           digits(s + 8, 2, &t->day) && (s[10] == 'T' || s[10] == 't') &&
           digits(s + 11, 2, &t->hour) && s[13] == ':' && digits(s + 14, 2, &t->minute) &&
           s[16] == ':' && digits(s + 17, 2, &t->second);
}

/* ".f+" at s[*i]: one digit at least; digits past milliseconds are truncated. */
static bool parse_fraction(const char *s, size_t n, size_t *i, rfc3339_t *t)
{
    size_t start = ++*i, k;
    t->millis = 0;
    for (k = 0; *i < n && is_digit(s[*i]); (*i)++, k++) {
        if (k < 3)
            t->millis = t->millis * 10 + (s[*i] - '0');
    }
    for (size_t pad = k; pad < 3; pad++)
        t->millis *= 10;
    return *i > start;
}

/* "Z", "z" or "+hh:mm" / "-hh:mm", ending the text. */
static bool parse_offset(const char *s, size_t n, size_t i, rfc3339_t *t)
{
    int hh, mm;
    if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z')) {
        t->offset_min = 0;
        return true;
    }
    if (i + 6 != n || (s[i] != '+' && s[i] != '-') || !digits(s + i + 1, 2, &hh) ||
        s[i + 3] != ':' || !digits(s + i + 4, 2, &mm) || hh > 23 || mm > 59)
        return false;
    t->offset_min = (s[i] == '-' ? -1 : 1) * (hh * 60 + mm);
    return true;
}

static bool fields_valid(const rfc3339_t *t)
{
    return t->month >= 1 && t->month <= 12 && t->day >= 1 &&
           t->day <= days_in_month(t->year, t->month) && t->hour <= 23 && t->minute <= 59 &&
           t->second <= 60;
}

int imp_envelope_time_parse(const char *text, size_t len, int64_t *out_ms)
{
    rfc3339_t t = {0};
    size_t i = 19;

    if (len < 20 || !parse_head(text, &t))
        return -1;
    if (text[i] == '.' && !parse_fraction(text, len, &i, &t))
        return -1;
    if (i >= len || !parse_offset(text, len, i, &t) || !fields_valid(&t))
        return -1;
    int64_t secs = days_from_civil(t.year, t.month, t.day) * 86400 + t.hour * 3600 + t.minute * 60 +
                   t.second - t.offset_min * 60;
    int64_t ms = secs * 1000 + t.millis;
    if (!time_in_range(ms))
        return -1;
    *out_ms = ms;
    return 0;
}

/* width decimal digits of v at p, zero-padded. */
static char *put_digits(char *p, int v, int width)
{
    for (int i = width - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + width;
}

int imp_envelope_time_format(int64_t ms, char *out)
{
    struct tm tm;
    char *p = out;

    out[0] = '\0';
    if (!time_in_range(ms))
        return -1;
    time_t secs = (time_t)(ms / 1000);
    gmtime_r(&secs, &tm);
    p = put_digits(p, tm.tm_year + 1900, 4);
    *p++ = '-';
    p = put_digits(p, tm.tm_mon + 1, 2);
    *p++ = '-';
    p = put_digits(p, tm.tm_mday, 2);
    *p++ = 'T';
    p = put_digits(p, tm.tm_hour, 2);
    *p++ = ':';
    p = put_digits(p, tm.tm_min, 2);
    *p++ = ':';
    p = put_digits(p, tm.tm_sec, 2);
    *p++ = '.';
    p = put_digits(p, (int)(ms % 1000), 3);
    *p++ = 'Z';
    *p = '\0';
    return 0;
}

int64_t imp_envelope_time_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- Reading JSON into the struct ---- */

/* Copy text for a message: printable ASCII kept, anything else replaced by '?', bounded. */
static void printable(char *dst, size_t cap, const char *s)
{
    size_t i = 0;
    for (; s[i] != '\0' && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[i] = '\0';
}

static const char *key_of(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

/* The string member for path: *s NULL when absent (an error when required). */
static imp_error_t *member_string(json_t *obj, const char *path, bool required, const char **s,
                                  size_t *n)
{
    json_t *v = json_object_get(obj, key_of(path));
    *s = NULL;
    *n = 0;
    if (v == NULL)
        return required ? BAD("%s is missing", path) : NULL;
    if (!json_is_string(v))
        return BAD("%s is not a string", path);
    *s = json_string_value(v);
    *n = json_string_length(v);
    return NULL;
}

static imp_error_t *read_fixed(json_t *obj, const rule_t *r, bool required, char *dst, size_t cap)
{
    const char *s;
    size_t n;
    imp_error_t *err = member_string(obj, r->path, required, &s, &n);
    if (err != NULL || s == NULL)
        return err;
    if ((err = check_rule(r, s, n)) != NULL)
        return err;
    assert(n < cap);
    (void)cap;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return NULL;
}

static imp_error_t *read_const(json_t *obj, const char *path, const char *expect, bool required)
{
    const char *s;
    size_t n;
    imp_error_t *err = member_string(obj, path, required, &s, &n);
    if (err != NULL || s == NULL)
        return err;
    if (n != strlen(expect) || memcmp(s, expect, n) != 0)
        return BAD("%s is not \"%s\"", path, expect);
    return NULL;
}

static imp_error_t *read_time(json_t *obj, const char *path, bool required, int64_t *ms)
{
    const char *s;
    size_t n;
    imp_error_t *err = member_string(obj, path, required, &s, &n);
    if (err != NULL || s == NULL)
        return err;
    if (imp_envelope_time_parse(s, n, ms) != 0)
        return BAD("%s is not an rfc 3339 date-time between 1970 and 9999", path);
    return NULL;
}

/* A non-empty string into a new heap copy. */
static imp_error_t *read_text(json_t *obj, const char *path, bool required, char **out)
{
    const char *s;
    size_t n;
    imp_error_t *err = member_string(obj, path, required, &s, &n);
    if (err != NULL || s == NULL)
        return err;
    if (n == 0)
        return BAD("%s is empty", path);
    *out = imp_strndup(s, n);
    return NULL;
}

/* An integer min..max written as an integer (1.0 is not one). */
static imp_error_t *read_int(json_t *obj, const char *path, bool required, int64_t max,
                             int64_t *out)
{
    json_t *v = json_object_get(obj, key_of(path));
    if (v == NULL)
        return required ? BAD("%s is missing", path) : NULL;
    if (!json_is_integer(v))
        return BAD("%s is not an integer", path);
    json_int_t i = json_integer_value(v);
    if (i < 0)
        return BAD("%s is negative", path);
    if (i > max)
        return BAD("%s is too large", path);
    *out = (int64_t)i;
    return NULL;
}

static imp_error_t *check_known(json_t *obj, const char *const *names, size_t count,
                                const char *what)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        size_t i = 0;
        while (i < count && strcmp(key, names[i]) != 0)
            i++;
        if (i == count) {
            char shown[64];
            printable(shown, sizeof(shown), key);
            return BAD("%s \"%s\"", what, shown);
        }
    }
    return NULL;
}

static imp_error_t *read_traceparent(json_t *obj, imp_envelope_t *e)
{
    const char *s;
    size_t n;
    imp_error_t *err = member_string(obj, "traceparent", false, &s, &n);
    if (err != NULL || s == NULL)
        return err;
    if ((err = check_traceparent(s, n)) != NULL)
        return err;
    memcpy(e->traceparent, s, n + 1);
    return NULL;
}

static imp_error_t *read_attempt(json_t *obj, imp_envelope_t *e)
{
    int64_t attempt = 0;
    imp_error_t *err = read_int(obj, "attempt", false, INT_MAX, &attempt);
    e->attempt = (int)attempt;
    return err;
}

static imp_error_t *read_dlq_class(json_t *obj, imp_envelope_dlq_t *d)
{
    const char *s;
    size_t n;
    imp_error_t *err = member_string(obj, "dlq.class", true, &s, &n);
    if (err != NULL)
        return err;
    if (imp_err_class_parse(s, &d->cls) != 0)
        return BAD("dlq.class is not one of infra, retriable, poison, fatal");
    return NULL;
}

static imp_error_t *read_dlq(json_t *obj, imp_envelope_t *e)
{
    imp_envelope_dlq_t *d = &e->dlq;
    int64_t partition = 0;
    imp_error_t *err;
    json_t *v = json_object_get(obj, "dlq");

    if (v == NULL)
        return NULL;
    if (!json_is_object(v))
        return BAD("dlq is not an object");
    e->has_dlq = true;
    if ((err = read_fixed(v, &rule_dlq_worker, true, d->worker, sizeof(d->worker))) ||
        (err = read_dlq_class(v, d)) || (err = read_text(v, "dlq.reason", true, &d->reason)) ||
        (err = read_fixed(v, &rule_dlq_topic, true, d->topic, sizeof(d->topic))) ||
        (err = read_int(v, "dlq.partition", true, INT32_MAX, &partition)) ||
        (err = read_int(v, "dlq.offset", true, INT64_MAX, &d->offset)) ||
        (err = read_time(v, "dlq.at", true, &d->at_ms)) ||
        (err = check_known(v, dlq_member_names, IMP_ARRAY_LEN(dlq_member_names),
                           "dlq has an unknown member")))
        return err;
    d->partition = (int32_t)partition;
    return NULL;
}

static imp_error_t *read_data(json_t *obj, imp_envelope_t *e)
{
    json_t *v = json_object_get(obj, "data");
    if (v == NULL)
        return BAD("data is missing");
    if (!json_is_object(v))
        return BAD("data is not an object");
    e->data = json_incref(v);
    return NULL;
}

/* Attributes in the order of the header; the first rule broken is the one reported. */
static imp_error_t *read_envelope(json_t *root, imp_envelope_t *e)
{
    imp_error_t *err;
    if ((err = read_const(root, "specversion", "1.0", true)) ||
        (err = read_fixed(root, &rule_id, true, e->id, sizeof(e->id))) ||
        (err = read_fixed(root, &rule_source, true, e->source, sizeof(e->source))) ||
        (err = read_fixed(root, &rule_type, true, e->type, sizeof(e->type))) ||
        (err = read_time(root, "time", true, &e->time_ms)) ||
        (err = read_text(root, "subject", false, &e->subject)) ||
        (err = read_const(root, "datacontenttype", "application/json", false)) ||
        (err = read_fixed(root, &rule_tenantid, true, e->tenantid, sizeof(e->tenantid))) ||
        (err = read_traceparent(root, e)) ||
        (err =
             read_fixed(root, &rule_causationid, false, e->causationid, sizeof(e->causationid))) ||
        (err = read_attempt(root, e)) ||
        (err = read_time(root, "notbefore", false, &e->notbefore_ms)) ||
        (err = read_dlq(root, e)) || (err = read_data(root, e)) ||
        (err = check_known(root, attribute_names, IMP_ARRAY_LEN(attribute_names),
                           "unknown attribute")))
        return err;
    return NULL;
}

static imp_error_t *bad_json(const json_error_t *jerr)
{
    char text[JSON_ERROR_TEXT_LENGTH];
    printable(text, sizeof(text), jerr->text);
    return BAD("invalid json: %s (line %d, column %d)", text, jerr->line, jerr->column);
}

void imp_envelope_init(imp_envelope_t *e)
{
    memset(e, 0, sizeof(*e));
}

void imp_envelope_dispose(imp_envelope_t *e)
{
    json_decref(e->data);
    free(e->subject);
    free(e->dlq.reason);
    imp_envelope_init(e);
}

imp_error_t *imp_envelope_parse(const char *buf, size_t len, imp_envelope_t *out)
{
    json_error_t jerr;
    imp_error_t *err;

    imp_envelope_init(out);
    /* Duplicate keys are refused: two "tenantid" members could be read differently by
     * different consumers. */
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return bad_json(&jerr);
    if (json_is_object(root))
        err = read_envelope(root, out);
    else
        err = BAD("invalid json: the envelope is not an object");
    json_decref(root);
    if (err != NULL)
        imp_envelope_dispose(out);
    return err;
}

/* ---- Validating the struct and writing JSON ---- */

static imp_error_t *check_time(const char *path, int64_t ms)
{
    return time_in_range(ms) ? NULL : BAD("%s is outside 1970..9999", path);
}

static imp_error_t *check_dlq(const imp_envelope_dlq_t *d)
{
    imp_error_t *err;
    if ((err = check_fixed(&rule_dlq_worker, d->worker, sizeof(d->worker), true)) ||
        (err = check_fixed(&rule_dlq_topic, d->topic, sizeof(d->topic), true)) ||
        (err = check_time("dlq.at", d->at_ms)))
        return err;
    if (d->cls < IMP_ERR_INFRA || d->cls > IMP_ERR_FATAL)
        return BAD("dlq.class is not one of infra, retriable, poison, fatal");
    if (d->reason == NULL)
        return BAD("dlq.reason is missing");
    if (d->reason[0] == '\0')
        return BAD("dlq.reason is empty");
    if (d->partition < 0)
        return BAD("dlq.partition is negative");
    if (d->offset < 0)
        return BAD("dlq.offset is negative");
    return NULL;
}

static imp_error_t *validate(const imp_envelope_t *e)
{
    imp_error_t *err;
    if ((err = check_fixed(&rule_id, e->id, sizeof(e->id), true)) ||
        (err = check_fixed(&rule_source, e->source, sizeof(e->source), true)) ||
        (err = check_fixed(&rule_type, e->type, sizeof(e->type), true)) ||
        (err = check_time("time", e->time_ms)) ||
        (err = check_fixed(&rule_tenantid, e->tenantid, sizeof(e->tenantid), true)) ||
        (err = check_fixed(&rule_causationid, e->causationid, sizeof(e->causationid), false)) ||
        (e->notbefore_ms != 0 && (err = check_time("notbefore", e->notbefore_ms))) ||
        (e->has_dlq && (err = check_dlq(&e->dlq))))
        return err;
    size_t tp = strnlen(e->traceparent, sizeof(e->traceparent));
    if (tp != 0 && (err = check_traceparent(e->traceparent, tp)) != NULL)
        return err;
    if (e->subject != NULL && e->subject[0] == '\0')
        return BAD("subject is empty");
    if (e->attempt < 0)
        return BAD("attempt is negative");
    if (e->data == NULL)
        return BAD("data is missing");
    if (!json_is_object(e->data))
        return BAD("data is not an object");
    return NULL;
}

/* Set a string member; free text is checked for UTF-8 here (json_string refuses it). */
static imp_error_t *set_string(json_t *obj, const char *key, const char *path, const char *s)
{
    json_t *v = json_string(s);
    if (v == NULL)
        return BAD("%s is not valid utf-8", path);
    json_object_set_new(obj, key, v);
    return NULL;
}

static void set_time(json_t *obj, const char *key, int64_t ms)
{
    char text[IMP_ENVELOPE_TIME_LEN + 1];
    imp_envelope_time_format(ms, text);
    json_object_set_new(obj, key, json_string(text));
}

static imp_error_t *build_dlq(const imp_envelope_dlq_t *d, json_t **out)
{
    json_t *o = json_object();
    json_object_set_new(o, "worker", json_string(d->worker));
    json_object_set_new(o, "class", json_string(imp_err_class_name(d->cls)));
    imp_error_t *err = set_string(o, "reason", "dlq.reason", d->reason);
    json_object_set_new(o, "topic", json_string(d->topic));
    json_object_set_new(o, "partition", json_integer(d->partition));
    json_object_set_new(o, "offset", json_integer(d->offset));
    set_time(o, "at", d->at_ms);
    *out = o;
    return err;
}

/* Members in the order of the header; e is valid, so only free text can still fail. */
static imp_error_t *build(const imp_envelope_t *e, json_t *root)
{
    imp_error_t *err = NULL;
    json_object_set_new(root, "specversion", json_string("1.0"));
    json_object_set_new(root, "id", json_string(e->id));
    json_object_set_new(root, "source", json_string(e->source));
    json_object_set_new(root, "type", json_string(e->type));
    set_time(root, "time", e->time_ms);
    if (e->subject != NULL && (err = set_string(root, "subject", "subject", e->subject)))
        return err;
    json_object_set_new(root, "datacontenttype", json_string("application/json"));
    json_object_set_new(root, "tenantid", json_string(e->tenantid));
    if (e->traceparent[0] != '\0')
        json_object_set_new(root, "traceparent", json_string(e->traceparent));
    if (e->causationid[0] != '\0')
        json_object_set_new(root, "causationid", json_string(e->causationid));
    json_object_set_new(root, "attempt", json_integer(e->attempt));
    if (e->notbefore_ms != 0)
        set_time(root, "notbefore", e->notbefore_ms);
    if (e->has_dlq) {
        json_t *dlq = NULL;
        err = build_dlq(&e->dlq, &dlq);
        json_object_set_new(root, "dlq", dlq);
        if (err != NULL)
            return err;
    }
    json_object_set(root, "data", e->data);
    return NULL;
}

imp_error_t *imp_envelope_serialize(const imp_envelope_t *e, char **out)
{
    json_t *root = NULL;
    imp_error_t *err;

    *out = NULL;
    if ((err = validate(e)) != NULL)
        goto out;
    root = json_object();
    if ((err = build(e, root)) != NULL)
        goto out;
    *out = json_dumps(root, JSON_COMPACT);
    if (*out == NULL)
        err = BAD("data cannot be encoded (a cycle or a non-finite number)");
out:
    json_decref(root);
    return err;
}

/* ---- Writing JSON straight into a buffer ---- */

/* A growing output buffer. */
typedef struct {
    char *p;
    size_t len, cap;
} wbuf_t;

static void wb_reserve(wbuf_t *w, size_t n)
{
    if (w->cap - w->len >= n)
        return;
    while (w->cap - w->len < n)
        w->cap *= 2;
    w->p = imp_realloc(w->p, w->cap);
}

static void wb_put(wbuf_t *w, const char *s, size_t n)
{
    wb_reserve(w, n);
    memcpy(w->p + w->len, s, n);
    w->len += n;
}

#define WB_LIT(w, s) wb_put((w), (s), sizeof(s) - 1)

/* The first index from i whose 8-byte word may hold a byte to look at (or the tail). */
static size_t skip_plain_words(const unsigned char *u, size_t i, size_t n)
{
    uint64_t x;
    for (; i + 8 <= n; i += 8) {
        memcpy(&x, u + i, 8);
        if (imp_json_word_special(x))
            break;
    }
    return i;
}

static void put_escape(wbuf_t *w, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";
    char seq[6] = {'\\', 0, 0, 0, 0, 0};
    size_t n = 2;
    switch (c) {
    case '"':
    case '\\':
        seq[1] = (char)c;
        break;
    case '\b':
        seq[1] = 'b';
        break;
    case '\f':
        seq[1] = 'f';
        break;
    case '\n':
        seq[1] = 'n';
        break;
    case '\r':
        seq[1] = 'r';
        break;
    case '\t':
        seq[1] = 't';
        break;
    default: /* jansson writes the other control characters as \u00XX, upper case */
        memcpy(seq + 1, "u00", 3);
        seq[4] = hex[c >> 4];
        seq[5] = hex[c & 0x0f];
        n = 6;
    }
    wb_put(w, seq, n);
}

/* s[0..n) as a JSON string, escaped as jansson's dump escapes it; false when s is not valid
 * UTF-8. */
static bool put_string(wbuf_t *w, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, plain = 0; /* s[plain..i) is waiting to be copied as it is */

    wb_reserve(w, n + 2);
    w->p[w->len++] = '"';
    while ((i = skip_plain_words(u, i, n)) < n) {
        if (u[i] >= 0x80) {
            size_t k = imp_json_utf8_sequence(u + i, n - i);
            if (k == 0)
                return false;
            i += k;
        } else if (u[i] < 0x20 || u[i] == '"' || u[i] == '\\') {
            wb_put(w, s + plain, i - plain);
            put_escape(w, u[i]);
            plain = ++i;
        } else {
            i++;
        }
    }
    wb_put(w, s + plain, n - plain);
    wb_put(w, "\"", 1);
    return true;
}

static void put_int(wbuf_t *w, int64_t v)
{
    char digits[24];
    size_t k = sizeof(digits);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[--k] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        digits[--k] = '-';
    wb_put(w, digits + k, sizeof(digits) - k);
}

/* Reals are rare in events: jansson writes them, so the digits are its own. */
static bool put_real(wbuf_t *w, const json_t *v)
{
    char text[64];
    size_t n = json_dumpb(v, text, sizeof(text), JSON_COMPACT | JSON_ENCODE_ANY);
    if (n == 0 || n > sizeof(text))
        return false;
    wb_put(w, text, n);
    return true;
}

static bool put_value(wbuf_t *w, const json_t *v, int depth);

/* Members in jansson's iteration order, the order json_dumps writes them in. */
static bool put_object(wbuf_t *w, const json_t *obj, int depth)
{
    void *it = json_object_iter((json_t *)obj);
    wb_put(w, "{", 1);
    for (bool first = true; it != NULL; it = json_object_iter_next((json_t *)obj, it)) {
        if (!first)
            wb_put(w, ",", 1);
        first = false;
        if (!put_string(w, json_object_iter_key(it), json_object_iter_key_len(it)))
            return false;
        wb_put(w, ":", 1);
        if (!put_value(w, json_object_iter_value(it), depth + 1))
            return false;
    }
    wb_put(w, "}", 1);
    return true;
}

static bool put_array(wbuf_t *w, const json_t *arr, int depth)
{
    size_t n = json_array_size(arr);
    wb_put(w, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            wb_put(w, ",", 1);
        if (!put_value(w, json_array_get(arr, i), depth + 1))
            return false;
    }
    wb_put(w, "]", 1);
    return true;
}

/* v at nesting level depth (data itself is 1); false when it cannot be written. */
static bool put_value(wbuf_t *w, const json_t *v, int depth)
{
    if (v == NULL || depth > IMP_ENVELOPE_DATA_DEPTH_MAX)
        return false;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return put_object(w, v, depth);
    case JSON_ARRAY:
        return put_array(w, v, depth);
    case JSON_STRING:
        return put_string(w, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        put_int(w, json_integer_value(v));
        return true;
    case JSON_REAL:
        return put_real(w, v);
    case JSON_TRUE:
        WB_LIT(w, "true");
        return true;
    case JSON_FALSE:
        WB_LIT(w, "false");
        return true;
    case JSON_NULL:
        WB_LIT(w, "null");
        return true;
    }
    return false;
}

/* key (the JSON text before the value) and the string s[0..n) of attribute path. */
static imp_error_t *put_member(wbuf_t *w, const char *key, const char *path, const char *s,
                               size_t n)
{
    wb_put(w, key, strlen(key));
    return put_string(w, s, n) ? NULL : BAD("%s is not valid utf-8", path);
}

/* A fixed field of the struct (strnlen keeps an unterminated one in bounds). */
#define PUT_FIXED(w, key, path, field)                                                             \
    put_member((w), (key), (path), (field), strnlen((field), sizeof(field)))

static imp_error_t *put_time(wbuf_t *w, const char *key, const char *path, int64_t ms)
{
    char text[IMP_ENVELOPE_TIME_LEN + 1];
    if (imp_envelope_time_format(ms, text) != 0)
        return BAD("%s is outside 1970..9999", path);
    wb_put(w, key, strlen(key));
    wb_put(w, "\"", 1);
    wb_put(w, text, IMP_ENVELOPE_TIME_LEN);
    wb_put(w, "\"", 1);
    return NULL;
}

/* Free text: non-empty, valid UTF-8. */
static imp_error_t *put_text(wbuf_t *w, const char *key, const char *path, const char *s)
{
    if (s == NULL)
        return BAD("%s is missing", path);
    if (s[0] == '\0')
        return BAD("%s is empty", path);
    return put_member(w, key, path, s, strlen(s));
}

static imp_error_t *put_dlq(wbuf_t *w, const imp_envelope_dlq_t *d)
{
    imp_error_t *err;
    if (d->cls < IMP_ERR_INFRA || d->cls > IMP_ERR_FATAL)
        return BAD("dlq.class is not one of infra, retriable, poison, fatal");
    if (d->partition < 0)
        return BAD("dlq.partition is negative");
    if (d->offset < 0)
        return BAD("dlq.offset is negative");
    const char *cls = imp_err_class_name(d->cls);
    if ((err = PUT_FIXED(w, ",\"dlq\":{\"worker\":", "dlq.worker", d->worker)) ||
        (err = put_member(w, ",\"class\":", "dlq.class", cls, strlen(cls))) ||
        (err = put_text(w, ",\"reason\":", "dlq.reason", d->reason)) ||
        (err = PUT_FIXED(w, ",\"topic\":", "dlq.topic", d->topic)))
        return err;
    WB_LIT(w, ",\"partition\":");
    put_int(w, d->partition);
    WB_LIT(w, ",\"offset\":");
    put_int(w, d->offset);
    if ((err = put_time(w, ",\"at\":", "dlq.at", d->at_ms)) != NULL)
        return err;
    WB_LIT(w, "}");
    return NULL;
}

/* Up to attempt, in the order of the header (build() and json_dumps write the same). */
static imp_error_t *put_head(wbuf_t *w, const imp_envelope_t *e)
{
    imp_error_t *err;
    if ((err = PUT_FIXED(w, "{\"specversion\":\"1.0\",\"id\":", "id", e->id)) ||
        (err = PUT_FIXED(w, ",\"source\":", "source", e->source)) ||
        (err = PUT_FIXED(w, ",\"type\":", "type", e->type)) ||
        (err = put_time(w, ",\"time\":", "time", e->time_ms)) ||
        (e->subject != NULL && (err = put_text(w, ",\"subject\":", "subject", e->subject))) ||
        (err = PUT_FIXED(w, ",\"datacontenttype\":\"application/json\",\"tenantid\":", "tenantid",
                         e->tenantid)) ||
        (e->traceparent[0] != '\0' &&
         (err = PUT_FIXED(w, ",\"traceparent\":", "traceparent", e->traceparent))) ||
        (e->causationid[0] != '\0' &&
         (err = PUT_FIXED(w, ",\"causationid\":", "causationid", e->causationid))))
        return err;
    WB_LIT(w, ",\"attempt\":");
    put_int(w, e->attempt);
    return NULL;
}

static imp_error_t *put_envelope(wbuf_t *w, const imp_envelope_t *e)
{
    imp_error_t *err;
    if (e->attempt < 0)
        return BAD("attempt is negative");
    if (e->data == NULL)
        return BAD("data is missing");
    if (!json_is_object(e->data))
        return BAD("data is not an object");
    if ((err = put_head(w, e)) ||
        (e->notbefore_ms != 0 &&
         (err = put_time(w, ",\"notbefore\":", "notbefore", e->notbefore_ms))) ||
        (e->has_dlq && (err = put_dlq(w, &e->dlq))))
        return err;
    WB_LIT(w, ",\"data\":");
    if (!put_object(w, e->data, 1))
        return BAD("data cannot be encoded (invalid utf-8, nested too deeply or a cycle)");
    WB_LIT(w, "}");
    return NULL;
}

#ifndef NDEBUG
/* The rules imp_envelope_serialize_trusted takes on trust: those of the fixed attributes. */
static imp_error_t *check_fixed_attributes(const imp_envelope_t *e)
{
    size_t tp = strnlen(e->traceparent, sizeof(e->traceparent));
    imp_error_t *err;
    if ((err = check_fixed(&rule_id, e->id, sizeof(e->id), true)) ||
        (err = check_fixed(&rule_source, e->source, sizeof(e->source), true)) ||
        (err = check_fixed(&rule_type, e->type, sizeof(e->type), true)) ||
        (err = check_fixed(&rule_tenantid, e->tenantid, sizeof(e->tenantid), true)) ||
        (err = check_fixed(&rule_causationid, e->causationid, sizeof(e->causationid), false)) ||
        (tp != 0 && (err = check_traceparent(e->traceparent, tp))))
        return err;
    if (e->has_dlq &&
        ((err = check_fixed(&rule_dlq_worker, e->dlq.worker, sizeof(e->dlq.worker), true)) ||
         (err = check_fixed(&rule_dlq_topic, e->dlq.topic, sizeof(e->dlq.topic), true))))
        return err;
    return NULL;
}

static bool rules_hold(const imp_envelope_t *e)
{
    imp_error_t *err = check_fixed_attributes(e);
    bool ok = err == NULL;
    imp_error_free(err);
    return ok;
}
#endif

imp_error_t *imp_envelope_serialize_trusted(const imp_envelope_t *e, char **out, size_t *len)
{
    assert(rules_hold(e));
    wbuf_t w = {.p = imp_malloc(1024), .cap = 1024};
    imp_error_t *err = put_envelope(&w, e);
    *out = NULL;
    if (len != NULL)
        *len = 0;
    if (err != NULL) {
        free(w.p);
        return err;
    }
    wb_put(&w, "", 1);
    *out = w.p;
    if (len != NULL)
        *len = w.len - 1;
    return NULL;
}

/* ---- Building events ---- */

imp_error_t *imp_envelope_new_event(imp_envelope_t *out, const char *id, const char *source,
                                    const char *type, const char *tenantid, json_t *data)
{
    imp_error_t *err;

    imp_envelope_init(out);
    out->data = data != NULL ? data : json_object();
    if ((err = set_fixed(&rule_id, id, out->id, sizeof(out->id))) ||
        (err = set_fixed(&rule_source, source, out->source, sizeof(out->source))) ||
        (err = set_fixed(&rule_type, type, out->type, sizeof(out->type))) ||
        (err = set_fixed(&rule_tenantid, tenantid, out->tenantid, sizeof(out->tenantid))))
        goto out;
    if (!json_is_object(out->data)) {
        err = BAD("data is not an object");
        goto out;
    }
    out->time_ms = imp_envelope_time_now_ms();
out:
    if (err != NULL)
        imp_envelope_dispose(out);
    return err;
}

imp_error_t *imp_envelope_derive(imp_envelope_t *out, const imp_envelope_t *cause, const char *id,
                                 const char *source, const char *type, json_t *data)
{
    imp_error_t *err = imp_envelope_new_event(out, id, source, type, cause->tenantid, data);
    if (err != NULL)
        return err;
    if (cause->subject != NULL)
        out->subject = imp_strdup(cause->subject);
    memcpy(out->traceparent, cause->traceparent, sizeof(out->traceparent));
    memcpy(out->causationid, cause->id, sizeof(out->causationid));
    return NULL;
}

imp_error_t *imp_envelope_set_dlq(imp_envelope_t *e, const char *worker, imp_err_class_t cls,
                                  const char *reason, const char *topic, int32_t partition,
                                  int64_t offset, int64_t at_ms)
{
    imp_envelope_dlq_t d = {.cls = cls, .partition = partition, .offset = offset, .at_ms = at_ms};
    imp_error_t *err;

    /* Check a scratch copy first so that e is untouched on error. */
    d.reason = (char *)reason;
    if ((err = set_fixed(&rule_dlq_worker, worker, d.worker, sizeof(d.worker))) ||
        (err = set_fixed(&rule_dlq_topic, topic, d.topic, sizeof(d.topic))) ||
        (err = check_dlq(&d)))
        return err;
    free(e->dlq.reason);
    d.reason = imp_strdup(reason);
    e->dlq = d;
    e->has_dlq = true;
    return NULL;
}
