/* The embedder interface and the built-in feature-hashing embedder (no model, deterministic). */
#include "imp/embed.h"

#include "imp/kb.h"
#include "imp/mem.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HASH_MODEL "hash-ngram-v1"
#define NGRAM_MIN 3
#define NGRAM_MAX 5
#define BOUNDARY_START 0x02 /* padding code points around a word: "<word>" */
#define BOUNDARY_END 0x03
#define WEIGHT_WORD 2.0f
#define WEIGHT_NGRAM 1.0f
/* Function words carry little meaning and are in every question ("what do you", "как у
 * вас"): their features count this much of their weight. */
#define WEIGHT_STOPWORD 0.15f

/* ---- the interface -------------------------------------------------------------------- */

const char *imp_embedder_name(const imp_embedder_t *e)
{
    return e->name;
}

const char *imp_embedder_model(const imp_embedder_t *e)
{
    return e->model;
}

size_t imp_embedder_dim(const imp_embedder_t *e)
{
    return e->dim;
}

imp_error_t *imp_embedder_embed(imp_embedder_t *e, const char *const *texts, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++)
        if (texts[i] == NULL)
            return imp_error_new(IMP_ERR_POISON, "embed_input", "text %zu is NULL", i);
    if (n == 0)
        return NULL;
    return e->embed(e, texts, n, out);
}

void imp_embedder_free(imp_embedder_t *e)
{
    if (e != NULL)
        e->destroy(e);
}

double imp_embed_normalize(float *v, size_t dim)
{
    double sum = 0;
    for (size_t i = 0; i < dim; i++)
        sum += (double)v[i] * v[i];
    double norm = sqrt(sum);
    if (norm > 0) {
        float inv = (float)(1.0 / norm);
        for (size_t i = 0; i < dim; i++)
            v[i] *= inv;
    }
    return norm;
}

/* ---- hashing -------------------------------------------------------------------------- */

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv_byte(uint64_t h, uint8_t b)
{
    return (h ^ b) * FNV_PRIME;
}

/* Code points are hashed as 4 little-endian bytes each, so the result does not depend on
 * the machine. */
static uint64_t fnv_cps(uint64_t h, const uint32_t *cp, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (int s = 0; s < 32; s += 8)
            h = fnv_byte(h, (uint8_t)(cp[i] >> s));
    return h;
}

/* MurmurHash3's finaliser: FNV-1a's low bits are weak for short keys. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

typedef struct {
    uint64_t h;
    float w;
} feature_t;

typedef struct {
    feature_t *f;
    size_t n, cap;
    uint32_t *cps; /* the text's folded code points */
    size_t ncps, cpcap;
} scratch_t;

static void add_feature(scratch_t *s, uint64_t h, float w)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->f = imp_realloc(s->f, s->cap * sizeof(*s->f));
    }
    s->f[s->n++] = (feature_t){mix64(h), w};
}

static bool word_is_stopword(const uint32_t *w, size_t len)
{
    char buf[64];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        uint32_t cp = w[i];
        if (n + 4 >= sizeof(buf))
            return false;
        if (cp < 0x80) {
            buf[n++] = (char)cp;
        } else if (cp < 0x800) {
            buf[n++] = (char)(0xc0 | (cp >> 6));
            buf[n++] = (char)(0x80 | (cp & 0x3f));
        } else {
            return false; /* no stop word needs three bytes */
        }
    }
    buf[n] = '\0';
    return imp_kb_is_stopword(buf);
}

/* The word itself and the n-grams of "<word>". */
static void add_word(scratch_t *s, const uint32_t *w, size_t len)
{
    float scale = word_is_stopword(w, len) ? WEIGHT_STOPWORD : 1.0f;
    add_feature(s, fnv_cps(fnv_byte(FNV_OFFSET, 'w'), w, len), WEIGHT_WORD * scale);
    uint32_t pad[NGRAM_MAX];
    size_t plen = len + 2;
    for (size_t n = NGRAM_MIN; n <= NGRAM_MAX; n++) {
        for (size_t i = 0; i + n <= plen; i++) {
            for (size_t k = 0; k < n; k++) {
                size_t p = i + k; /* position in "<word>" */
                pad[k] = p == 0 ? BOUNDARY_START : p == plen - 1 ? BOUNDARY_END : w[p - 1];
            }
            add_feature(s, fnv_cps(fnv_byte(FNV_OFFSET, (uint8_t)('0' + n)), pad, n),
                        WEIGHT_NGRAM * scale);
        }
    }
}

static int cmp_feature(const void *a, const void *b)
{
    uint64_t x = ((const feature_t *)a)->h, y = ((const feature_t *)b)->h;
    return x < y ? -1 : x > y;
}

static void fold_text(scratch_t *s, const char *text)
{
    size_t len = strlen(text), pos = 0;
    s->ncps = 0;
    if (s->cpcap < len + 1) {
        s->cpcap = len + 1;
        s->cps = imp_realloc(s->cps, s->cpcap * sizeof(*s->cps));
    }
    while (pos < len)
        s->cps[s->ncps++] = imp_kb_fold_cp(imp_kb_utf8_next(text, len, &pos));
}

static void embed_one(scratch_t *s, const char *text, float *v, size_t dim)
{
    memset(v, 0, dim * sizeof(*v));
    fold_text(s, text);
    s->n = 0;
    for (size_t i = 0; i < s->ncps;) {
        if (!imp_kb_is_word_cp(s->cps[i])) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < s->ncps && imp_kb_is_word_cp(s->cps[j]))
            j++;
        add_word(s, s->cps + i, j - i);
        i = j;
    }
    /* Sublinear term frequency: equal features are adjacent once sorted. */
    if (s->n > 1)
        qsort(s->f, s->n, sizeof(*s->f), cmp_feature);
    for (size_t i = 0; i < s->n;) {
        size_t j = i;
        float w = 0;
        while (j < s->n && s->f[j].h == s->f[i].h) {
            if (s->f[j].w > w)
                w = s->f[j].w;
            j++;
        }
        uint64_t h = s->f[i].h;
        float value = w * (1.0f + logf((float)(j - i)));
        v[(uint32_t)h % dim] += (h >> 63) ? -value : value;
        i = j;
    }
    imp_embed_normalize(v, dim);
}

static imp_error_t *hash_embed(imp_embedder_t *self, const char *const *texts, size_t n, float *out)
{
    scratch_t s = {0};
    for (size_t i = 0; i < n; i++)
        embed_one(&s, texts[i], out + i * self->dim, self->dim);
    free(s.f);
    free(s.cps);
    return NULL;
}

static void hash_destroy(imp_embedder_t *self)
{
    free(self);
}

imp_error_t *imp_embed_hash_new(size_t dim, imp_embedder_t **out)
{
    *out = NULL;
    if (dim < 16 || dim > 16384)
        return imp_error_new(IMP_ERR_POISON, "embed_config",
                             "hash embedder dimension must be between 16 and 16384, not %zu", dim);
    imp_embedder_t *e = imp_calloc(1, sizeof(*e));
    e->name = "hash";
    e->model = HASH_MODEL;
    e->dim = dim;
    e->embed = hash_embed;
    e->destroy = hash_destroy;
    *out = e;
    return NULL;
}
