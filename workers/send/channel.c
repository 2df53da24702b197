/* The tenant's channel: settings and secrets (opened with IMP_SECRET_KEY, associated data the
 * tenant UUID), and the provider and base URL a message of that kind goes to. */
#include "send.h"

#include "imp/mem.h"

#include <stdlib.h>
#include <string.h>

#define SQL_CHANNEL                                                                                \
    "SELECT enabled, settings::text, secrets_enc FROM channels "                                   \
    "WHERE tenant_id = $1 AND kind = $2 ORDER BY (name = 'default') DESC, created_at LIMIT 1"

imp_error_t *send_route(const send_t *st, const char *kind, const send_channel_t *ch,
                        const send_provider_t **provider, const char **base)
{
    const char *fleet = NULL;
    *base = "";
    if (strcmp(kind, "test") == 0) {
        *provider = &send_provider_sink;
        return NULL;
    }
    if (strcmp(kind, "generic") == 0) {
        /* No callback URL: nowhere to deliver, so the reply is recorded (like an unset
         * provider URL) rather than dead-lettered. */
        const char *cb = json_string_value(json_object_get(ch->settings, "callback_url"));
        *provider = cb != NULL && cb[0] != '\0' ? &send_provider_generic : &send_provider_sink;
        return NULL;
    }
    if (strcmp(kind, "chatflow") == 0) {
        *provider = &send_provider_chatflow;
        fleet = st->s->chatflow_url;
    } else if (strcmp(kind, "whatsapp") == 0) {
        *provider = &send_provider_whatsapp;
        fleet = st->s->whatsapp_url;
    } else if (strcmp(kind, "telegram") == 0) {
        *provider = &send_provider_telegram;
        fleet = st->s->telegram_url;
    } else {
        return imp_error_new(IMP_ERR_POISON, "bad_outbound", "data.channel: unknown kind \"%s\"",
                             kind);
    }
    const char *own = json_string_value(json_object_get(ch->settings, "api_url"));
    *base = own != NULL && own[0] != '\0' ? own : fleet;
    if ((*base)[0] == '\0')
        *provider = &send_provider_sink;
    return NULL;
}

static imp_error_t *open_secrets(send_t *st, const char *tenant, const char *token,
                                 send_channel_t *ch)
{
    if (token == NULL) {
        ch->secrets = json_object();
        return NULL;
    }
    uint8_t *plain = NULL;
    size_t len = 0;
    imp_error_t *err = imp_crypto_open(st->key, token, tenant, strlen(tenant), &plain, &len);
    if (err != NULL)
        return imp_error_prefix(err, "channel secrets: ");
    ch->secrets = json_loadb((const char *)plain, len, 0, NULL);
    imp_crypto_wipe(plain, len);
    free(plain);
    if (!json_is_object(ch->secrets))
        return imp_error_new(IMP_ERR_POISON, "secret_malformed",
                             "channel secrets are not a JSON object");
    return NULL;
}

imp_error_t *send_channel_load(send_t *st, imp_pg_t *pg, const char *tenant, const char *kind,
                               send_channel_t *ch)
{
    memset(ch, 0, sizeof(*ch));
    if (strcmp(kind, "test") == 0) {
        ch->settings = json_object();
        ch->secrets = json_object();
        return NULL;
    }
    imp_pg_result_t *res = NULL;
    const char *params[] = {tenant, kind};
    imp_error_t *err = imp_pg_exec_cached(pg, SQL_CHANNEL, 2, params, &res);
    if (err != NULL)
        return err;
    bool enabled = false;
    if (imp_pg_result_rows(res) == 0) {
        err =
            imp_error_new(IMP_ERR_POISON, "channel_missing", "the tenant has no %s channel", kind);
    } else if (imp_pg_result_get_bool(res, 0, 0, &enabled) != 0 || !enabled) {
        err = imp_error_new(IMP_ERR_POISON, "channel_disabled",
                            "the tenant's %s channel is disabled", kind);
    } else {
        ch->settings = json_loads(imp_pg_result_value(res, 0, 1), 0, NULL);
        if (!json_is_object(ch->settings)) {
            json_decref(ch->settings);
            ch->settings = json_object();
        }
        err = open_secrets(st, tenant, imp_pg_result_value(res, 0, 2), ch);
    }
    imp_pg_result_free(res);
    if (err != NULL)
        send_channel_dispose(ch);
    return err;
}

void send_channel_dispose(send_channel_t *ch)
{
    json_decref(ch->settings);
    json_decref(ch->secrets);
    ch->settings = NULL;
    ch->secrets = NULL;
}
