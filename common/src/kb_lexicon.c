/* In-memory postings of a KB version's full-text lexemes, ranked with BM25. */
#include "kb_lexicon.h"

#include "imp/mem.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BM25_K1 1.2
#define BM25_B 0.75
#define HEADING_WEIGHT 2
#define MAX_LEXEME 2048 /* Postgres limits a lexeme to 2 KiB */

typedef struct {
    uint32_t term, row;
    uint16_t tf, tf_head;
} raw_t;

typedef struct {
    uint32_t row;
    uint16_t tf, tf_head;
} posting_t;

struct kb_lexicon {
    /* the dictionary: keys are a configuration digit and the lexeme, NUL-terminated */
    char *pool;
    size_t pool_len, pool_cap;
    uint32_t *key_off;
    size_t nterms, terms_cap;
    uint32_t *table; /* open addressing: term + 1, 0 when empty */
    size_t table_size;
    /* while building */
    raw_t *raw;
    size_t nraw, raw_cap;
    /* per configuration and row: positions in the tsvector (the document length) */
    uint32_t *doclen[KB_LEX_CONFIGS];
    size_t doclen_cap;
    /* once sealed */
    uint32_t nrows;
    uint32_t *off; /* postings of term t: post[off[t] .. off[t + 1]) */
    posting_t *post;
    double avgdl[KB_LEX_CONFIGS];
    bool sealed;
};

kb_lexicon_t *kb_lexicon_new(void)
{
    kb_lexicon_t *lx = imp_calloc(1, sizeof(*lx));
    lx->table_size = 1024;
    lx->table = imp_calloc(lx->table_size, sizeof(*lx->table));
    return lx;
}

void kb_lexicon_free(kb_lexicon_t *lx)
{
    if (lx == NULL)
        return;
    free(lx->pool);
    free(lx->key_off);
    free(lx->table);
    free(lx->raw);
    for (int c = 0; c < KB_LEX_CONFIGS; c++)
        free(lx->doclen[c]);
    free(lx->off);
    free(lx->post);
    free(lx);
}

/* ---- the dictionary ------------------------------------------------------------------- */

static uint64_t hash_key(const char *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

/* The slot of key, or of the empty place where it would go. */
static size_t find_slot(const kb_lexicon_t *lx, const char *key, size_t len)
{
    size_t mask = lx->table_size - 1, i = (size_t)hash_key(key, len) & mask;
    while (lx->table[i] != 0) {
        const char *k = lx->pool + lx->key_off[lx->table[i] - 1];
        if (strlen(k) == len && memcmp(k, key, len) == 0)
            return i;
        i = (i + 1) & mask;
    }
    return i;
}

static void grow_table(kb_lexicon_t *lx)
{
    uint32_t *old = lx->table;
    size_t old_size = lx->table_size;
    lx->table_size *= 2;
    lx->table = imp_calloc(lx->table_size, sizeof(*lx->table));
    for (size_t i = 0; i < old_size; i++)
        if (old[i] != 0) {
            const char *k = lx->pool + lx->key_off[old[i] - 1];
            lx->table[find_slot(lx, k, strlen(k))] = old[i];
        }
    free(old);
}

static uint32_t intern(kb_lexicon_t *lx, const char *key, size_t len)
{
    size_t slot = find_slot(lx, key, len);
    if (lx->table[slot] != 0)
        return lx->table[slot] - 1;
    if (lx->pool_len + len + 1 > lx->pool_cap) {
        lx->pool_cap = (lx->pool_len + len + 1) * 2;
        lx->pool = imp_realloc(lx->pool, lx->pool_cap);
    }
    if (lx->nterms == lx->terms_cap) {
        lx->terms_cap = lx->terms_cap ? lx->terms_cap * 2 : 1024;
        lx->key_off = imp_realloc(lx->key_off, lx->terms_cap * sizeof(*lx->key_off));
    }
    memcpy(lx->pool + lx->pool_len, key, len);
    lx->pool[lx->pool_len + len] = '\0';
    lx->key_off[lx->nterms] = (uint32_t)lx->pool_len;
    lx->pool_len += len + 1;
    lx->table[slot] = (uint32_t)++lx->nterms;
    if (lx->nterms * 2 > lx->table_size)
        grow_table(lx);
    return (uint32_t)(lx->nterms - 1);
}

/* ---- tsvector text -------------------------------------------------------------------- */

typedef struct {
    char lexeme[MAX_LEXEME + 2]; /* the configuration digit first */
    size_t len;
    unsigned tf, tf_head;
} entry_t;

/* One "'lexeme':1A,4" at *p; advances past it. 1 when parsed, 0 at the end, -1 malformed. */
static int next_entry(const char **p, entry_t *e)
{
    const char *s = *p;
    while (*s == ' ')
        s++;
    if (*s == '\0')
        return 0;
    if (*s++ != '\'')
        return -1;
    e->len = 1;
    for (;;) {
        if (*s == '\0')
            return -1;
        if (*s == '\'' && s[1] != '\'')
            break;
        if (*s == '\'' || *s == '\\')
            s++; /* '' and \x stand for the character itself */
        if (*s == '\0' || e->len >= MAX_LEXEME + 1)
            return -1;
        e->lexeme[e->len++] = *s++;
    }
    s++;
    e->tf = e->tf_head = 0;
    if (*s == ':') {
        do {
            s++;
            if (*s < '0' || *s > '9')
                return -1;
            while (*s >= '0' && *s <= '9')
                s++;
            if (*s == 'A')
                e->tf_head++;
            else
                e->tf++;
            if (*s >= 'A' && *s <= 'D')
                s++;
        } while (*s == ',');
    } else {
        e->tf = 1; /* a stripped tsvector: present once */
    }
    if (*s != ' ' && *s != '\0')
        return -1;
    *p = s;
    return 1;
}

static void add_raw(kb_lexicon_t *lx, uint32_t term, uint32_t row, unsigned tf, unsigned tf_head)
{
    if (lx->nraw == lx->raw_cap) {
        lx->raw_cap = lx->raw_cap ? lx->raw_cap * 2 : 4096;
        lx->raw = imp_realloc(lx->raw, lx->raw_cap * sizeof(*lx->raw));
    }
    lx->raw[lx->nraw++] = (raw_t){term, row, (uint16_t)(tf > 65535 ? 65535 : tf),
                                  (uint16_t)(tf_head > 65535 ? 65535 : tf_head)};
}

static void ensure_rows(kb_lexicon_t *lx, size_t rows)
{
    if (rows <= lx->doclen_cap)
        return;
    size_t cap = lx->doclen_cap ? lx->doclen_cap : 1024;
    while (cap < rows)
        cap *= 2;
    for (int c = 0; c < KB_LEX_CONFIGS; c++) {
        lx->doclen[c] = imp_realloc(lx->doclen[c], cap * sizeof(uint32_t));
        memset(lx->doclen[c] + lx->doclen_cap, 0, (cap - lx->doclen_cap) * sizeof(uint32_t));
    }
    lx->doclen_cap = cap;
}

int kb_lexicon_add_tsvector(kb_lexicon_t *lx, uint32_t row, int config, const char *text)
{
    assert(!lx->sealed && config >= 0 && config < KB_LEX_CONFIGS);
    assert(lx->nraw == 0 || lx->raw[lx->nraw - 1].row <= row);
    /* Parse everything first, so a malformed text adds nothing. */
    const char *p = text;
    entry_t e;
    int rc;
    while ((rc = next_entry(&p, &e)) == 1)
        ;
    if (rc < 0)
        return -1;
    ensure_rows(lx, (size_t)row + 1);
    p = text;
    while (next_entry(&p, &e) == 1) {
        e.lexeme[0] = (char)('0' + config);
        add_raw(lx, intern(lx, e.lexeme, e.len), row, e.tf, e.tf_head);
        lx->doclen[config][row] += e.tf + e.tf_head;
    }
    return 0;
}

/* ---- sealing and scoring -------------------------------------------------------------- */

void kb_lexicon_seal(kb_lexicon_t *lx, uint32_t nrows)
{
    if (lx->sealed)
        return;
    ensure_rows(lx, nrows > 0 ? nrows : 1);
    lx->nrows = nrows;
    lx->off = imp_calloc(lx->nterms + 1, sizeof(*lx->off));
    for (size_t i = 0; i < lx->nraw; i++)
        lx->off[lx->raw[i].term + 1]++;
    for (size_t t = 0; t < lx->nterms; t++)
        lx->off[t + 1] += lx->off[t];
    lx->post = imp_malloc((lx->nraw ? lx->nraw : 1) * sizeof(*lx->post));
    uint32_t *fill = imp_malloc((lx->nterms + 1) * sizeof(*fill));
    memcpy(fill, lx->off, (lx->nterms + 1) * sizeof(*fill));
    for (size_t i = 0; i < lx->nraw; i++) /* rows came in order: postings stay sorted */
        lx->post[fill[lx->raw[i].term]++] =
            (posting_t){lx->raw[i].row, lx->raw[i].tf, lx->raw[i].tf_head};
    free(fill);
    free(lx->raw);
    lx->raw = NULL;
    lx->nraw = lx->raw_cap = 0;
    for (int c = 0; c < KB_LEX_CONFIGS; c++) {
        double sum = 0;
        for (uint32_t r = 0; r < nrows; r++)
            sum += lx->doclen[c][r];
        lx->avgdl[c] = nrows > 0 && sum > 0 ? sum / nrows : 1;
    }
    lx->sealed = true;
}

bool kb_lexicon_sealed(const kb_lexicon_t *lx)
{
    return lx->sealed;
}

size_t kb_lexicon_terms(const kb_lexicon_t *lx)
{
    return lx->nterms;
}

size_t kb_lexicon_bytes(const kb_lexicon_t *lx)
{
    size_t postings = lx->sealed ? lx->off[lx->nterms] : lx->nraw;
    return sizeof(*lx) + lx->pool_cap + lx->terms_cap * sizeof(uint32_t) +
           lx->table_size * sizeof(uint32_t) + KB_LEX_CONFIGS * lx->doclen_cap * sizeof(uint32_t) +
           (lx->nterms + 1) * sizeof(uint32_t) + postings * sizeof(posting_t) +
           lx->raw_cap * sizeof(raw_t);
}

size_t kb_lexicon_score(const kb_lexicon_t *lx, int config, const char *lexeme, float *score,
                        uint32_t *touched, size_t *ntouched)
{
    assert(lx->sealed);
    size_t len = strlen(lexeme);
    if (len == 0 || len > MAX_LEXEME || config < 0 || config >= KB_LEX_CONFIGS)
        return 0;
    char key[MAX_LEXEME + 2];
    key[0] = (char)('0' + config);
    memcpy(key + 1, lexeme, len);
    size_t slot = find_slot(lx, key, len + 1);
    if (lx->table[slot] == 0)
        return 0;
    uint32_t t = lx->table[slot] - 1;
    size_t df = lx->off[t + 1] - lx->off[t];
    double n = lx->nrows;
    double idf = log(1.0 + (n - (double)df + 0.5) / ((double)df + 0.5));
    for (uint32_t i = lx->off[t]; i < lx->off[t + 1]; i++) {
        const posting_t *p = &lx->post[i];
        double tf = p->tf + HEADING_WEIGHT * p->tf_head;
        double norm =
            BM25_K1 * (1.0 - BM25_B + BM25_B * lx->doclen[config][p->row] / lx->avgdl[config]);
        if (score[p->row] == 0)
            touched[(*ntouched)++] = p->row;
        score[p->row] += (float)(idf * tf * (BM25_K1 + 1.0) / (tf + norm));
    }
    return df;
}
