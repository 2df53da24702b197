/* Bot command data and bot version settings: the rules of
 * schemas/events/imp.command.bot.*.v1.json, checked by hand. Shared by the worker and the
 * client, which checks a command before it sends it. */
#include "bot.h"

#include "imp/kb.h"
#include "imp/mem.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define BOT_MEMBERS_MAX 8
#define BOT_ACTOR_MAX_BYTES 128

static const struct {
    const char *type;
    const char *members[BOT_MEMBERS_MAX];
} bot_cmds[CONTROL_BOT_COUNT] = {
    {"imp.command.bot.draft.v1",
     {"slug", "instruction", "settings", "kb_version", "if_changed", "actor"}},
    {"imp.command.bot.publish.v1", {"slug", "version", "channel", "actor"}},
    {"imp.command.bot.rollback.v1", {"slug", "actor"}},
    {"imp.command.bot.channel.v1", {"slug", "channel", "actor"}},
};

static const char *const settings_members[] = {"qc", "safe_reply"};
static const char *const qc_members[] = {"min_confidence", "max_length", "must_cite",
                                         "forbidden_topics"};

static imp_error_t *bot_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static imp_error_t *bot_bad(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return imp_error_new(IMP_ERR_POISON, "bad_command", "%s", msg);
}

const char *control_bot_cmd_type(control_bot_cmd_t cmd)
{
    return bot_cmds[cmd].type;
}

int control_bot_cmd_of_type(const char *type)
{
    for (int i = 0; i < CONTROL_BOT_COUNT; i++)
        if (strcmp(bot_cmds[i].type, type) == 0)
            return i;
    return -1;
}

/* ---- text ----------------------------------------------------------------------------------- */

/* The C0 and C1 control characters and DEL at s[i]; with lines, line breaks and tabs pass. */
static bool bot_control_char_at(const char *s, size_t i, bool lines)
{
    unsigned char c = (unsigned char)s[i];
    if (lines && (c == '\n' || c == '\r' || c == '\t'))
        return false;
    if (c < 0x20 || c == 0x7f)
        return true;
    return c == 0xc2 && (unsigned char)s[i + 1] >= 0x80 && (unsigned char)s[i + 1] <= 0x9f;
}

/* 1 to max characters of UTF-8 without NUL or control characters (line breaks and tabs
 * allowed with lines), not only blanks. */
static bool bot_text_valid(const char *s, size_t len, size_t max_chars, bool lines)
{
    bool blank = true;
    if (len == 0 || memchr(s, '\0', len) != NULL || !imp_kb_utf8_valid(s, len, NULL) ||
        imp_kb_utf8_count(s, len) > max_chars)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (bot_control_char_at(s, i, lines))
            return false;
        if (s[i] != ' ' && s[i] != '\n' && s[i] != '\r' && s[i] != '\t')
            blank = false;
    }
    return !blank;
}

bool control_bot_instruction_valid(const char *s, size_t len)
{
    return bot_text_valid(s, len, CONTROL_BOT_INSTRUCTION_MAX_CHARS, true);
}

/* ---- settings ------------------------------------------------------------------------------- */

static bool bot_known(const char *const *names, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], key) == 0)
            return true;
    return false;
}

static imp_error_t *bot_check_topics(const json_t *v, const char *field)
{
    if (!json_is_array(v) || json_array_size(v) > CONTROL_BOT_TOPICS_MAX)
        return bot_bad("%s.qc.forbidden_topics is not an array of at most %d strings", field,
                       CONTROL_BOT_TOPICS_MAX);
    size_t i;
    const json_t *p;
    json_array_foreach(v, i, p)
    {
        if (!json_is_string(p) || !bot_text_valid(json_string_value(p), json_string_length(p),
                                                  CONTROL_BOT_TOPIC_MAX_CHARS, false))
            return bot_bad("%s.qc.forbidden_topics[%zu] is not a text of 1 to %d characters "
                           "without control characters",
                           field, i, CONTROL_BOT_TOPIC_MAX_CHARS);
        for (size_t j = 0; j < i; j++)
            if (json_equal(p, json_array_get(v, j)))
                return bot_bad("%s.qc.forbidden_topics[%zu] repeats topic %zu", field, i, j);
    }
    return NULL;
}

static imp_error_t *bot_check_qc(const json_t *qc, const char *field)
{
    if (!json_is_object(qc))
        return bot_bad("%s.qc is not an object (min_confidence, max_length, must_cite, "
                       "forbidden_topics)",
                       field);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)qc, key, v)
    {
        if (!bot_known(qc_members, IMP_ARRAY_LEN(qc_members), key))
            return bot_bad("%s.qc.%.64s is not a QC rule (min_confidence, max_length, must_cite, "
                           "forbidden_topics)",
                           field, key);
    }
    v = json_object_get(qc, "min_confidence");
    if (v != NULL && (!json_is_number(v) || !isfinite(json_number_value(v)) ||
                      json_number_value(v) < 0 || json_number_value(v) > 1))
        return bot_bad("%s.qc.min_confidence is not a number from 0 to 1", field);
    v = json_object_get(qc, "max_length");
    if (v != NULL && (!json_is_integer(v) || json_integer_value(v) < 1 ||
                      json_integer_value(v) > CONTROL_BOT_MAX_LENGTH_MAX))
        return bot_bad("%s.qc.max_length is not a whole number of characters from 1 to %d", field,
                       CONTROL_BOT_MAX_LENGTH_MAX);
    v = json_object_get(qc, "must_cite");
    if (v != NULL && !json_is_boolean(v))
        return bot_bad("%s.qc.must_cite is not true or false", field);
    v = json_object_get(qc, "forbidden_topics");
    return v != NULL ? bot_check_topics(v, field) : NULL;
}

imp_error_t *control_bot_settings_check(const json_t *settings, const char *field)
{
    if (!json_is_object(settings))
        return bot_bad("%s is not an object (qc, safe_reply)", field);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)settings, key, v)
    {
        if (!bot_known(settings_members, IMP_ARRAY_LEN(settings_members), key))
            return bot_bad("%s.%.64s is not a bot setting (qc, safe_reply)", field, key);
    }
    v = json_object_get(settings, "safe_reply");
    if (v != NULL &&
        (!json_is_string(v) || !bot_text_valid(json_string_value(v), json_string_length(v),
                                               CONTROL_BOT_SAFE_REPLY_MAX_CHARS, true)))
        return bot_bad("%s.safe_reply is not a text of 1 to %d characters", field,
                       CONTROL_BOT_SAFE_REPLY_MAX_CHARS);
    v = json_object_get(settings, "qc");
    return v != NULL ? bot_check_qc(v, field) : NULL;
}

/* ---- command data --------------------------------------------------------------------------- */

static imp_error_t *bot_check_members(control_bot_cmd_t cmd, const json_t *data)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)data, key, v)
    {
        bool ok = false;
        for (size_t i = 0; i < BOT_MEMBERS_MAX && bot_cmds[cmd].members[i] != NULL; i++)
            ok = ok || strcmp(bot_cmds[cmd].members[i], key) == 0;
        if (!ok)
            return bot_bad("data.%.64s is not a member of %s", key, bot_cmds[cmd].type);
    }
    return NULL;
}

static imp_error_t *bot_string_member(const json_t *data, const char *name, bool required,
                                      const char **out)
{
    json_t *v = json_object_get(data, name);
    *out = NULL;
    if (v == NULL)
        return required ? bot_bad("data.%s is required", name) : NULL;
    if (!json_is_string(v))
        return bot_bad("data.%s is not a string", name);
    *out = json_string_value(v);
    return NULL;
}

static imp_error_t *bot_parse_common(const json_t *data, control_bot_data_t *out)
{
    imp_error_t *err = bot_string_member(data, "slug", true, &out->slug);
    if (err == NULL && !control_slug_valid(out->slug))
        err = bot_bad("data.slug: \"%.64s\" is not a tenant slug", out->slug);
    if (err == NULL)
        err = bot_string_member(data, "actor", false, &out->actor);
    if (err != NULL)
        return err;
    if (out->actor == NULL) {
        out->actor = "unknown";
        return NULL;
    }
    size_t len = strlen(out->actor);
    bool ok = len > 0 && len <= BOT_ACTOR_MAX_BYTES;
    for (size_t i = 0; ok && i < len; i++)
        ok = (unsigned char)out->actor[i] >= 0x20 && out->actor[i] != 0x7f;
    return ok ? NULL
              : bot_bad("data.actor must be 1 to %d bytes without control characters",
                        BOT_ACTOR_MAX_BYTES);
}

static imp_error_t *bot_parse_draft(const json_t *data, control_bot_data_t *out)
{
    const json_t *ins = json_object_get(data, "instruction");
    if (ins != NULL && !json_is_null(ins) &&
        (!json_is_string(ins) ||
         !control_bot_instruction_valid(json_string_value(ins), json_string_length(ins))))
        return bot_bad("data.instruction is neither null nor a text of 1 to %d characters "
                       "without NUL or control characters",
                       CONTROL_BOT_INSTRUCTION_MAX_CHARS);
    out->instruction = ins;
    out->settings = json_object_get(data, "settings");
    if (out->settings != NULL) {
        imp_error_t *err = control_bot_settings_check(out->settings, "data.settings");
        if (err != NULL)
            return err;
    }
    const json_t *kb = json_object_get(data, "kb_version");
    if (kb != NULL && !json_is_null(kb) &&
        (!json_is_integer(kb) || json_integer_value(kb) < 1 || json_integer_value(kb) > INT32_MAX))
        return bot_bad("data.kb_version is neither null nor a version number (1 to %d)", INT32_MAX);
    out->kb_version = json_is_integer(kb) ? (long long)json_integer_value(kb) : 0;
    const json_t *ic = json_object_get(data, "if_changed");
    if (ic != NULL && !json_is_boolean(ic))
        return bot_bad("data.if_changed is not true or false");
    out->if_changed = json_is_true(ic);
    return NULL;
}

static imp_error_t *bot_parse_channel(const json_t *data, control_bot_data_t *out)
{
    imp_error_t *err = bot_string_member(data, "channel", true, &out->channel);
    if (err == NULL && strcmp(out->channel, "stable") != 0 && strcmp(out->channel, "canary") != 0)
        err = bot_bad("data.channel: \"%.32s\" is not stable or canary", out->channel);
    return err;
}

static imp_error_t *bot_parse_publish(const json_t *data, control_bot_data_t *out)
{
    const json_t *v = json_object_get(data, "version");
    if (v == NULL)
        return bot_bad("data.version is required");
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > INT32_MAX)
        return bot_bad("data.version is not an integer from 1 to %d", INT32_MAX);
    out->version = (long long)json_integer_value(v);
    return bot_parse_channel(data, out);
}

imp_error_t *control_bot_data_parse(control_bot_cmd_t cmd, const json_t *data,
                                    control_bot_data_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(data))
        return bot_bad("data is not an object");
    imp_error_t *err = bot_check_members(cmd, data);
    if (err == NULL)
        err = bot_parse_common(data, out);
    if (err != NULL)
        return err;
    switch (cmd) {
    case CONTROL_BOT_DRAFT:
        return bot_parse_draft(data, out);
    case CONTROL_BOT_PUBLISH:
        return bot_parse_publish(data, out);
    case CONTROL_BOT_CHANNEL:
        return bot_parse_channel(data, out);
    default:
        return NULL;
    }
}
