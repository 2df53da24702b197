/* The knowledge-base chunker: markdown, plain text and Q&A sources into sized chunks that
 * keep their heading path, plus the UTF-8 text model the embedder shares. */
#include "imp/kb.h"

#include "imp/mem.h"

#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HEADING_SEP " > "
#define MAX_HEADING_LEVEL 6

/* ---- UTF-8 ---------------------------------------------------------------------------- */

/* Length of the valid sequence at s[pos], 0 when invalid (or NUL). */
static size_t utf8_seq_len(const unsigned char *s, size_t len, size_t pos)
{
    unsigned char b = s[pos];
    size_t n;
    uint32_t min, cp;
    if (b == 0)
        return 0;
    if (b < 0x80)
        return 1;
    if ((b & 0xe0) == 0xc0)
        n = 2, min = 0x80, cp = b & 0x1f;
    else if ((b & 0xf0) == 0xe0)
        n = 3, min = 0x800, cp = b & 0x0f;
    else if ((b & 0xf8) == 0xf0)
        n = 4, min = 0x10000, cp = b & 0x07;
    else
        return 0;
    if (len - pos < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[pos + i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[pos + i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

bool imp_kb_utf8_valid(const char *text, size_t len, size_t *bad_offset)
{
    const unsigned char *s = (const unsigned char *)text;
    for (size_t pos = 0; pos < len;) {
        size_t n = utf8_seq_len(s, len, pos);
        if (n == 0) {
            if (bad_offset != NULL)
                *bad_offset = pos;
            return false;
        }
        pos += n;
    }
    return true;
}

uint32_t imp_kb_utf8_next(const char *text, size_t len, size_t *pos)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t p = *pos;
    assert(p < len);
    if (s[p] < 0x80) {
        *pos = p + 1;
        return s[p];
    }
    size_t n = utf8_seq_len(s, len, p);
    if (n == 0) {
        *pos = p + 1;
        return 0xfffd;
    }
    uint32_t cp = s[p] & (0xff >> (n + 1));
    for (size_t i = 1; i < n; i++)
        cp = (cp << 6) | (s[p + i] & 0x3f);
    *pos = p + n;
    return cp;
}

size_t imp_kb_utf8_count(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xc0) != 0x80;
    return n;
}

bool imp_kb_is_word_cp(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    if (cp < 0xc0 || cp == 0xd7 || cp == 0xf7)
        return false; /* Latin-1 signs, NBSP */
    if (cp >= 0x2000 && cp <= 0x2bff)
        return false; /* punctuation, super/subscripts, currency, letterlike, arrows, symbols */
    if (cp >= 0x2e00 && cp <= 0x2e7f)
        return false; /* supplemental punctuation */
    if (cp >= 0x3000 && cp <= 0x303f)
        return false; /* CJK punctuation */
    if (cp >= 0xe000 && cp <= 0xf8ff)
        return false; /* private use */
    if (cp >= 0xfe00 && cp <= 0xfe0f)
        return false; /* variation selectors */
    if (cp >= 0xfff0 && cp <= 0xffff)
        return false; /* specials, U+FFFD */
    if (cp >= 0x1f000 && cp <= 0x1faff)
        return false; /* emoji and pictographs */
    return true;
}

uint32_t imp_kb_fold_cp(uint32_t cp)
{
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    if (cp >= 0xc0 && cp <= 0xde && cp != 0xd7)
        return cp + 32;
    if (cp == 0x401 || cp == 0x451 || cp == 0x415)
        return 0x435; /* Ё ё Е -> е */
    if (cp >= 0x410 && cp <= 0x42f)
        return cp + 32;
    if (cp >= 0x400 && cp <= 0x40f)
        return cp + 80;
    switch (cp) {
    case 0x4d8: /* Ә */
    case 0x492: /* Ғ */
    case 0x49a: /* Қ */
    case 0x4a2: /* Ң */
    case 0x4e8: /* Ө */
    case 0x4b0: /* Ұ */
    case 0x4ae: /* Ү */
    case 0x4ba: /* Һ */
        return cp + 1;
    case 0x4c0: /* Ӏ */
        return 0x4cf;
    default:
        return cp;
    }
}

/* ---- stop words -------------------------------------------------------------------------- */

/* Function and question words of Russian and English that say nothing about the topic
 * ("what do you", "можно ли у вас"), folded (lower case, ё → е), sorted by strcmp. */
static const char *const stopwords[] = {
    "a",       "about",   "am",    "an",           "and",        "any",    "are",    "as",
    "at",      "be",      "but",   "by",           "can",        "could",  "did",    "do",
    "does",    "for",     "from",  "get",          "have",       "hello",  "hey",    "hi",
    "how",     "i",       "if",    "im",           "in",         "is",     "it",     "me",
    "my",      "of",      "on",    "or",           "our",        "please", "pls",    "r",
    "so",      "some",    "that",  "the",          "there",      "this",   "to",     "u",
    "ur",      "us",      "was",   "we",           "what",       "which",  "who",    "why",
    "will",    "with",    "would", "you",          "your",       "а",      "без",    "бы",
    "в",       "вам",     "вас",   "ваш",          "ваша",       "ваше",   "ваши",   "вы",
    "да",      "для",     "до",    "добрый",       "его",        "ее",     "если",   "есть",
    "еще",     "же",      "за",    "здравствуйте", "и",          "из",     "или",    "их",
    "к",       "как",     "какая", "какие",        "какое",      "какой",  "ли",     "мне",
    "могу",    "можно",   "мы",    "на",           "не",         "нет",    "но",     "о",
    "об",      "от",      "по",    "подскажите",   "пожалуйста", "при",    "привет", "с",
    "скажите", "сколько", "со",    "так",          "там",        "то",     "у",      "уже",
    "хотел",   "хотела",  "хочу",  "чем",          "что",        "это",    "я",
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool imp_kb_is_stopword(const char *folded)
{
    return bsearch(&folded, stopwords, IMP_ARRAY_LEN(stopwords), sizeof(stopwords[0]), cmp_str) !=
           NULL;
}

/* Append the UTF-8 of cp. */
static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

char *imp_kb_query_terms(const char *query)
{
    size_t len = strlen(query), pos = 0, n = 0, m = 0;
    char *folded = imp_malloc(4 * len + 1); /* an invalid byte becomes 3 bytes of U+FFFD */
    bool in_word = false;
    while (pos < len) {
        uint32_t cp = imp_kb_fold_cp(imp_kb_utf8_next(query, len, &pos));
        bool word = imp_kb_is_word_cp(cp);
        if (word && !in_word && n > 0)
            folded[n++] = ' ';
        if (word)
            n += put_utf8(folded + n, cp);
        in_word = word;
    }
    folded[n] = '\0';
    char *all = imp_strdup(folded), *out = imp_malloc(n + 1), *save = NULL;
    for (char *w = strtok_r(folded, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) {
        if (imp_kb_is_stopword(w))
            continue;
        if (m > 0)
            out[m++] = ' ';
        memcpy(out + m, w, strlen(w));
        m += strlen(w);
    }
    out[m] = '\0';
    free(folded);
    if (m == 0) { /* only stop words: keep them rather than search for nothing */
        free(out);
        return all;
    }
    free(all);
    return out;
}

/* ---- formats and settings ------------------------------------------------------------- */

static const char *const format_names[] = {"markdown", "text", "qa_csv", "qa_json"};

const char *imp_kb_format_name(imp_kb_format_t f)
{
    return (size_t)f < IMP_ARRAY_LEN(format_names) ? format_names[f] : "unknown";
}

int imp_kb_format_parse(const char *name, imp_kb_format_t *out)
{
    for (size_t i = 0; name != NULL && i < IMP_ARRAY_LEN(format_names); i++)
        if (strcmp(name, format_names[i]) == 0) {
            *out = (imp_kb_format_t)i;
            return 0;
        }
    return -1;
}

imp_error_t *imp_kb_chunk_settings_validate(const imp_kb_chunk_settings_t *s)
{
    if (s->target_chars < 50 || s->target_chars > 8000)
        return imp_error_new(IMP_ERR_POISON, "kb_settings",
                             "target_chars must be between 50 and 8000, not %zu", s->target_chars);
    if (s->max_chars < s->target_chars || s->max_chars > 16000)
        return imp_error_new(IMP_ERR_POISON, "kb_settings",
                             "max_chars must be between target_chars (%zu) and 16000, not %zu",
                             s->target_chars, s->max_chars);
    if (s->overlap_chars > s->target_chars / 2)
        return imp_error_new(IMP_ERR_POISON, "kb_settings",
                             "overlap_chars must be at most half of target_chars (%zu), not %zu",
                             s->target_chars / 2, s->overlap_chars);
    return NULL;
}

char *imp_kb_chunk_settings_json(const imp_kb_chunk_settings_t *s)
{
    return imp_asprintf("{\"target_chars\":%zu,\"max_chars\":%zu,\"overlap_chars\":%zu}",
                        s->target_chars, s->max_chars, s->overlap_chars);
}

static imp_error_t *settings_member(json_t *obj, const char *key, size_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return NULL;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return imp_error_new(IMP_ERR_POISON, "kb_settings", "%s must be a non-negative integer",
                             key);
    *out = (size_t)json_integer_value(v);
    return NULL;
}

imp_error_t *imp_kb_chunk_settings_parse(const char *json, imp_kb_chunk_settings_t *out)
{
    imp_kb_chunk_settings_t s = IMP_KB_CHUNK_DEFAULTS;
    json_error_t jerr;
    json_t *obj = json_loads(json != NULL ? json : "", 0, &jerr);
    imp_error_t *err = NULL;
    if (!json_is_object(obj)) {
        err = imp_error_new(IMP_ERR_POISON, "kb_settings", "chunk settings must be a JSON object");
        goto out;
    }
    if ((err = settings_member(obj, "target_chars", &s.target_chars)) != NULL ||
        (err = settings_member(obj, "max_chars", &s.max_chars)) != NULL ||
        (err = settings_member(obj, "overlap_chars", &s.overlap_chars)) != NULL ||
        (err = imp_kb_chunk_settings_validate(&s)) != NULL)
        goto out;
    *out = s;
out:
    json_decref(obj);
    return err;
}

char *imp_kb_chunk_document(const char *heading, const char *text)
{
    if (heading == NULL || heading[0] == '\0')
        return imp_strdup(text);
    return imp_asprintf("%s\n%s", heading, text);
}

/* ---- units: the pieces a section is packed from ----------------------------------------
 *
 * A unit is a trimmed byte range of the buffer being chunked, with its code-point position
 * counted from the section's first unit, so the size of any run of consecutive units (gaps
 * included) is one subtraction. */

typedef struct {
    size_t s, e;     /* bytes */
    size_t cps, cpe; /* code points, relative to the section */
} unit_t;

typedef struct {
    const char *buf;
    size_t len;
    unit_t *u;
    size_t n, cap;
} units_t;

typedef struct {
    const imp_kb_chunk_settings_t *set;
    imp_kb_chunks_t *out;
    size_t cap;
} chunker_t;

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void trim(const char *b, size_t *s, size_t *e)
{
    while (*s < *e && is_space(b[*s]))
        (*s)++;
    while (*e > *s && is_space(b[*e - 1]))
        (*e)--;
}

static void units_reset(units_t *u, const char *buf, size_t len)
{
    u->buf = buf;
    u->len = len;
    u->n = 0;
}

static void unit_add(units_t *u, size_t s, size_t e)
{
    trim(u->buf, &s, &e);
    if (s == e)
        return;
    if (u->n == u->cap) {
        u->cap = u->cap ? u->cap * 2 : 64;
        u->u = imp_realloc(u->u, u->cap * sizeof(*u->u));
    }
    unit_t *prev = u->n ? &u->u[u->n - 1] : NULL;
    assert(prev == NULL || prev->e <= s);
    size_t cps = prev ? prev->cpe + imp_kb_utf8_count(u->buf + prev->e, s - prev->e) : 0;
    u->u[u->n++] = (unit_t){s, e, cps, cps + imp_kb_utf8_count(u->buf + s, e - s)};
}

static size_t span_chars(const units_t *u, size_t i, size_t j)
{
    return u->u[j].cpe - u->u[i].cps;
}

/* A word longer than max: cut every max code points. */
static void add_hard_cut(units_t *u, size_t s, size_t e, size_t max)
{
    while (s < e) {
        size_t p = s, n = 0;
        while (p < e && n < max) {
            imp_kb_utf8_next(u->buf, e, &p);
            n++;
        }
        unit_add(u, s, p);
        s = p;
    }
}

static void add_words(units_t *u, size_t s, size_t e, size_t max)
{
    const char *b = u->buf;
    while (s < e) {
        while (s < e && is_space(b[s]))
            s++;
        size_t w = s;
        while (w < e && !is_space(b[w]))
            w++;
        if (w > s) {
            if (imp_kb_utf8_count(b + s, w - s) <= max)
                unit_add(u, s, w);
            else
                add_hard_cut(u, s, w, max);
        }
        s = w;
    }
}

static bool is_lower_start(const char *b, size_t p, size_t e)
{
    if (p >= e)
        return false;
    uint32_t cp = imp_kb_utf8_next(b, e, &p);
    return (cp >= 'a' && cp <= 'z') || (cp >= 0x430 && cp <= 0x44f) || cp == 0x451;
}

/* Where the sentence starting at s ends (exclusive, before the whitespace that follows its
 * terminator), or e. Terminators: . ! ? … followed by optional closing quotes or brackets
 * and whitespace; a line break. A period followed by a lower-case letter ("т.е. так",
 * "e.g. this") does not end a sentence. */
static size_t sentence_end(const char *b, size_t s, size_t e)
{
    for (size_t p = s; p < e;) {
        size_t q = p;
        uint32_t cp = imp_kb_utf8_next(b, e, &q);
        if (cp == '\n')
            return p;
        if (cp == '.' || cp == '!' || cp == '?' || cp == 0x2026) {
            size_t end = q;
            while (end < e && strchr(")]}\"'", b[end]) != NULL)
                end++;
            if (end + 2 <= e && (unsigned char)b[end] == 0xc2 && (unsigned char)b[end + 1] == 0xbb)
                end += 2; /* » */
            if (end == e)
                return e;
            if (is_space(b[end])) {
                size_t next = end;
                while (next < e && is_space(b[next]))
                    next++;
                if (cp != '.' || !is_lower_start(b, next, e))
                    return end;
            }
        }
        p = q;
    }
    return e;
}

/* A block: one unit when it fits in max, else its sentences, else their words. */
static void add_block(units_t *u, size_t s, size_t e, size_t max)
{
    trim(u->buf, &s, &e);
    if (s == e)
        return;
    if (imp_kb_utf8_count(u->buf + s, e - s) <= max) {
        unit_add(u, s, e);
        return;
    }
    while (s < e) {
        size_t end = sentence_end(u->buf, s, e);
        if (end <= s)
            end = e;
        size_t ts = s, te = end;
        trim(u->buf, &ts, &te);
        if (ts < te) {
            if (imp_kb_utf8_count(u->buf + ts, te - ts) <= max)
                unit_add(u, ts, te);
            else
                add_words(u, ts, te, max);
        }
        s = end;
        while (s < e && is_space(u->buf[s]))
            s++;
    }
}

/* ---- packing units into chunks -------------------------------------------------------- */

static size_t count_tokens(const char *s, size_t len)
{
    size_t n = 0, p = 0;
    bool in = false;
    while (p < len) {
        bool w = imp_kb_is_word_cp(imp_kb_utf8_next(s, len, &p));
        n += w && !in;
        in = w;
    }
    return n;
}

static void emit(chunker_t *c, const char *heading, const char *text, size_t tlen, size_t start,
                 size_t end, size_t chars)
{
    if (c->out->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->out->items = imp_realloc(c->out->items, c->cap * sizeof(*c->out->items));
    }
    imp_kb_chunk_t *k = &c->out->items[c->out->n++];
    k->heading = imp_strdup(heading);
    k->text = imp_strndup(text, tlen);
    k->start = start;
    k->end = end;
    k->chars = chars;
    k->tokens = count_tokens(heading, strlen(heading)) + count_tokens(text, tlen);
}

/* The first unit of the chunk after the one ending at unit j, whose successor is unit k:
 * the earliest unit after first whose run to j fits in overlap, if the carried run plus
 * unit k still fits in max; else k. */
static size_t carry_from(const units_t *u, size_t first, size_t j, size_t k, size_t overlap,
                         size_t max)
{
    size_t m = k;
    for (size_t i = j; i > first && span_chars(u, i, j) <= overlap; i--)
        m = i;
    if (m < k && span_chars(u, m, k) > max)
        m = k;
    return m;
}

/* Pack the units into chunks of at most target (a single unit may reach max). range: the
 * byte range every chunk reports (Q&A), or NULL for the units' own range. */
static void pack(chunker_t *c, const units_t *u, const char *heading, size_t target, size_t max,
                 size_t overlap, const size_t range[2])
{
    size_t i = 0, k = 0;
    while (i < u->n) {
        size_t j = k; /* the chunk runs from i to at least k, the first unit it has not seen */
        while (j + 1 < u->n && span_chars(u, i, j + 1) <= target)
            j++;
        const unit_t *a = &u->u[i], *z = &u->u[j];
        emit(c, heading, u->buf + a->s, z->e - a->s, range ? range[0] : a->s,
             range ? range[1] : z->e, span_chars(u, i, j));
        if (j + 1 >= u->n)
            break;
        k = j + 1;
        i = carry_from(u, i, j, k, overlap, max);
    }
}

/* ---- markdown and plain text ---------------------------------------------------------- */

typedef struct {
    int level;
    char *text;
} heading_t;

typedef struct {
    chunker_t *c;
    units_t units;
    heading_t stack[MAX_HEADING_LEVEL];
    size_t depth;
    char *path;
} prose_t;

static void flush_section(prose_t *p)
{
    const imp_kb_chunk_settings_t *s = p->c->set;
    pack(p->c, &p->units, p->path ? p->path : "", s->target_chars, s->max_chars, s->overlap_chars,
         NULL);
    units_reset(&p->units, p->units.buf, p->units.len);
}

static void set_heading(prose_t *p, int level, const char *text, size_t len)
{
    while (p->depth > 0 && p->stack[p->depth - 1].level >= level)
        free(p->stack[--p->depth].text);
    p->stack[p->depth++] = (heading_t){level, imp_strndup(text, len)};
    free(p->path);
    size_t total = 1;
    for (size_t i = 0; i < p->depth; i++)
        total += strlen(p->stack[i].text) + strlen(HEADING_SEP);
    p->path = imp_malloc(total);
    p->path[0] = '\0';
    for (size_t i = 0; i < p->depth; i++) {
        if (i > 0)
            strcat(p->path, HEADING_SEP);
        strcat(p->path, p->stack[i].text);
    }
}

static size_t indent_of(const char *b, size_t s, size_t e)
{
    size_t p = s;
    while (p < e && b[p] == ' ')
        p++;
    return p - s;
}

/* "# Title" (1-6 '#', up to 3 spaces of indent): level and title range, else 0. */
static int atx_heading(const char *b, size_t s, size_t e, size_t *ts, size_t *te)
{
    size_t p = s + indent_of(b, s, e);
    if (p - s > 3)
        return 0;
    int level = 0;
    while (p < e && b[p] == '#' && level <= MAX_HEADING_LEVEL)
        p++, level++;
    if (level == 0 || level > MAX_HEADING_LEVEL || (p < e && b[p] != ' ' && b[p] != '\t'))
        return 0;
    size_t a = p, z = e;
    trim(b, &a, &z);
    size_t closing = z; /* an optional closing run of '#' preceded by a space */
    while (closing > a && b[closing - 1] == '#')
        closing--;
    if (closing < z && (closing == a || b[closing - 1] == ' ' || b[closing - 1] == '\t')) {
        z = closing;
        trim(b, &a, &z);
    }
    *ts = a;
    *te = z;
    return level;
}

/* A code fence ("```" or "~~~", three or more, up to 3 spaces of indent): its character. */
static char fence_char(const char *b, size_t s, size_t e)
{
    size_t p = s + indent_of(b, s, e);
    if (p - s > 3 || e - p < 3)
        return 0;
    char f = b[p];
    if ((f != '`' && f != '~') || b[p + 1] != f || b[p + 2] != f)
        return 0;
    return f;
}

static bool is_list_item(const char *b, size_t s, size_t e)
{
    size_t p = s;
    while (p < e && (b[p] == ' ' || b[p] == '\t'))
        p++;
    if (p < e && (b[p] == '-' || b[p] == '*' || b[p] == '+'))
        return p + 1 < e && (b[p + 1] == ' ' || b[p + 1] == '\t');
    size_t d = p;
    while (d < e && d - p < 9 && b[d] >= '0' && b[d] <= '9')
        d++;
    return d > p && d + 1 < e && (b[d] == '.' || b[d] == ')') &&
           (b[d + 1] == ' ' || b[d + 1] == '\t');
}

static bool is_blank(const char *b, size_t s, size_t e)
{
    trim(b, &s, &e);
    return s == e;
}

static void chunk_prose(chunker_t *c, const char *b, size_t len, bool markdown)
{
    prose_t p = {.c = c};
    units_reset(&p.units, b, len);
    size_t block = SIZE_MAX; /* start of the open block */
    char fence = 0;
    for (size_t ls = 0; ls < len;) {
        const char *nl = memchr(b + ls, '\n', len - ls);
        size_t le = nl ? (size_t)(nl - b) : len, next = nl ? le + 1 : len;
        size_t ts, te;
        int level;
        if (fence) {
            if (fence_char(b, ls, le) == fence) {
                add_block(&p.units, block, le, c->set->max_chars);
                block = SIZE_MAX;
                fence = 0;
            }
        } else if (is_blank(b, ls, le)) {
            if (block != SIZE_MAX)
                add_block(&p.units, block, ls, c->set->max_chars);
            block = SIZE_MAX;
        } else if (markdown && (level = atx_heading(b, ls, le, &ts, &te)) > 0) {
            if (block != SIZE_MAX)
                add_block(&p.units, block, ls, c->set->max_chars);
            block = SIZE_MAX;
            flush_section(&p);
            set_heading(&p, level, b + ts, te - ts);
        } else if (markdown && fence_char(b, ls, le)) {
            if (block != SIZE_MAX)
                add_block(&p.units, block, ls, c->set->max_chars);
            block = ls;
            fence = fence_char(b, ls, le);
        } else if (is_list_item(b, ls, le)) {
            if (block != SIZE_MAX)
                add_block(&p.units, block, ls, c->set->max_chars);
            block = ls;
        } else if (block == SIZE_MAX) {
            block = ls;
        }
        ls = next;
    }
    if (block != SIZE_MAX)
        add_block(&p.units, block, len, c->set->max_chars);
    flush_section(&p);
    for (size_t i = 0; i < p.depth; i++)
        free(p.stack[i].text);
    free(p.path);
    free(p.units.u);
}

/* ---- Q&A pairs ------------------------------------------------------------------------ */

/* One pair: one chunk when question and answer fit in max, else the answer is split and
 * every part keeps the question. */
static void emit_pair(chunker_t *c, units_t *scratch, const char *q, const char *a, size_t start,
                      size_t end)
{
    const imp_kb_chunk_settings_t *s = c->set;
    size_t qs = 0, qe = strlen(q), as = 0, ae = strlen(a);
    trim(q, &qs, &qe);
    trim(a, &as, &ae);
    char *question = imp_strndup(q + qs, qe - qs);
    size_t qchars = imp_kb_utf8_count(question, strlen(question));
    size_t achars = imp_kb_utf8_count(a + as, ae - as);
    size_t range[2] = {start, end};
    if (qchars + 1 + achars <= s->max_chars) {
        emit(c, question, a + as, ae - as, start, end, achars);
    } else {
        size_t budget = s->max_chars > qchars + 1 ? s->max_chars - qchars - 1 : 0;
        if (budget < s->max_chars / 2)
            budget = s->max_chars / 2; /* a very long question: parts of half the max */
        size_t target = budget < s->target_chars ? budget : s->target_chars;
        units_reset(scratch, a, ae);
        add_block(scratch, as, ae, budget);
        pack(c, scratch, question, target, budget, s->overlap_chars, range);
    }
    free(question);
}

typedef struct {
    const char *b;
    size_t len, pos;
    size_t line;
} csv_t;

/* One field into *out (heap). Returns 1 when the record goes on (a comma followed), 0 when
 * it ended (line break or end of input), -1 on error (message in err). */
static int csv_field(csv_t *r, char **out, imp_error_t **err, size_t record)
{
    const char *b = r->b;
    size_t cap = 64, n = 0;
    char *f = imp_malloc(cap);
    if (r->pos < r->len && b[r->pos] == '"') {
        size_t open_line = r->line;
        r->pos++;
        for (;;) {
            if (r->pos >= r->len) {
                *err = imp_error_new(IMP_ERR_POISON, "kb_csv",
                                     "record %zu (line %zu): unterminated quoted field", record,
                                     open_line);
                free(f);
                return -1;
            }
            char ch = b[r->pos++];
            if (ch == '"') {
                if (r->pos < r->len && b[r->pos] == '"')
                    r->pos++;
                else
                    break;
            }
            if (ch == '\n')
                r->line++;
            if (n + 1 >= cap)
                f = imp_realloc(f, cap *= 2);
            f[n++] = ch;
        }
        while (r->pos < r->len && (b[r->pos] == ' ' || b[r->pos] == '\t'))
            r->pos++;
        if (r->pos < r->len && b[r->pos] != ',' && b[r->pos] != '\n' && b[r->pos] != '\r') {
            *err = imp_error_new(IMP_ERR_POISON, "kb_csv",
                                 "record %zu (line %zu): unexpected character after a closing "
                                 "quote",
                                 record, r->line);
            free(f);
            return -1;
        }
    } else {
        while (r->pos < r->len && b[r->pos] != ',' && b[r->pos] != '\n') {
            if (n + 1 >= cap)
                f = imp_realloc(f, cap *= 2);
            f[n++] = b[r->pos++];
        }
        if (n > 0 && f[n - 1] == '\r' && (r->pos >= r->len || b[r->pos] == '\n'))
            n--;
    }
    f[n] = '\0';
    *out = f;
    if (r->pos < r->len && b[r->pos] == ',') {
        r->pos++;
        return 1;
    }
    if (r->pos < r->len && b[r->pos] == '\r')
        r->pos++;
    if (r->pos < r->len && b[r->pos] == '\n') {
        r->pos++;
        r->line++;
    }
    return 0;
}

static bool is_header_word(const char *f, const char *latin, const char *const *cyrillic)
{
    size_t s = 0, e = strlen(f);
    trim(f, &s, &e);
    if (e - s == strlen(latin) && strncasecmp(f + s, latin, e - s) == 0)
        return true;
    for (size_t i = 0; cyrillic[i] != NULL; i++)
        if (e - s == strlen(cyrillic[i]) && memcmp(f + s, cyrillic[i], e - s) == 0)
            return true;
    return false;
}

static bool csv_is_header(char *const *fields)
{
    static const char *const q[] = {"вопрос", "Вопрос", "ВОПРОС", NULL};
    static const char *const a[] = {"ответ", "Ответ", "ОТВЕТ", NULL};
    return is_header_word(fields[0], "question", q) && is_header_word(fields[1], "answer", a);
}

static bool field_blank(const char *f)
{
    size_t s = 0, e = strlen(f);
    trim(f, &s, &e);
    return s == e;
}

static imp_error_t *chunk_csv(chunker_t *c, const char *b, size_t len)
{
    csv_t r = {.b = b, .len = len, .line = 1};
    units_t scratch = {0};
    imp_error_t *err = NULL;
    char *fields[3] = {NULL, NULL, NULL};
    size_t record = 0;
    while (r.pos < r.len) {
        size_t line_end = r.pos;
        while (line_end < r.len && b[line_end] != '\n')
            line_end++;
        if (is_blank(b, r.pos, line_end)) { /* blank lines between records */
            r.pos = line_end < r.len ? line_end + 1 : line_end;
            r.line++;
            continue;
        }
        record++;
        size_t start = r.pos, line = r.line, nf = 0;
        int more;
        do {
            char *f = NULL;
            if ((more = csv_field(&r, &f, &err, record)) < 0)
                goto out;
            if (nf < 3)
                fields[nf] = f;
            else
                free(f);
            nf++;
        } while (more == 1);
        size_t end = r.pos;
        while (end > start && (b[end - 1] == '\n' || b[end - 1] == '\r'))
            end--;
        if (nf != 2) {
            err = imp_error_new(IMP_ERR_POISON, "kb_csv",
                                "record %zu (line %zu): expected 2 fields (question,answer), got "
                                "%zu",
                                record, line, nf);
            goto out;
        }
        if (!(record == 1 && csv_is_header(fields))) {
            if (field_blank(fields[0]) || field_blank(fields[1])) {
                err = imp_error_new(IMP_ERR_POISON, "kb_csv", "record %zu (line %zu): empty %s",
                                    record, line, field_blank(fields[0]) ? "question" : "answer");
                goto out;
            }
            emit_pair(c, &scratch, fields[0], fields[1], start, end);
        }
        for (size_t i = 0; i < 3; i++) {
            free(fields[i]);
            fields[i] = NULL;
        }
    }
out:
    for (size_t i = 0; i < 3; i++)
        free(fields[i]);
    free(scratch.u);
    return err;
}

/* Byte ranges of the elements of the top-level array of a document already known to be
 * valid JSON. */
static size_t json_skip_value(const char *b, size_t len, size_t p)
{
    int depth = 0;
    bool in_str = false;
    for (; p < len; p++) {
        char ch = b[p];
        if (in_str) {
            if (ch == '\\')
                p++;
            else if (ch == '"') {
                in_str = false;
                if (depth == 0)
                    return p + 1;
            }
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (depth == 0)
                return p; /* the end of a scalar before the closing bracket */
            if (--depth == 0)
                return p + 1;
        } else if (depth == 0 && (ch == ',' || is_space(ch))) {
            return p;
        }
    }
    return p;
}

static const char *pair_member(json_t *obj, const char *a, const char *b)
{
    json_t *v = json_object_get(obj, a);
    if (v == NULL)
        v = json_object_get(obj, b);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static imp_error_t *chunk_json(chunker_t *c, const char *b, size_t len)
{
    json_error_t jerr;
    json_t *doc = json_loadb(b, len, 0, &jerr);
    units_t scratch = {0};
    imp_error_t *err = NULL;
    if (doc == NULL) {
        err = imp_error_new(IMP_ERR_POISON, "kb_json", "malformed JSON at line %d column %d: %s",
                            jerr.line, jerr.column, jerr.text);
        goto out;
    }
    if (!json_is_array(doc)) {
        err = imp_error_new(IMP_ERR_POISON, "kb_json",
                            "a Q&A list must be a JSON array of {\"q\", \"a\"} objects");
        goto out;
    }
    size_t p = 0;
    while (p < len && b[p] != '[')
        p++;
    p++;
    for (size_t i = 0; i < json_array_size(doc); i++) {
        while (p < len && (is_space(b[p]) || b[p] == ','))
            p++;
        size_t start = p, end = json_skip_value(b, len, p);
        json_t *item = json_array_get(doc, i);
        const char *q = pair_member(item, "q", "question");
        const char *a = pair_member(item, "a", "answer");
        if (q == NULL || a == NULL || field_blank(q) || field_blank(a)) {
            err = imp_error_new(IMP_ERR_POISON, "kb_json",
                                "item %zu: needs non-empty string members \"q\" and \"a\"", i + 1);
            goto out;
        }
        emit_pair(c, &scratch, q, a, start, end);
        p = end;
    }
out:
    json_decref(doc);
    free(scratch.u);
    return err;
}

/* ---- entry point ---------------------------------------------------------------------- */

imp_error_t *imp_kb_chunk(imp_kb_format_t format, const char *text, size_t len,
                          const imp_kb_chunk_settings_t *settings, imp_kb_chunks_t *out)
{
    imp_kb_chunk_settings_t defaults = IMP_KB_CHUNK_DEFAULTS;
    chunker_t c = {.set = settings ? settings : &defaults, .out = out};
    imp_error_t *err = NULL;
    size_t bad = 0;
    out->items = NULL;
    out->n = 0;
    if ((err = imp_kb_chunk_settings_validate(c.set)) != NULL)
        return err;
    if (len > IMP_KB_SOURCE_MAX)
        return imp_error_new(IMP_ERR_POISON, "kb_too_large",
                             "source is %zu bytes, the limit is %d (512 KiB)", len,
                             IMP_KB_SOURCE_MAX);
    if (!imp_kb_utf8_valid(text, len, &bad))
        return imp_error_new(IMP_ERR_POISON, "kb_utf8",
                             "source is not valid UTF-8 text (byte offset %zu)", bad);
    switch (format) {
    case IMP_KB_MARKDOWN:
    case IMP_KB_TEXT:
        chunk_prose(&c, text, len, format == IMP_KB_MARKDOWN);
        break;
    case IMP_KB_QA_CSV:
        err = chunk_csv(&c, text, len);
        break;
    case IMP_KB_QA_JSON:
        if (!is_blank(text, 0, len))
            err = chunk_json(&c, text, len);
        break;
    default:
        err = imp_error_new(IMP_ERR_POISON, "kb_format", "unknown source format %d", (int)format);
    }
    if (err != NULL)
        imp_kb_chunks_dispose(out);
    return err;
}

void imp_kb_chunks_dispose(imp_kb_chunks_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->items[i].heading);
        free(c->items[i].text);
    }
    free(c->items);
    c->items = NULL;
    c->n = 0;
}
