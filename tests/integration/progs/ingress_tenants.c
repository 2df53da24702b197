/* Integration helper: publish tenant snapshots to imp.tenants.v1, the way imperium-control
 * does (docs/tenant-directory.md), from a plain-text spec.
 *
 *   ingress_tenants SPEC_FILE      ("-" reads stdin)
 *
 * SPEC_FILE is a JSON array; each element is one snapshot (published in order, keyed by slug):
 *
 *   {"slug": "a", "tenant_id": "<uuid>", "status": "active", "version": 1,
 *    "channels": {"generic": {"secrets": {"webhook_secret": "whsec_…"},
 *                             "previous_secrets": {…}, "previous_until_ms": 1700000000000,
 *                             "enabled": true}, …}}
 *
 * "secrets" / "previous_secrets" are sealed into secrets_enc / previous_secrets_enc with
 * IMP_SECRET_KEY and the tenant id as associated data; {"slug": "x", "delete": true} publishes
 * a tombstone. Environment: IMP_KAFKA_BROKERS, IMP_SECRET_KEY. Prints "published <n>"; exits 0
 * when every snapshot was persisted. */
#include "imp/crypto.h"
#include "imp/envelope.h"
#include "imp/kafka.h"
#include "imp/log.h"
#include "imp/mem.h"
#include "imp/opid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT_MS 30000

static uint8_t key[IMP_CRYPTO_KEY_LEN];

/* secrets (an object) sealed as a token string; NULL when secrets is absent. */
static json_t *seal(json_t *secrets, const char *tenant_id, imp_error_t **err)
{
    if (secrets == NULL || json_is_null(secrets))
        return json_null();
    char *plain = json_dumps(secrets, JSON_COMPACT);
    char *token = NULL;
    *err = imp_crypto_seal(key, plain, strlen(plain), tenant_id, strlen(tenant_id), &token);
    free(plain);
    if (*err != NULL)
        return NULL;
    json_t *v = json_string(token);
    free(token);
    return v;
}

/* The snapshot's channels object: secrets sealed, everything else as given. */
static json_t *channels_of(json_t *spec, const char *tenant_id, imp_error_t **err)
{
    json_t *out = json_object();
    const char *name;
    json_t *ch;
    json_object_foreach(json_object_get(spec, "channels"), name, ch)
    {
        json_t *c = json_object();
        json_t *enabled = json_object_get(ch, "enabled");
        json_object_set_new(c, "enabled", enabled ? json_copy(enabled) : json_true());
        json_t *cur = seal(json_object_get(ch, "secrets"), tenant_id, err);
        json_t *prev = *err ? NULL : seal(json_object_get(ch, "previous_secrets"), tenant_id, err);
        if (*err != NULL) {
            json_decref(cur);
            json_decref(c);
            json_decref(out);
            return NULL;
        }
        json_object_set_new(c, "secrets_enc", cur);
        json_object_set_new(c, "previous_secrets_enc", prev);
        json_t *until = json_object_get(ch, "previous_until_ms");
        json_object_set_new(c, "previous_until_ms", until ? json_copy(until) : json_integer(0));
        json_object_set_new(out, name, c);
    }
    return out;
}

/* The envelope text of one spec element. */
static imp_error_t *snapshot_of(json_t *spec, char **out)
{
    const char *tid = json_string_value(json_object_get(spec, "tenant_id"));
    if (tid == NULL)
        return imp_error_new(IMP_ERR_FATAL, "spec", "a snapshot has no tenant_id");
    imp_error_t *err = NULL;
    json_t *channels = channels_of(spec, tid, &err);
    if (err != NULL)
        return err;
    json_t *data = json_pack("{s:s, s:O, s:s, s:O, s:s, s:O, s:o}", "tenant_id", tid, "slug",
                             json_object_get(spec, "slug"), "name", "test tenant", "status",
                             json_object_get(spec, "status"), "plan", "free", "version",
                             json_object_get(spec, "version"), "channels", channels);
    if (data == NULL)
        return imp_error_new(IMP_ERR_FATAL, "spec", "slug, status or version missing");
    char id[IMP_UUID_STR_SIZE];
    imp_uuid_v4_str(id);
    imp_envelope_t e;
    err = imp_envelope_new_event(&e, id, "imperium/control", "imp.tenant.snapshot.v1", tid, data);
    if (err == NULL)
        err = imp_envelope_serialize(&e, out);
    imp_envelope_dispose(&e);
    return err;
}

static imp_error_t *publish(imp_kafka_producer_t *p, json_t *spec)
{
    const char *slug = json_string_value(json_object_get(spec, "slug"));
    if (slug == NULL)
        return imp_error_new(IMP_ERR_FATAL, "spec", "a snapshot has no slug");
    char *value = NULL;
    imp_error_t *err = NULL;
    if (!json_is_true(json_object_get(spec, "delete")) && (err = snapshot_of(spec, &value)))
        return err;
    imp_kafka_out_t m = {.topic = "imp.tenants.v1",
                         .partition = IMP_KAFKA_PARTITION_ANY,
                         .key = slug,
                         .key_len = strlen(slug),
                         .value = value,
                         .value_len = value ? strlen(value) : 0};
    err = imp_kafka_produce_sync(p, &m, TIMEOUT_MS, NULL, NULL);
    free(value);
    return err;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: ingress_tenants SPEC_FILE\n");
        return 2;
    }
    imp_log_init("ingress_tenants", IMP_LOG_LEVEL_WARN);
    json_error_t jerr;
    json_t *specs =
        strcmp(argv[1], "-") == 0 ? json_loadf(stdin, 0, &jerr) : json_load_file(argv[1], 0, &jerr);
    if (!json_is_array(specs)) {
        fprintf(stderr, "ingress_tenants: %s is not a JSON array: %s\n", argv[1], jerr.text);
        return 2;
    }
    imp_kafka_producer_t *p = NULL;
    imp_error_t *err = imp_crypto_key_parse("IMP_SECRET_KEY", getenv("IMP_SECRET_KEY"), key);
    if (err == NULL)
        p = imp_kafka_producer_new(getenv("IMP_KAFKA_BROKERS"), NULL, &err);
    size_t i, n = 0;
    json_t *spec;
    json_array_foreach(specs, i, spec)
    {
        if (err != NULL || (err = publish(p, spec)) != NULL)
            break;
        n++;
    }
    if (err != NULL)
        fprintf(stderr, "ingress_tenants: %s\n", imp_error_message(err));
    printf("published %zu\n", n);
    int rc = err == NULL ? 0 : 1;
    imp_error_free(err);
    imp_kafka_producer_free(p);
    json_decref(specs);
    return rc;
}
