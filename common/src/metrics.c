/* Metric registry and Prometheus text rendering; updates are lock-free atomics. */
#include "imp/metrics.h"

#include "imp/log.h"
#include "imp/mem.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } kind_t;

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

struct imp_metrics_counter {
    _Atomic uint64_t value;
};

struct imp_metrics_gauge {
    _Atomic uint64_t bits; /* a double's bit pattern */
};

struct imp_metrics_histogram {
    const double *bounds; /* the family's */
    size_t nbounds;
    _Atomic uint64_t *counts; /* nbounds + 1 (the last is +Inf), not cumulative */
    _Atomic uint64_t sum_bits;
};

typedef struct child {
    struct child *next;
    char **values;
    char *labels; /* rendered and escaped: a="x",b="y" ("" when none) */
    imp_metrics_sample_fn fn;
    void *fn_ctx;
    union {
        imp_metrics_counter_t counter;
        imp_metrics_gauge_t gauge;
        imp_metrics_histogram_t hist;
    } u;
} child_t;

typedef struct family {
    struct family *next;
    char *name;
    char *help;
    kind_t kind;
    char **label_names;
    size_t nlabels;
    double *bounds;
    size_t nbounds;
    child_t *children;
    child_t **children_tail;
} family_t;

struct imp_metrics {
    pthread_mutex_t lock;
    family_t *families;
    family_t **tail;
};

/* What a registration asks for. */
typedef struct {
    kind_t kind;
    const char *name;
    const char *help;
    const double *bounds;
    size_t nbounds;
    const imp_label_t *labels;
    size_t nlabels;
    imp_metrics_sample_fn fn;
    void *fn_ctx;
} spec_t;

/* ---- string building ---- */

typedef struct {
    char *p;
    size_t len, cap;
} sb_t;

static void sb_put(sb_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = imp_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sb_t *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* HELP escapes \ and newline; label values also escape the double quote. */
static void sb_escaped(sb_t *b, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            sb_put(b, "\\\\", 2);
        else if (*s == '\n')
            sb_put(b, "\\n", 2);
        else if (*s == '"' && quote)
            sb_put(b, "\\\"", 2);
        else
            sb_put(b, s, 1);
    }
}

/* Shortest text that reads back as the same double; Prometheus spells infinities +Inf/-Inf. */
static void format_double(char *buf, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(buf, cap, "NaN");
    } else if (isinf(v)) {
        snprintf(buf, cap, v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(buf, cap, "%.15g", v);
        if (strtod(buf, NULL) != v)
            snprintf(buf, cap, "%.17g", v);
    }
}

static void sb_double(sb_t *b, double v)
{
    char buf[40];
    format_double(buf, sizeof(buf), v);
    sb_puts(b, buf);
}

static void sb_u64(sb_t *b, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    sb_puts(b, buf);
}

/* ---- atomics on doubles ---- */

static uint64_t dbits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

static double bitsd(uint64_t u)
{
    double v;
    memcpy(&v, &u, sizeof(v));
    return v;
}

static void atomic_add_double(_Atomic uint64_t *bits, double delta)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(bits, &old, dbits(bitsd(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* ---- validation (misuse is a bug: log and abort) ---- */

static void misuse(const char *problem, const char *name)
{
    IMP_LOG_ERROR("metrics misuse", IMP_LS("problem", problem), IMP_LS("metric", name));
    abort();
}

static bool valid_name(const char *s, bool colon)
{
    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++) {
        bool ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                  (*s >= '0' && *s <= '9') || *s == '_' || (colon && *s == ':');
        if (!ok)
            return false;
    }
    return true;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static void validate(const spec_t *sp)
{
    if (!valid_name(sp->name, true) || strncmp(sp->name, "imperium_", 9) != 0)
        misuse("name must start with imperium_ and match [a-zA-Z_:][a-zA-Z0-9_:]*", sp->name);
    if (sp->kind == KIND_COUNTER && !has_suffix(sp->name, "_total"))
        misuse("counter name must end in _total", sp->name);
    if (sp->help == NULL)
        misuse("help text is required", sp->name);
    for (size_t i = 0; i < sp->nlabels; i++) {
        const char *ln = sp->labels[i].name;
        if (!valid_name(ln, false) || strncmp(ln, "__", 2) == 0 || strcmp(ln, "le") == 0)
            misuse("bad label name", sp->name);
        if (sp->labels[i].value == NULL)
            misuse("label value is NULL", sp->name);
        for (size_t j = 0; j < i; j++)
            if (strcmp(ln, sp->labels[j].name) == 0)
                misuse("duplicate label name", sp->name);
    }
    for (size_t i = 0; i < sp->nbounds; i++) {
        bool last_inf = i + 1 == sp->nbounds && isinf(sp->bounds[i]) && sp->bounds[i] > 0;
        if (!last_inf && !isfinite(sp->bounds[i]))
            misuse("histogram bound is not finite", sp->name);
        if (i > 0 && !(sp->bounds[i] > sp->bounds[i - 1]))
            misuse("histogram bounds must increase strictly", sp->name);
    }
}

/* ---- registry ---- */

static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static imp_metrics_t *default_registry;

imp_metrics_t *imp_metrics_new(void)
{
    imp_metrics_t *m = imp_calloc(1, sizeof(*m));
    pthread_mutex_init(&m->lock, NULL);
    m->tail = &m->families;
    return m;
}

static void free_strv(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void free_family(family_t *f)
{
    child_t *c = f->children;
    while (c != NULL) {
        child_t *next = c->next;
        free_strv(c->values, f->nlabels);
        free(c->labels);
        if (f->kind == KIND_HISTOGRAM)
            free(c->u.hist.counts);
        free(c);
        c = next;
    }
    free_strv(f->label_names, f->nlabels);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f);
}

void imp_metrics_free(imp_metrics_t *m)
{
    if (m == NULL)
        return;
    family_t *f = m->families;
    while (f != NULL) {
        family_t *next = f->next;
        free_family(f);
        f = next;
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static void make_default(void)
{
    default_registry = imp_metrics_new();
}

imp_metrics_t *imp_metrics_default(void)
{
    pthread_once(&default_once, make_default);
    return default_registry;
}

static size_t effective_nbounds(const double *bounds, size_t n)
{
    if (n > 0 && isinf(bounds[n - 1]))
        return n - 1;
    return n;
}

static family_t *family_new(const spec_t *sp)
{
    family_t *f = imp_calloc(1, sizeof(*f));
    f->name = imp_strdup(sp->name);
    f->help = imp_strdup(sp->help);
    f->kind = sp->kind;
    f->nlabels = sp->nlabels;
    f->label_names = imp_calloc(sp->nlabels + 1, sizeof(char *));
    for (size_t i = 0; i < sp->nlabels; i++)
        f->label_names[i] = imp_strdup(sp->labels[i].name);
    f->nbounds = effective_nbounds(sp->bounds, sp->nbounds);
    f->bounds = imp_calloc(f->nbounds + 1, sizeof(double));
    if (f->nbounds > 0)
        memcpy(f->bounds, sp->bounds, f->nbounds * sizeof(double));
    f->children_tail = &f->children;
    return f;
}

/* An existing family must agree with the new registration on everything but help. */
static void check_family(const family_t *f, const spec_t *sp)
{
    if (f->kind != sp->kind)
        misuse("registered again with another type", sp->name);
    if (f->nlabels != sp->nlabels)
        misuse("registered again with other label names", sp->name);
    for (size_t i = 0; i < f->nlabels; i++)
        if (strcmp(f->label_names[i], sp->labels[i].name) != 0)
            misuse("registered again with other label names", sp->name);
    size_t nb = effective_nbounds(sp->bounds, sp->nbounds);
    if (f->kind == KIND_HISTOGRAM &&
        (f->nbounds != nb || (nb > 0 && memcmp(f->bounds, sp->bounds, nb * sizeof(double)))))
        misuse("registered again with other buckets", sp->name);
}

static family_t *find_family(imp_metrics_t *m, const char *name)
{
    for (family_t *f = m->families; f != NULL; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static child_t *find_child(const family_t *f, const spec_t *sp)
{
    for (child_t *c = f->children; c != NULL; c = c->next) {
        size_t i = 0;
        while (i < f->nlabels && strcmp(c->values[i], sp->labels[i].value) == 0)
            i++;
        if (i == f->nlabels)
            return c;
    }
    return NULL;
}

static child_t *child_new(const family_t *f, const spec_t *sp)
{
    child_t *c = imp_calloc(1, sizeof(*c));
    sb_t b = {0};
    sb_puts(&b, "");
    c->values = imp_calloc(f->nlabels + 1, sizeof(char *));
    for (size_t i = 0; i < f->nlabels; i++) {
        c->values[i] = imp_strdup(sp->labels[i].value);
        if (i > 0)
            sb_puts(&b, ",");
        sb_puts(&b, f->label_names[i]);
        sb_puts(&b, "=\"");
        sb_escaped(&b, sp->labels[i].value, true);
        sb_puts(&b, "\"");
    }
    c->labels = b.p;
    c->fn = sp->fn;
    c->fn_ctx = sp->fn_ctx;
    if (f->kind == KIND_HISTOGRAM) {
        c->u.hist.bounds = f->bounds;
        c->u.hist.nbounds = f->nbounds;
        c->u.hist.counts = imp_calloc(f->nbounds + 1, sizeof(_Atomic uint64_t));
    }
    return c;
}

static child_t *register_child(imp_metrics_t *m, const spec_t *sp)
{
    validate(sp);
    pthread_mutex_lock(&m->lock);
    family_t *f = find_family(m, sp->name);
    if (f == NULL) {
        f = family_new(sp);
        *m->tail = f;
        m->tail = &f->next;
    } else {
        check_family(f, sp);
    }
    child_t *c = find_child(f, sp);
    if (c != NULL && (c->fn != NULL || sp->fn != NULL)) {
        pthread_mutex_unlock(&m->lock);
        misuse("sampled metric registered twice", sp->name);
    }
    if (c == NULL) {
        c = child_new(f, sp);
        *f->children_tail = c;
        f->children_tail = &c->next;
    }
    pthread_mutex_unlock(&m->lock);
    return c;
}

imp_metrics_counter_t *imp_metrics_counter(imp_metrics_t *m, const char *name, const char *help,
                                           const imp_label_t *labels, size_t nlabels)
{
    spec_t sp = {
        .kind = KIND_COUNTER, .name = name, .help = help, .labels = labels, .nlabels = nlabels};
    return &register_child(m, &sp)->u.counter;
}

imp_metrics_gauge_t *imp_metrics_gauge(imp_metrics_t *m, const char *name, const char *help,
                                       const imp_label_t *labels, size_t nlabels)
{
    spec_t sp = {
        .kind = KIND_GAUGE, .name = name, .help = help, .labels = labels, .nlabels = nlabels};
    return &register_child(m, &sp)->u.gauge;
}

imp_metrics_histogram_t *imp_metrics_histogram(imp_metrics_t *m, const char *name, const char *help,
                                               const double *bounds, size_t nbounds,
                                               const imp_label_t *labels, size_t nlabels)
{
    spec_t sp = {.kind = KIND_HISTOGRAM,
                 .name = name,
                 .help = help,
                 .bounds = bounds,
                 .nbounds = nbounds,
                 .labels = labels,
                 .nlabels = nlabels};
    return &register_child(m, &sp)->u.hist;
}

void imp_metrics_counter_fn(imp_metrics_t *m, const char *name, const char *help,
                            const imp_label_t *labels, size_t nlabels, imp_metrics_sample_fn fn,
                            void *ctx)
{
    spec_t sp = {.kind = KIND_COUNTER,
                 .name = name,
                 .help = help,
                 .labels = labels,
                 .nlabels = nlabels,
                 .fn = fn,
                 .fn_ctx = ctx};
    register_child(m, &sp);
}

void imp_metrics_gauge_fn(imp_metrics_t *m, const char *name, const char *help,
                          const imp_label_t *labels, size_t nlabels, imp_metrics_sample_fn fn,
                          void *ctx)
{
    spec_t sp = {.kind = KIND_GAUGE,
                 .name = name,
                 .help = help,
                 .labels = labels,
                 .nlabels = nlabels,
                 .fn = fn,
                 .fn_ctx = ctx};
    register_child(m, &sp);
}

/* ---- updates ---- */

void imp_metrics_inc(imp_metrics_counter_t *c)
{
    atomic_fetch_add_explicit(&c->value, 1, memory_order_relaxed);
}

void imp_metrics_add(imp_metrics_counter_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

uint64_t imp_metrics_counter_value(const imp_metrics_counter_t *c)
{
    return atomic_load_explicit(&((imp_metrics_counter_t *)c)->value, memory_order_relaxed);
}

void imp_metrics_set(imp_metrics_gauge_t *g, double v)
{
    atomic_store_explicit(&g->bits, dbits(v), memory_order_relaxed);
}

void imp_metrics_gauge_add(imp_metrics_gauge_t *g, double delta)
{
    atomic_add_double(&g->bits, delta);
}

double imp_metrics_gauge_value(const imp_metrics_gauge_t *g)
{
    return bitsd(atomic_load_explicit(&((imp_metrics_gauge_t *)g)->bits, memory_order_relaxed));
}

void imp_metrics_observe(imp_metrics_histogram_t *h, double v)
{
    if (isnan(v))
        return;
    size_t i = 0;
    while (i < h->nbounds && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_add_double(&h->sum_bits, v);
}

/* ---- rendering ---- */

/* name{labels[,extra]} */
static void put_series(sb_t *b, const char *name, const char *suffix, const char *labels,
                       const char *extra)
{
    sb_puts(b, name);
    sb_puts(b, suffix);
    if (*labels == '\0' && extra == NULL)
        return;
    sb_puts(b, "{");
    sb_puts(b, labels);
    if (extra != NULL) {
        if (*labels != '\0')
            sb_puts(b, ",");
        sb_puts(b, extra);
    }
    sb_puts(b, "}");
}

static void render_histogram(sb_t *b, const family_t *f, const child_t *c)
{
    const imp_metrics_histogram_t *h = &c->u.hist;
    uint64_t cumulative = 0;
    char le[64], bound[40];
    for (size_t i = 0; i <= h->nbounds; i++) {
        cumulative += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < h->nbounds)
            format_double(bound, sizeof(bound), h->bounds[i]);
        else
            snprintf(bound, sizeof(bound), "+Inf");
        snprintf(le, sizeof(le), "le=\"%s\"", bound);
        put_series(b, f->name, "_bucket", c->labels, le);
        sb_puts(b, " ");
        sb_u64(b, cumulative);
        sb_puts(b, "\n");
    }
    put_series(b, f->name, "_sum", c->labels, NULL);
    sb_puts(b, " ");
    sb_double(b, bitsd(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)));
    sb_puts(b, "\n");
    /* _count is the +Inf bucket, so the two always agree within one scrape. */
    put_series(b, f->name, "_count", c->labels, NULL);
    sb_puts(b, " ");
    sb_u64(b, cumulative);
    sb_puts(b, "\n");
}

static void render_child(sb_t *b, const family_t *f, const child_t *c)
{
    if (f->kind == KIND_HISTOGRAM) {
        render_histogram(b, f, c);
        return;
    }
    put_series(b, f->name, "", c->labels, NULL);
    sb_puts(b, " ");
    if (c->fn != NULL)
        sb_double(b, c->fn(c->fn_ctx));
    else if (f->kind == KIND_COUNTER)
        sb_u64(b, imp_metrics_counter_value(&c->u.counter));
    else
        sb_double(b, imp_metrics_gauge_value(&c->u.gauge));
    sb_puts(b, "\n");
}

static void render_family(sb_t *b, const family_t *f)
{
    sb_puts(b, "# HELP ");
    sb_puts(b, f->name);
    sb_puts(b, " ");
    sb_escaped(b, f->help, false);
    sb_puts(b, "\n# TYPE ");
    sb_puts(b, f->name);
    sb_puts(b, " ");
    sb_puts(b, kind_names[f->kind]);
    sb_puts(b, "\n");
    for (const child_t *c = f->children; c != NULL; c = c->next)
        render_child(b, f, c);
}

char *imp_metrics_render(imp_metrics_t *m, size_t *len)
{
    sb_t b = {0};
    sb_puts(&b, "");
    pthread_mutex_lock(&m->lock);
    for (const family_t *f = m->families; f != NULL; f = f->next)
        render_family(&b, f);
    pthread_mutex_unlock(&m->lock);
    if (len != NULL)
        *len = b.len;
    return b.p;
}
