/* Command data: the rules of schemas/events/imp.command.*.v1.json, checked by hand (there is
 * no C JSON Schema validator). Shared by the worker and the client, which checks a command
 * before it sends it. */
#include "control.h"

#include "imp/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define MEMBERS_MAX 8
#define NAME_MAX_BYTES 200
#define ACTOR_MAX_BYTES 128
#define URL_MAX_BYTES 2048
#define SEALED_MAX_BYTES (128 * 1024)

static const char *const types[CONTROL_CMD_COUNT] = {
    "imp.command.tenant.create.v1", "imp.command.tenant.status.v1",  "imp.command.channel.set.v1",
    "imp.command.secret.rotate.v1", "imp.command.tenant.publish.v1",
};

static const char *const members[CONTROL_CMD_COUNT][MEMBERS_MAX] = {
    {"slug", "name", "plan", "actor"},
    {"slug", "status", "actor"},
    {"slug", "kind", "enabled", "settings", "secrets_enc", "actor"},
    {"slug", "kind", "grace_s", "secrets_enc", "actor"},
    {"slug", "actor"},
};

static const char *const kinds[] = {"chatflow", "whatsapp", "telegram", "generic", "test"};

/* Settings a channel may carry: what is not secret. A key not listed here is refused, so
 * that a token cannot end up in settings, which the API role can read. */
typedef enum { SET_URL, SET_DIGITS, SET_CHAT_ID } setting_format_t;
static const struct {
    const char *name;
    setting_format_t format;
} settings_known[] = {
    {"api_url", SET_URL},
    {"phone_number_id", SET_DIGITS},
    {"manager_chat_id", SET_CHAT_ID},
    {"callback_url", SET_URL},
};

static imp_error_t *bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static imp_error_t *bad(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return imp_error_new(IMP_ERR_POISON, "bad_command", "%s", msg);
}

const char *control_cmd_type(control_cmd_t cmd)
{
    return types[cmd];
}

int control_cmd_of_type(const char *type)
{
    for (int i = 0; i < CONTROL_CMD_COUNT; i++)
        if (strcmp(types[i], type) == 0)
            return i;
    return -1;
}

static bool in_range(char c, char lo, char hi)
{
    return c >= lo && c <= hi;
}

static bool lower_or_digit(char c)
{
    return in_range(c, 'a', 'z') || in_range(c, '0', '9');
}

/* ^[a-z0-9][a-z0-9-]{0,62}$ */
bool control_slug_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 63 || !lower_or_digit(s[0]))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!lower_or_digit(s[i]) && s[i] != '-')
            return false;
    return true;
}

bool control_kind_valid(const char *s)
{
    for (size_t i = 0; i < IMP_ARRAY_LEN(kinds); i++)
        if (strcmp(kinds[i], s) == 0)
            return true;
    return false;
}

bool control_uuid_valid(const char *s)
{
    if (strlen(s) != IMP_UUID_STR_LEN)
        return false;
    for (size_t i = 0; i < IMP_UUID_STR_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !(in_range(s[i], '0', '9') || in_range(s[i], 'a', 'f')))
            return false;
    }
    return true;
}

/* ^[a-z0-9][a-z0-9_-]{0,31}$ */
static bool plan_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > 32 || !lower_or_digit(s[0]))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!lower_or_digit(s[i]) && s[i] != '-' && s[i] != '_')
            return false;
    return true;
}

/* Non-empty, at most max bytes, no control characters, not only blanks. */
static bool text_valid(const char *s, size_t max)
{
    size_t len = strlen(s);
    bool blank = true;
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c != ' ')
            blank = false;
    }
    return !blank;
}

static bool digits_valid(const char *s, size_t max, bool sign)
{
    if (sign && *s == '-')
        s++;
    size_t len = strlen(s);
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!in_range(s[i], '0', '9'))
            return false;
    return true;
}

static bool url_valid(const char *s)
{
    size_t len = strlen(s);
    size_t skip = strncmp(s, "https://", 8) == 0 ? 8 : strncmp(s, "http://", 7) == 0 ? 7 : 0;
    if (skip == 0 || len == skip || len > URL_MAX_BYTES)
        return false;
    for (size_t i = skip; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
            return false;
    return s[skip] != '/';
}

static imp_error_t *check_members(control_cmd_t cmd, const json_t *data)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)data, key, v)
    {
        bool known = false;
        for (size_t i = 0; i < MEMBERS_MAX && members[cmd][i] != NULL; i++)
            known = known || strcmp(members[cmd][i], key) == 0;
        if (!known)
            return bad("data.%.64s is not a member of %s", key, types[cmd]);
    }
    return NULL;
}

/* A string member: NULL in *out when absent and optional. */
static imp_error_t *string_member(const json_t *data, const char *name, bool required,
                                  const char **out)
{
    json_t *v = json_object_get(data, name);
    *out = NULL;
    if (v == NULL)
        return required ? bad("data.%s is required", name) : NULL;
    if (!json_is_string(v))
        return bad("data.%s is not a string", name);
    *out = json_string_value(v);
    return NULL;
}

static imp_error_t *parse_slug(const json_t *data, control_data_t *out)
{
    imp_error_t *err = string_member(data, "slug", true, &out->slug);
    if (err == NULL && !control_slug_valid(out->slug))
        err = bad("data.slug: \"%.64s\" is not a tenant slug (lowercase letters, digits and '-', "
                  "1 to 63 characters, not starting with '-')",
                  out->slug);
    return err;
}

static imp_error_t *parse_actor(const json_t *data, control_data_t *out)
{
    imp_error_t *err = string_member(data, "actor", false, &out->actor);
    if (err != NULL)
        return err;
    if (out->actor == NULL)
        out->actor = "unknown";
    else if (!text_valid(out->actor, ACTOR_MAX_BYTES))
        return bad("data.actor must be 1 to %d bytes without control characters", ACTOR_MAX_BYTES);
    return NULL;
}

static imp_error_t *parse_kind(const json_t *data, control_data_t *out)
{
    imp_error_t *err = string_member(data, "kind", true, &out->kind);
    if (err == NULL && !control_kind_valid(out->kind))
        err = bad("data.kind: \"%.64s\" is not a channel kind (chatflow, whatsapp, telegram, "
                  "generic, test)",
                  out->kind);
    return err;
}

static imp_error_t *parse_secrets_enc(const json_t *data, control_data_t *out)
{
    imp_error_t *err = string_member(data, "secrets_enc", false, &out->secrets_enc);
    if (err == NULL && out->secrets_enc != NULL &&
        (strncmp(out->secrets_enc, "v1:", 3) != 0 || strlen(out->secrets_enc) > SEALED_MAX_BYTES))
        err = bad("data.secrets_enc is not a sealed token (v1:...)");
    return err;
}

static imp_error_t *parse_create(const json_t *data, control_data_t *out)
{
    imp_error_t *err = string_member(data, "name", true, &out->name);
    if (err == NULL && !text_valid(out->name, NAME_MAX_BYTES))
        err = bad("data.name must be 1 to %d bytes, not blank, without control characters",
                  NAME_MAX_BYTES);
    if (err == NULL)
        err = string_member(data, "plan", false, &out->plan);
    if (err == NULL && out->plan == NULL)
        out->plan = "free";
    if (err == NULL && !plan_valid(out->plan))
        err = bad("data.plan: \"%.64s\" is not a plan name (lowercase letters, digits, '-' and "
                  "'_', at most 32)",
                  out->plan);
    return err;
}

static imp_error_t *parse_status(const json_t *data, control_data_t *out)
{
    imp_error_t *err = string_member(data, "status", true, &out->status);
    if (err == NULL && strcmp(out->status, "active") != 0 && strcmp(out->status, "disabled") != 0)
        err = bad("data.status: \"%.64s\" is neither active nor disabled", out->status);
    return err;
}

static imp_error_t *check_setting(const char *key, const json_t *v)
{
    for (size_t i = 0; i < IMP_ARRAY_LEN(settings_known); i++) {
        if (strcmp(settings_known[i].name, key) != 0)
            continue;
        if (json_is_null(v))
            return NULL;
        if (!json_is_string(v))
            return bad("data.settings.%s is neither a string nor null", key);
        const char *s = json_string_value(v);
        switch (settings_known[i].format) {
        case SET_URL:
            if (!url_valid(s))
                return bad("data.settings.%s is not an http:// or https:// URL", key);
            break;
        case SET_DIGITS:
            if (!digits_valid(s, 32, false))
                return bad("data.settings.%s is not 1 to 32 digits", key);
            break;
        case SET_CHAT_ID:
            if (!digits_valid(s, 20, true))
                return bad("data.settings.%s is not a chat id (digits, optionally after '-')", key);
            break;
        }
        return NULL;
    }
    return bad("data.settings.%.64s is not a channel setting (api_url, phone_number_id, "
               "manager_chat_id, callback_url; secrets go in secrets)",
               key);
}

static imp_error_t *parse_channel_set(const json_t *data, control_data_t *out)
{
    imp_error_t *err = parse_kind(data, out);
    if (err != NULL)
        return err;
    json_t *enabled = json_object_get(data, "enabled");
    if (enabled != NULL && !json_is_boolean(enabled))
        return bad("data.enabled is not true or false");
    out->enabled = enabled == NULL ? -1 : json_is_true(enabled);
    json_t *settings = json_object_get(data, "settings");
    if (settings != NULL && !json_is_object(settings))
        return bad("data.settings is not an object");
    const char *key;
    json_t *v;
    json_object_foreach(settings, key, v)
    {
        if ((err = check_setting(key, v)) != NULL)
            return err;
    }
    out->settings = settings;
    return parse_secrets_enc(data, out);
}

static imp_error_t *parse_rotate(const json_t *data, control_data_t *out)
{
    imp_error_t *err = parse_kind(data, out);
    if (err != NULL)
        return err;
    json_t *grace = json_object_get(data, "grace_s");
    out->grace_s = CONTROL_GRACE_DEFAULT_S;
    if (grace != NULL) {
        if (!json_is_integer(grace) || json_integer_value(grace) < 0 ||
            json_integer_value(grace) > CONTROL_GRACE_MAX_S)
            return bad("data.grace_s is not an integer from 0 to %lld (30 days)",
                       CONTROL_GRACE_MAX_S);
        out->grace_s = (long long)json_integer_value(grace);
    }
    return parse_secrets_enc(data, out);
}

imp_error_t *control_data_parse(control_cmd_t cmd, const json_t *data, control_data_t *out)
{
    memset(out, 0, sizeof(*out));
    out->enabled = -1;
    if (!json_is_object(data))
        return bad("data is not an object");
    imp_error_t *err = check_members(cmd, data);
    if (err == NULL)
        err = parse_slug(data, out);
    if (err == NULL)
        err = parse_actor(data, out);
    if (err != NULL)
        return err;
    switch (cmd) {
    case CONTROL_CMD_TENANT_CREATE:
        return parse_create(data, out);
    case CONTROL_CMD_TENANT_STATUS:
        return parse_status(data, out);
    case CONTROL_CMD_CHANNEL_SET:
        return parse_channel_set(data, out);
    case CONTROL_CMD_TENANT_PUBLISH:
        return NULL;
    default:
        return parse_rotate(data, out);
    }
}
