/* Knowledge-base command data: the rules of schemas/events/imp.command.kb.*.v1.json, checked
 * by hand. Shared by the worker and the client, which checks a command before it sends it. */
#include "control.h"

#include "imp/kb.h"
#include "imp/mem.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define KB_MEMBERS_MAX 8
#define KB_ACTOR_MAX_BYTES 128

static const struct {
    const char *type;
    const char *event; /* imp.kb.v1 type when imperium-indexer applies it */
    const char *step;
    const char *members[KB_MEMBERS_MAX];
} kb_cmds[CONTROL_KB_COUNT] = {
    {"imp.command.kb.source.put.v1", NULL, NULL, {"slug", "name", "format", "content", "actor"}},
    {"imp.command.kb.source.remove.v1", NULL, NULL, {"slug", "name", "actor"}},
    {"imp.command.kb.questions.set.v1", NULL, NULL, {"slug", "questions", "actor"}},
    {"imp.command.kb.settings.v1",
     NULL,
     NULL,
     {"slug", "min_hit_rate", "eval_k", "chunk", "actor"}},
    {"imp.command.kb.build.v1", "imp.kb.build.v1", "kb.build", {"slug", "if_changed", "actor"}},
    {"imp.command.kb.promote.v1", "imp.kb.promote.v1", "kb.promote", {"slug", "version", "actor"}},
    {"imp.command.kb.rollback.v1", "imp.kb.rollback.v1", "kb.rollback", {"slug", "actor"}},
    {"imp.command.kb.eval.v1", "imp.kb.eval.v1", "kb.eval", {"slug", "version", "k", "actor"}},
};

static imp_error_t *kb_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static imp_error_t *kb_bad(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return imp_error_new(IMP_ERR_POISON, "bad_command", "%s", msg);
}

const char *control_kb_cmd_type(control_kb_cmd_t cmd)
{
    return kb_cmds[cmd].type;
}

int control_kb_cmd_of_type(const char *type)
{
    for (int i = 0; i < CONTROL_KB_COUNT; i++)
        if (strcmp(kb_cmds[i].type, type) == 0)
            return i;
    return -1;
}

const char *control_kb_event_type(control_kb_cmd_t cmd)
{
    return kb_cmds[cmd].event;
}

const char *control_kb_forward_step(control_kb_cmd_t cmd)
{
    return kb_cmds[cmd].step;
}

/* True for the C0 and C1 control characters and DEL at s[i] (what [:cntrl:] matches). */
static bool control_char_at(const char *s, size_t i)
{
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == 0x7f)
        return true;
    return c == 0xc2 && (unsigned char)s[i + 1] >= 0x80 && (unsigned char)s[i + 1] <= 0x9f;
}

bool control_kb_source_name_valid(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || s[0] == ' ' || s[len - 1] == ' ' || !imp_kb_utf8_valid(s, len, NULL))
        return false;
    if (imp_kb_utf8_count(s, len) > CONTROL_KB_NAME_MAX_CHARS)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '/' || control_char_at(s, i))
            return false;
    return true;
}

/* 1 to max characters, valid UTF-8, no control characters, not only blanks. */
static bool line_valid(const char *s, size_t max_chars)
{
    size_t len = strlen(s);
    bool blank = true;
    if (len == 0 || !imp_kb_utf8_valid(s, len, NULL) || imp_kb_utf8_count(s, len) > max_chars)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (control_char_at(s, i))
            return false;
        if (s[i] != ' ')
            blank = false;
    }
    return !blank;
}

static imp_error_t *kb_check_members(control_kb_cmd_t cmd, const json_t *data)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)data, key, v)
    {
        bool known = false;
        for (size_t i = 0; i < KB_MEMBERS_MAX && kb_cmds[cmd].members[i] != NULL; i++)
            known = known || strcmp(kb_cmds[cmd].members[i], key) == 0;
        if (!known)
            return kb_bad("data.%.64s is not a member of %s", key, kb_cmds[cmd].type);
    }
    return NULL;
}

static imp_error_t *kb_string_member(const json_t *data, const char *name, bool required,
                                     const char **out)
{
    json_t *v = json_object_get(data, name);
    *out = NULL;
    if (v == NULL)
        return required ? kb_bad("data.%s is required", name) : NULL;
    if (!json_is_string(v))
        return kb_bad("data.%s is not a string", name);
    *out = json_string_value(v);
    return NULL;
}

/* An integer member from lo to hi; *out untouched when absent and optional. */
static imp_error_t *int_member(const json_t *data, const char *name, bool required, long long lo,
                               long long hi, long long *out)
{
    json_t *v = json_object_get(data, name);
    if (v == NULL)
        return required ? kb_bad("data.%s is required", name) : NULL;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return kb_bad("data.%s is not an integer from %lld to %lld", name, lo, hi);
    *out = (long long)json_integer_value(v);
    return NULL;
}

static imp_error_t *parse_common(const json_t *data, control_kb_data_t *out)
{
    imp_error_t *err = kb_string_member(data, "slug", true, &out->slug);
    if (err == NULL && !control_slug_valid(out->slug))
        err = kb_bad("data.slug: \"%.64s\" is not a tenant slug", out->slug);
    if (err == NULL)
        err = kb_string_member(data, "actor", false, &out->actor);
    if (err != NULL)
        return err;
    if (out->actor == NULL) {
        out->actor = "unknown";
        return NULL;
    }
    size_t len = strlen(out->actor);
    bool ok = len > 0 && len <= KB_ACTOR_MAX_BYTES;
    for (size_t i = 0; ok && i < len; i++)
        ok = (unsigned char)out->actor[i] >= 0x20 && out->actor[i] != 0x7f;
    return ok ? NULL
              : kb_bad("data.actor must be 1 to %d bytes without control characters",
                       KB_ACTOR_MAX_BYTES);
}

static imp_error_t *parse_name(const json_t *data, control_kb_data_t *out)
{
    imp_error_t *err = kb_string_member(data, "name", true, &out->name);
    if (err == NULL && !control_kb_source_name_valid(out->name))
        err = kb_bad("data.name: \"%.64s\" is not a source name (1 to %d characters, no '/' or "
                     "control characters, no leading or trailing blank)",
                     out->name, CONTROL_KB_NAME_MAX_CHARS);
    return err;
}

static imp_error_t *parse_put(const json_t *data, control_kb_data_t *out)
{
    imp_error_t *err = parse_name(data, out);
    imp_kb_format_t format;
    if (err == NULL)
        err = kb_string_member(data, "format", true, &out->format);
    if (err == NULL && imp_kb_format_parse(out->format, &format) != 0)
        err =
            kb_bad("data.format: \"%.32s\" is not markdown, text, qa_csv or qa_json", out->format);
    if (err == NULL)
        err = kb_string_member(data, "content", true, &out->content);
    if (err != NULL)
        return err;
    out->content_len = json_string_length(json_object_get(data, "content"));
    if (out->content_len > IMP_KB_SOURCE_MAX)
        return kb_bad("data.content is %zu bytes; a source holds at most %d (512 KiB)",
                      out->content_len, IMP_KB_SOURCE_MAX);
    if (memchr(out->content, '\0', out->content_len) != NULL)
        return kb_bad("data.content holds a NUL character");
    return NULL;
}

/* One test question: {question, source?, fragment?}, at least one of the last two. */
static imp_error_t *check_question(const json_t *q, size_t i)
{
    if (!json_is_object(q))
        return kb_bad("data.questions[%zu] is not an object", i);
    const char *key, *text = NULL, *source = NULL, *fragment = NULL;
    json_t *v;
    json_object_foreach((json_t *)q, key, v)
    {
        if (strcmp(key, "question") != 0 && strcmp(key, "source") != 0 &&
            strcmp(key, "fragment") != 0)
            return kb_bad("data.questions[%zu].%.32s is not a member (question, source, fragment)",
                          i, key);
    }
    imp_error_t *err = kb_string_member(q, "question", true, &text);
    if (err == NULL)
        err = kb_string_member(q, "source", false, &source);
    if (err == NULL)
        err = kb_string_member(q, "fragment", false, &fragment);
    if (err != NULL)
        return imp_error_prefix(err, "data.questions[%zu]", i);
    if (!line_valid(text, CONTROL_KB_QUESTION_MAX_CHARS))
        return kb_bad("data.questions[%zu].question must be 1 to %d characters without control "
                      "characters",
                      i, CONTROL_KB_QUESTION_MAX_CHARS);
    if (source == NULL && fragment == NULL)
        return kb_bad("data.questions[%zu] names neither a source nor a fragment", i);
    if (source != NULL && !control_kb_source_name_valid(source))
        return kb_bad("data.questions[%zu].source is not a source name", i);
    if (fragment != NULL &&
        (fragment[0] == '\0' || !imp_kb_utf8_valid(fragment, strlen(fragment), NULL) ||
         imp_kb_utf8_count(fragment, strlen(fragment)) > CONTROL_KB_QUESTION_MAX_CHARS))
        return kb_bad("data.questions[%zu].fragment must be 1 to %d characters", i,
                      CONTROL_KB_QUESTION_MAX_CHARS);
    return NULL;
}

static imp_error_t *parse_questions(const json_t *data, control_kb_data_t *out)
{
    const json_t *qs = json_object_get(data, "questions");
    if (qs == NULL)
        return kb_bad("data.questions is required");
    if (!json_is_array(qs) || json_array_size(qs) > CONTROL_KB_QUESTIONS_MAX)
        return kb_bad("data.questions is not an array of at most %d questions",
                      CONTROL_KB_QUESTIONS_MAX);
    for (size_t i = 0; i < json_array_size(qs); i++) {
        imp_error_t *err = check_question(json_array_get(qs, i), i);
        if (err != NULL)
            return err;
        const char *text = json_string_value(json_object_get(json_array_get(qs, i), "question"));
        for (size_t j = 0; j < i; j++)
            if (strcmp(text,
                       json_string_value(json_object_get(json_array_get(qs, j), "question"))) == 0)
                return kb_bad("data.questions[%zu] repeats question %zu", i, j);
    }
    out->questions = qs;
    return NULL;
}

static imp_error_t *check_chunk(const json_t *chunk)
{
    static const char *const names[] = {"target_chars", "max_chars", "overlap_chars"};
    if (!json_is_object(chunk) || json_object_size(chunk) == 0)
        return kb_bad("data.chunk is neither null nor an object of target_chars, max_chars, "
                      "overlap_chars");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)chunk, key, v)
    {
        bool known = false;
        for (size_t i = 0; i < IMP_ARRAY_LEN(names); i++)
            known = known || strcmp(names[i], key) == 0;
        if (!known || !json_is_integer(v) || json_integer_value(v) < 0)
            return kb_bad("data.chunk.%.32s is not one of target_chars, max_chars, overlap_chars "
                          "with a whole number",
                          key);
    }
    char *text = json_dumps(chunk, JSON_COMPACT);
    imp_kb_chunk_settings_t set;
    imp_error_t *err = imp_kb_chunk_settings_parse(text, &set);
    free(text);
    if (err != NULL) {
        imp_error_t *why = kb_bad("data.chunk: %s", imp_error_message(err));
        imp_error_free(err);
        return why;
    }
    return NULL;
}

static imp_error_t *parse_settings(const json_t *data, control_kb_data_t *out)
{
    out->min_hit_rate = json_object_get(data, "min_hit_rate");
    out->eval_k = json_object_get(data, "eval_k");
    out->chunk = json_object_get(data, "chunk");
    if (out->min_hit_rate == NULL && out->eval_k == NULL && out->chunk == NULL)
        return kb_bad("data names no setting (min_hit_rate, eval_k, chunk)");
    const json_t *r = out->min_hit_rate;
    if (r != NULL && !json_is_null(r) &&
        (!json_is_number(r) || !isfinite(json_number_value(r)) || json_number_value(r) < 0 ||
         json_number_value(r) > 1))
        return kb_bad("data.min_hit_rate is neither null nor a number from 0 to 1");
    const json_t *k = out->eval_k;
    if (k != NULL && !json_is_null(k) &&
        (!json_is_integer(k) || json_integer_value(k) < 1 ||
         json_integer_value(k) > CONTROL_KB_EVAL_K_MAX))
        return kb_bad("data.eval_k is neither null nor an integer from 1 to %d",
                      CONTROL_KB_EVAL_K_MAX);
    if (out->chunk != NULL && !json_is_null(out->chunk))
        return check_chunk(out->chunk);
    return NULL;
}

static imp_error_t *parse_build(const json_t *data, control_kb_data_t *out)
{
    json_t *v = json_object_get(data, "if_changed");
    if (v != NULL && !json_is_boolean(v))
        return kb_bad("data.if_changed is not true or false");
    out->if_changed = json_is_true(v);
    return NULL;
}

static imp_error_t *parse_eval(const json_t *data, control_kb_data_t *out)
{
    imp_error_t *err = int_member(data, "version", true, 1, INT32_MAX, &out->version);
    if (err == NULL)
        err = int_member(data, "k", false, 1, CONTROL_KB_EVAL_K_MAX, &out->k);
    return err;
}

imp_error_t *control_kb_data_parse(control_kb_cmd_t cmd, const json_t *data, control_kb_data_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(data))
        return kb_bad("data is not an object");
    imp_error_t *err = kb_check_members(cmd, data);
    if (err == NULL)
        err = parse_common(data, out);
    if (err != NULL)
        return err;
    switch (cmd) {
    case CONTROL_KB_SOURCE_PUT:
        return parse_put(data, out);
    case CONTROL_KB_SOURCE_REMOVE:
        return parse_name(data, out);
    case CONTROL_KB_QUESTIONS_SET:
        return parse_questions(data, out);
    case CONTROL_KB_SETTINGS:
        return parse_settings(data, out);
    case CONTROL_KB_BUILD:
        return parse_build(data, out);
    case CONTROL_KB_PROMOTE:
        return int_member(data, "version", true, 1, INT32_MAX, &out->version);
    case CONTROL_KB_EVAL:
        return parse_eval(data, out);
    default:
        return NULL;
    }
}
