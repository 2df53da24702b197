/* The QC rules of a tenant and the decision on one draft; no I/O. */
#include "qc.h"

#include "imp/kb.h"
#include "imp/mem.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

const char QC_DEFAULT_SAFE_REPLY[] =
    "Спасибо за вопрос! Я передал его менеджеру, он скоро вам ответит.\n"
    "Thank you for your question! I have passed it to a manager, who will reply shortly.";

void qc_rules_init(qc_rules_t *r)
{
    *r = (qc_rules_t){.min_confidence = QC_DEFAULT_MIN_CONFIDENCE,
                      .max_length = QC_DEFAULT_MAX_LENGTH,
                      .must_cite = true};
}

void qc_rules_dispose(qc_rules_t *r)
{
    for (size_t i = 0; i < r->nforbidden; i++)
        free(r->forbidden[i]);
    free(r->forbidden);
    qc_rules_init(r);
}

static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static bool is_space_cp(uint32_t cp)
{
    return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\v' || cp == '\f' ||
           cp == 0xA0;
}

char *qc_fold(const char *text)
{
    size_t len = strlen(text), pos = 0, n = 0;
    /* Folding never lengthens a code point's encoding by more than U+FFFD's 3 bytes. */
    char *out = imp_malloc(3 * len + 1);
    bool space = false;
    while (pos < len) {
        uint32_t cp = imp_kb_utf8_next(text, len, &pos);
        if (is_space_cp(cp)) {
            space = n > 0;
            continue;
        }
        if (space)
            out[n++] = ' ';
        space = false;
        n += utf8_put(imp_kb_fold_cp(cp), out + n);
    }
    out[n] = '\0';
    return out;
}

static void add_forbidden(qc_rules_t *r, const char *pattern)
{
    char *f = qc_fold(pattern);
    if (f[0] == '\0' || r->nforbidden == QC_MAX_FORBIDDEN) {
        free(f);
        return;
    }
    if (r->forbidden == NULL)
        r->forbidden = imp_malloc(QC_MAX_FORBIDDEN * sizeof(char *));
    r->forbidden[r->nforbidden++] = f;
}

void qc_rules_from_settings(const json_t *settings, qc_rules_t *out, int *ignored)
{
    qc_rules_init(out);
    *ignored = 0;
    const json_t *qc = json_is_object(settings) ? json_object_get(settings, "qc") : NULL;
    if (!json_is_object(qc))
        return;
    const json_t *v = json_object_get(qc, "min_confidence");
    if (json_is_number(v) && json_number_value(v) >= 0 && json_number_value(v) <= 1)
        out->min_confidence = json_number_value(v);
    else if (v != NULL)
        (*ignored)++;
    v = json_object_get(qc, "max_length");
    if (json_is_integer(v) && json_integer_value(v) >= 1)
        out->max_length = (size_t)json_integer_value(v);
    else if (v != NULL)
        (*ignored)++;
    v = json_object_get(qc, "must_cite");
    if (json_is_boolean(v))
        out->must_cite = json_is_true(v);
    else if (v != NULL)
        (*ignored)++;
    v = json_object_get(qc, "forbidden_topics");
    if (v != NULL && !json_is_array(v))
        (*ignored)++;
    size_t i;
    const json_t *p;
    json_array_foreach(v, i, p)
    {
        if (json_is_string(p))
            add_forbidden(out, json_string_value(p));
        else
            (*ignored)++;
    }
}

static bool blank(const char *s)
{
    for (; *s; s++)
        if (!is_space_cp((unsigned char)*s))
            return false;
    return true;
}

/* The first forbidden pattern found in the folded question or answer, or NULL. */
static const char *forbidden_hit(const qc_rules_t *r, const char *question, const char *answer)
{
    if (r->nforbidden == 0)
        return NULL;
    char *q = qc_fold(question), *a = qc_fold(answer);
    const char *hit = NULL;
    for (size_t i = 0; i < r->nforbidden && hit == NULL; i++)
        if (strstr(q, r->forbidden[i]) != NULL || strstr(a, r->forbidden[i]) != NULL)
            hit = r->forbidden[i];
    free(q);
    free(a);
    return hit;
}

/* Bytes of s to print so that at most max bytes are taken and no code point is cut. */
static int clip(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return (int)n;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    return (int)max;
}

void qc_decide(const qc_rules_t *r, const qc_draft_t *d, qc_decision_t *out)
{
    out->pass = false;
    const char *hit = forbidden_hit(r, d->question, d->answer);
    size_t chars = imp_kb_utf8_count(d->answer, strlen(d->answer));
    bool cites = strcmp(d->mode, "llm") == 0 || strcmp(d->mode, "extractive") == 0;
    if (hit != NULL)
        snprintf(out->reason, sizeof(out->reason), "forbidden_topic: %.*s", clip(hit, 120), hit);
    else if (strcmp(d->mode, "none") == 0 || blank(d->answer))
        snprintf(out->reason, sizeof(out->reason), "no_answer%s%.*s", d->failure ? ": " : "",
                 d->failure ? clip(d->failure, 120) : 0, d->failure ? d->failure : "");
    else if (d->confidence < r->min_confidence)
        snprintf(out->reason, sizeof(out->reason), "low_confidence: %.2f < %.2f", d->confidence,
                 r->min_confidence);
    else if (chars > r->max_length)
        snprintf(out->reason, sizeof(out->reason), "too_long: %zu > %zu", chars, r->max_length);
    else if (r->must_cite && cites && d->ncitations == 0)
        snprintf(out->reason, sizeof(out->reason), "no_citation");
    else {
        out->pass = true;
        out->reason[0] = '\0';
    }
}
