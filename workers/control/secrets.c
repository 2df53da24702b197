/* Channel secrets: which secrets each kind of channel has, which of them the ingress verifies
 * webhooks with, their formats, generating the ones we issue, and sealing JSON objects of
 * them (AES-256-GCM, imp_crypto_seal). */
#include "control.h"

#include "imp/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RANDOM_BYTES 32
#define WHSEC_PREFIX "whsec_"
#define WHSEC_PREFIX_LEN 6
#define WHSEC_MIN_BYTES 24
#define WHSEC_MAX_BYTES 64
#define TOKEN_MAX_BYTES 4096
#define URLSAFE_MAX_BYTES 256

typedef enum {
    FMT_WHSEC,     /* Standard Webhooks: "whsec_" + base64 of 24..64 bytes */
    FMT_URLSAFE,   /* [A-Za-z0-9_-]{1,256} (Telegram's rule for secret_token) */
    FMT_PRINTABLE, /* printable ASCII without blanks, 1..4096 bytes */
} secret_format_t;

/* verification: the ingress checks webhooks with it, so it goes into the tenant snapshot.
 * issued: we choose it (and generate one when needed); otherwise the provider issues it
 * and only the operator can supply it. */
static const struct {
    const char *kind;
    const char *name;
    bool verification;
    bool issued;
    secret_format_t format;
} specs[] = {
    {"chatflow", "webhook_secret", true, true, FMT_WHSEC},
    {"chatflow", "api_token", false, false, FMT_PRINTABLE},
    {"whatsapp", "app_secret", true, false, FMT_PRINTABLE},
    {"whatsapp", "verify_token", true, true, FMT_PRINTABLE},
    {"whatsapp", "access_token", false, false, FMT_PRINTABLE},
    {"telegram", "secret_token", true, true, FMT_URLSAFE},
    {"telegram", "bot_token", false, false, FMT_PRINTABLE},
    {"generic", "webhook_secret", true, true, FMT_WHSEC},
    {"generic", "callback_secret", false, true, FMT_WHSEC},
    {"test", "webhook_secret", true, true, FMT_WHSEC},
};

void control_aad_command(const char *tenant_id, const char *operation_id, char out[CONTROL_AAD_MAX])
{
    snprintf(out, CONTROL_AAD_MAX, "imp.command|%s|%s", tenant_id, operation_id);
}

void control_aad_operation(const char *tenant_id, const char *operation_id,
                           char out[CONTROL_AAD_MAX])
{
    snprintf(out, CONTROL_AAD_MAX, "imp.operation|%s|%s", tenant_id, operation_id);
}

static int spec_of(const char *kind, const char *name)
{
    for (size_t i = 0; i < IMP_ARRAY_LEN(specs); i++)
        if (strcmp(specs[i].kind, kind) == 0 && strcmp(specs[i].name, name) == 0)
            return (int)i;
    return -1;
}

static bool whsec_valid(const char *s)
{
    if (strncmp(s, WHSEC_PREFIX, WHSEC_PREFIX_LEN) != 0)
        return false;
    const char *b64 = s + WHSEC_PREFIX_LEN;
    size_t len = strlen(b64), n = 0;
    uint8_t raw[IMP_BASE64_DECODED_MAX(IMP_BASE64_ENCODED_LEN(WHSEC_MAX_BYTES))];
    if (len > IMP_BASE64_ENCODED_LEN(WHSEC_MAX_BYTES) ||
        imp_base64_decode(b64, len, raw, sizeof(raw), &n) != 0)
        return false;
    imp_crypto_wipe(raw, sizeof(raw));
    return n >= WHSEC_MIN_BYTES && n <= WHSEC_MAX_BYTES;
}

static bool charset_valid(const char *s, size_t max, bool urlsafe)
{
    size_t len = strlen(s);
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = urlsafe ? (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                (c >= '0' && c <= '9') || c == '_' || c == '-'
                          : c > 0x20 && c < 0x7f;
        if (!ok)
            return false;
    }
    return true;
}

static const char *format_rule(secret_format_t f)
{
    switch (f) {
    case FMT_WHSEC:
        return "whsec_ followed by the base64 of 24 to 64 bytes";
    case FMT_URLSAFE:
        return "1 to 256 of A-Z, a-z, 0-9, _ and -";
    default:
        return "1 to 4096 printable ASCII characters without blanks";
    }
}

static bool value_valid(secret_format_t f, const char *s)
{
    switch (f) {
    case FMT_WHSEC:
        return whsec_valid(s);
    case FMT_URLSAFE:
        return charset_valid(s, URLSAFE_MAX_BYTES, true);
    default:
        return charset_valid(s, TOKEN_MAX_BYTES, false);
    }
}

static void names_of_kind(const char *kind, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < IMP_ARRAY_LEN(specs) && used < cap; i++)
        if (strcmp(specs[i].kind, kind) == 0)
            used +=
                (size_t)snprintf(out + used, cap - used, "%s%s", used ? ", " : "", specs[i].name);
}

imp_error_t *control_secrets_check(const char *kind, const json_t *secrets, const char *field)
{
    if (!json_is_object(secrets))
        return imp_error_new(IMP_ERR_POISON, "bad_command", "%s is not an object", field);
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)secrets, name, v)
    {
        int i = spec_of(kind, name);
        if (i < 0) {
            char known[256];
            names_of_kind(kind, known, sizeof(known));
            return imp_error_new(IMP_ERR_POISON, "bad_command",
                                 "%s.%.64s is not a secret of a %s channel (%s)", field, name, kind,
                                 known);
        }
        if (!json_is_string(v) || !value_valid(specs[i].format, json_string_value(v)))
            return imp_error_new(IMP_ERR_POISON, "bad_command", "%s.%s is not %s", field, name,
                                 format_rule(specs[i].format));
    }
    return NULL;
}

/* A new random value for spec i, as a new JSON string. */
static json_t *random_value(size_t i)
{
    uint8_t raw[RANDOM_BYTES];
    char text[WHSEC_PREFIX_LEN + IMP_BASE64_ENCODED_LEN(RANDOM_BYTES) + 1];
    imp_crypto_random(raw, sizeof(raw));
    if (specs[i].format == FMT_WHSEC) {
        memcpy(text, WHSEC_PREFIX, WHSEC_PREFIX_LEN);
        imp_base64_encode(raw, sizeof(raw), text + WHSEC_PREFIX_LEN);
    } else {
        imp_base64url_encode(raw, sizeof(raw), text);
    }
    json_t *v = json_string(text);
    imp_crypto_wipe(raw, sizeof(raw));
    imp_crypto_wipe(text, sizeof(text));
    return v;
}

static void set_generated(size_t i, json_t *secrets, json_t *generated)
{
    json_t *v = random_value(i);
    if (generated != NULL)
        json_object_set(generated, specs[i].name, v);
    json_object_set_new(secrets, specs[i].name, v);
}

int control_secrets_fill_missing(const char *kind, json_t *secrets, json_t *generated)
{
    int n = 0;
    for (size_t i = 0; i < IMP_ARRAY_LEN(specs); i++) {
        if (strcmp(specs[i].kind, kind) != 0 || !specs[i].issued ||
            json_object_get(secrets, specs[i].name) != NULL)
            continue;
        set_generated(i, secrets, generated);
        n++;
    }
    return n;
}

int control_secrets_regenerate(const char *kind, json_t *secrets, const json_t *given,
                               json_t *generated)
{
    int n = 0;
    for (size_t i = 0; i < IMP_ARRAY_LEN(specs); i++) {
        if (strcmp(specs[i].kind, kind) != 0 || !specs[i].issued || !specs[i].verification ||
            (given != NULL && json_object_get(given, specs[i].name) != NULL))
            continue;
        set_generated(i, secrets, generated);
        n++;
    }
    return n;
}

const char *control_secrets_missing(const char *kind, const json_t *secrets)
{
    for (size_t i = 0; i < IMP_ARRAY_LEN(specs); i++)
        if (strcmp(specs[i].kind, kind) == 0 && specs[i].verification &&
            json_object_get(secrets, specs[i].name) == NULL)
            return specs[i].name;
    return NULL;
}

json_t *control_secrets_verification(const char *kind, const json_t *secrets)
{
    json_t *out = json_object();
    for (size_t i = 0; i < IMP_ARRAY_LEN(specs); i++) {
        json_t *v = json_object_get(secrets, specs[i].name);
        if (strcmp(specs[i].kind, kind) == 0 && specs[i].verification && v != NULL)
            json_object_set(out, specs[i].name, v);
    }
    return out;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *control_secrets_names(const json_t *secrets)
{
    size_t n = json_object_size(secrets), k = 0;
    const char **names = imp_calloc(n ? n : 1, sizeof(*names));
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)secrets, name, v)
    {
        names[k++] = name;
    }
    qsort(names, k, sizeof(*names), compare_names);
    json_t *out = json_array();
    for (size_t i = 0; i < k; i++)
        json_array_append_new(out, json_string(names[i]));
    free(names);
    return out;
}

imp_error_t *control_seal_json(const uint8_t *key, const json_t *obj, const char *aad, char **token)
{
    char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL)
        abort(); /* only out of memory makes json_dumps fail on an object */
    size_t len = strlen(text);
    imp_error_t *err = imp_crypto_seal(key, text, len, aad, strlen(aad), token);
    imp_crypto_wipe(text, len);
    free(text);
    return err;
}

imp_error_t *control_open_json(const uint8_t *key, const char *token, const char *aad, json_t **out)
{
    uint8_t *plain = NULL;
    size_t len = 0;
    *out = NULL;
    imp_error_t *err = imp_crypto_open(key, token, aad, strlen(aad), &plain, &len);
    if (err != NULL)
        return err;
    json_t *obj = json_loadb((const char *)plain, len, JSON_REJECT_DUPLICATES, NULL);
    imp_crypto_wipe(plain, len);
    free(plain);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return imp_error_new(IMP_ERR_POISON, "secret_malformed",
                             "sealed secrets are not a JSON object");
    }
    *out = obj;
    return NULL;
}
