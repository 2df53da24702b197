/* Tenant snapshots (docs/tenant-directory.md) → tenants: the verification secrets of each
 * channel, opened with IMP_SECRET_KEY (associated data: the tenant id), ready for the
 * verifiers. A tenant is immutable once built, except each loop thread's own HMAC slots. */
#include "ingress.h"

#include "imp/envelope.h"
#include "imp/log.h"
#include "imp/mem.h"
#include "imp/opid.h"

#include <stdlib.h>
#include <string.h>

#define SECRET_MAX 256 /* decoded key bytes; a larger secret is refused */

typedef struct {
    uint8_t *bytes; /* NULL when absent */
    size_t len;
    imp_hmac_t **hmac; /* [nthreads], each made by its own thread on first use */
} secret_t;

typedef struct {
    bool usable;        /* present, enabled and the current secrets opened */
    secret_t sig[2];    /* current, previous: the verifier's keys */
    secret_t verify[2]; /* whatsapp only: hub.verify_token, current and previous */
    int64_t previous_until_ms;
} channel_t;

struct ing_tenant {
    atomic_int refs;
    int nthreads;
    char id[IMP_UUID_STR_SIZE];
    char *slug;
    bool disabled;
    int64_t version;
    channel_t ch[ING_CH_COUNT];
};

static void secret_dispose(secret_t *s, int nthreads)
{
    if (s->bytes != NULL) {
        imp_crypto_wipe(s->bytes, s->len);
        free(s->bytes);
    }
    if (s->hmac != NULL) {
        for (int i = 0; i < nthreads; i++)
            imp_hmac_free(s->hmac[i]);
        free(s->hmac);
    }
    memset(s, 0, sizeof(*s));
}

static void tenant_free(ing_tenant_t *t)
{
    for (int c = 0; c < ING_CH_COUNT; c++) {
        for (int k = 0; k < 2; k++) {
            secret_dispose(&t->ch[c].sig[k], t->nthreads);
            secret_dispose(&t->ch[c].verify[k], t->nthreads);
        }
    }
    free(t->slug);
    free(t);
}

ing_tenant_t *ing_tenant_ref(ing_tenant_t *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void ing_tenant_release(ing_tenant_t *t)
{
    if (t != NULL && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        tenant_free(t);
}

const char *ing_tenant_id(const ing_tenant_t *t)
{
    return t->id;
}

const char *ing_tenant_slug(const ing_tenant_t *t)
{
    return t->slug;
}

int64_t ing_tenant_version(const ing_tenant_t *t)
{
    return t->version;
}

bool ing_tenant_disabled(const ing_tenant_t *t)
{
    return t->disabled;
}

static void key_of(secret_t *s, int thread, ing_key_t *out)
{
    if (thread >= 0 && s->hmac[thread] == NULL)
        s->hmac[thread] = imp_hmac_new(s->bytes, s->len);
    *out =
        (ing_key_t){.key = s->bytes, .len = s->len, .hmac = thread >= 0 ? s->hmac[thread] : NULL};
}

/* The secrets of pair valid at now_ms: the current one, and the previous one until its
 * deadline. */
static size_t keys_of(secret_t pair[2], int64_t until_ms, int thread, int64_t now_ms,
                      ing_key_t out[2])
{
    size_t n = 0;
    if (pair[0].bytes != NULL)
        key_of(&pair[0], thread, &out[n++]);
    if (pair[1].bytes != NULL && now_ms < until_ms)
        key_of(&pair[1], thread, &out[n++]);
    return n;
}

size_t ing_tenant_keys(ing_tenant_t *t, ing_channel_t ch, int thread, int64_t now_ms,
                       ing_key_t out[2])
{
    channel_t *c = &t->ch[ch];
    if (!c->usable)
        return 0;
    /* Telegram compares tokens: no HMAC context needed. */
    return keys_of(c->sig, c->previous_until_ms, ch == ING_CH_TELEGRAM ? -1 : thread, now_ms, out);
}

size_t ing_tenant_verify_tokens(ing_tenant_t *t, int64_t now_ms, ing_key_t out[2])
{
    channel_t *c = &t->ch[ING_CH_WHATSAPP];
    if (!c->usable)
        return 0;
    return keys_of(c->verify, c->previous_until_ms, -1, now_ms, out);
}

/* ---- parsing ------------------------------------------------------------------------------ */

static imp_error_t *bad(const char *fmt, const char *what)
{
    return imp_error_new(IMP_ERR_POISON, "bad_snapshot", fmt, what);
}

/* A text secret member as key bytes (whsec-decoded for Standard Webhooks). */
static imp_error_t *secret_from(json_t *obj, const char *member, bool whsec, int nthreads,
                                secret_t *out)
{
    json_t *v = json_object_get(obj, member);
    if (!json_is_string(v) || json_string_length(v) == 0)
        return bad("secrets have no %s", member);
    const char *text = json_string_value(v);
    size_t len = json_string_length(v);
    uint8_t buf[SECRET_MAX];
    if (whsec) {
        if (ing_whsec_decode(text, len, buf, sizeof(buf), &len) != 0)
            return bad("%s is not a whsec_ secret", member);
        text = (const char *)buf;
    } else if (len > SECRET_MAX) {
        return bad("%s is too long", member);
    }
    out->bytes = imp_malloc(len ? len : 1);
    memcpy(out->bytes, text, len);
    out->len = len;
    out->hmac = imp_calloc((size_t)nthreads, sizeof(imp_hmac_t *));
    imp_crypto_wipe(buf, sizeof(buf));
    return NULL;
}

/* Open a secrets_enc token and take the channel's secrets into sig (and verify). */
static imp_error_t *open_secrets(const uint8_t key[IMP_CRYPTO_KEY_LEN], const char *aad,
                                 const char *token, ing_channel_t ch, int nthreads, secret_t *sig,
                                 secret_t *verify)
{
    uint8_t *plain = NULL;
    size_t len = 0;
    imp_error_t *err = imp_crypto_open(key, token, aad, strlen(aad), &plain, &len);
    if (err != NULL)
        return err;
    json_t *obj = json_loadb((const char *)plain, len, JSON_REJECT_DUPLICATES, NULL);
    imp_crypto_wipe(plain, len);
    free(plain);
    if (!json_is_object(obj))
        err = bad("%s", "the opened secrets are not a JSON object");
    else if (ch == ING_CH_GENERIC || ch == ING_CH_CHATFLOW)
        err = secret_from(obj, "webhook_secret", true, nthreads, sig);
    else if (ch == ING_CH_TELEGRAM)
        err = secret_from(obj, "secret_token", false, nthreads, sig);
    else if ((err = secret_from(obj, "app_secret", false, nthreads, sig)) == NULL)
        err = secret_from(obj, "verify_token", false, nthreads, verify);
    /* The secrets live on in the tenant only; wipe jansson's copies before they go. */
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (json_is_string(v))
            imp_crypto_wipe((char *)json_string_value(v), json_string_length(v));
    }
    json_decref(obj);
    return err;
}

/* One channel object of the snapshot. A channel whose secrets cannot be opened stays
 * unusable (its webhooks get 401) and is logged; the rest of the tenant still works. */
static void parse_channel(ing_tenant_t *t, const uint8_t *key, const char *aad, ing_channel_t ch,
                          json_t *obj)
{
    channel_t *c = &t->ch[ch];
    json_t *enabled = json_object_get(obj, "enabled");
    if (!json_is_object(obj) || (enabled != NULL && !json_is_true(enabled)))
        return;
    json_t *cur = json_object_get(obj, "secrets_enc");
    json_t *prev = json_object_get(obj, "previous_secrets_enc");
    json_t *until = json_object_get(obj, "previous_until_ms");
    imp_error_t *err = NULL;
    if (!json_is_string(cur))
        err = bad("%s", "secrets_enc is missing");
    else
        err = open_secrets(key, aad, json_string_value(cur), ch, t->nthreads, &c->sig[0],
                           &c->verify[0]);
    if (err == NULL && json_is_string(prev) && json_is_integer(until)) {
        c->previous_until_ms = json_integer_value(until);
        err = open_secrets(key, aad, json_string_value(prev), ch, t->nthreads, &c->sig[1],
                           &c->verify[1]);
        if (err != NULL) {
            IMP_LOG_WARN("previous channel secrets cannot be opened; only the current ones count",
                         IMP_LS("tenant_id", t->id), IMP_LS("channel", ing_channel_name(ch)),
                         IMP_LE(err));
            imp_error_free(err);
            err = NULL;
            secret_dispose(&c->sig[1], t->nthreads);
            secret_dispose(&c->verify[1], t->nthreads);
        }
    }
    if (err != NULL) {
        IMP_LOG_ERROR("channel secrets cannot be opened; the channel is unusable",
                      IMP_LS("tenant_id", t->id), IMP_LS("slug", t->slug),
                      IMP_LS("channel", ing_channel_name(ch)), IMP_LE(err));
        imp_error_free(err);
        for (int k = 0; k < 2; k++) {
            secret_dispose(&c->sig[k], t->nthreads);
            secret_dispose(&c->verify[k], t->nthreads);
        }
        return;
    }
    c->usable = true;
}

/* tenant_id, slug, status and version of data into t. */
static imp_error_t *parse_header(ing_tenant_t *t, json_t *data)
{
    json_t *id = json_object_get(data, "tenant_id"), *slug = json_object_get(data, "slug");
    json_t *status = json_object_get(data, "status"), *version = json_object_get(data, "version");
    uint8_t uuid[IMP_UUID_LEN];
    if (!json_is_string(id) ||
        imp_uuid_parse(json_string_value(id), json_string_length(id), uuid) != 0)
        return bad("%s", "data.tenant_id is not a UUID");
    if (!json_is_string(slug) || json_string_length(slug) == 0)
        return bad("%s", "data.slug is missing");
    if (!json_is_string(status))
        return bad("%s", "data.status is missing");
    if (!json_is_integer(version))
        return bad("%s", "data.version is not an integer");
    imp_uuid_format(uuid, t->id);
    t->slug = imp_strdup(json_string_value(slug));
    /* Anything but "active" (a status added later) is refused rather than let through. */
    t->disabled = strcmp(json_string_value(status), "active") != 0;
    t->version = json_integer_value(version);
    return NULL;
}

imp_error_t *ing_snapshot_parse(const char *value, size_t len, const uint8_t *key, int nthreads,
                                ing_tenant_t **out)
{
    *out = NULL;
    imp_envelope_t e;
    imp_error_t *err = imp_envelope_parse(value, len, &e);
    if (err != NULL)
        return err;
    ing_tenant_t *t = imp_calloc(1, sizeof(*t));
    atomic_init(&t->refs, 1);
    t->nthreads = nthreads;
    if (strcmp(e.type, ING_TYPE_TENANT_SNAPSHOT) != 0)
        err = bad("unexpected event type %s", e.type);
    else
        err = parse_header(t, e.data);
    if (err == NULL) {
        json_t *data = e.data, *channels = json_object_get(data, "channels");
        /* The associated data is the tenant id as the snapshot spells it. */
        const char *aad = json_string_value(json_object_get(data, "tenant_id"));
        for (int ch = 0; ch < ING_CH_COUNT; ch++) {
            json_t *c = json_object_get(channels, ing_channel_name((ing_channel_t)ch));
            if (c != NULL)
                parse_channel(t, key, aad, (ing_channel_t)ch, c);
        }
    }
    imp_envelope_dispose(&e);
    if (err != NULL) {
        tenant_free(t);
        return err;
    }
    *out = t;
    return NULL;
}
