/* imperium-qc: the quality gate between a draft and the customer (docs/answers.md).
 *
 * rules.c holds the pure part (the rules and the decision), decide.c the handler (the rules of
 * the draft's bot version or the tenant's settings, the outbound events, the handover, the
 * trace). */
#ifndef QC_H
#define QC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "imp/error.h"
#include "imp/worker.h"

#define QC_DEFAULT_MIN_CONFIDENCE 0.3
#define QC_DEFAULT_MAX_LENGTH 1000
#define QC_MAX_FORBIDDEN 256
#define QC_REASON_MAX 200

/* The default safe reply, Russian then English. */
extern const char QC_DEFAULT_SAFE_REPLY[];

/* The rules a draft is judged by, from settings.qc of its bot version (bot_versions.settings)
 * or, without one, of the tenant (tenants.settings); defaults for what is absent or invalid. */
typedef struct {
    double min_confidence; /* below it: fail */
    size_t max_length;     /* code points of the answer; above it: fail */
    bool must_cite;        /* mode llm or extractive needs at least one citation */
    char **forbidden;      /* folded (qc_fold) patterns, heap */
    size_t nforbidden;
} qc_rules_t;

/* What the rules look at in a draft (borrowed strings). */
typedef struct {
    const char *question;
    const char *answer;
    const char *mode;    /* "llm", "extractive", "none" */
    const char *failure; /* why there is no answer ("llm_timeout"), or NULL */
    double confidence;
    size_t ncitations;
} qc_draft_t;

typedef struct {
    bool pass;
    char reason[QC_REASON_MAX]; /* "" on pass; "forbidden_topic: оружие", "low_confidence: …" */
} qc_decision_t;

void qc_rules_init(qc_rules_t *r);
void qc_rules_dispose(qc_rules_t *r);
/* Read settings.qc of a settings object, a bot version's or a tenant's (NULL or not an
 * object: defaults):
 *   {"min_confidence": 0..1, "max_length": 1.., "must_cite": bool,
 *    "forbidden_topics": ["pattern", …]}
 * Invalid members are ignored (the default stays) and counted in *ignored: a tenant's typo
 * must not silence the bot. */
void qc_rules_from_settings(const json_t *settings, qc_rules_t *out, int *ignored);

/* Lower-case text for matching: ASCII, Latin-1 and Cyrillic (imp_kb_fold_cp, ё as е),
 * runs of white space as one space, trimmed. A new heap string. */
char *qc_fold(const char *text);

/* The decision, first failing rule wins: forbidden topic (in the question or the answer),
 * no answer (mode none or a blank answer), low confidence, too long, no citation. */
void qc_decide(const qc_rules_t *r, const qc_draft_t *d, qc_decision_t *out);

/* The worker's handler (decide.c). */
imp_error_t *qc_handle(imp_worker_ctx_t *ctx, const imp_envelope_t *ev, void *user);

#endif
