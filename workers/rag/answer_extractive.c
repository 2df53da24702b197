/* The extractive answer: the best chunk's text, cut at a sentence boundary. */
#include "rag.h"

#include "imp/kb.h"
#include "imp/mem.h"

#include <string.h>

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static char *trimmed_copy(const char *s, size_t len, const char *suffix)
{
    while (len > 0 && is_space((unsigned char)*s))
        s++, len--;
    while (len > 0 && is_space((unsigned char)s[len - 1]))
        len--;
    return imp_asprintf("%.*s%s", (int)len, s, suffix);
}

/* Byte offset just past a sentence end starting at s[i], or 0 when none starts there. */
static size_t sentence_end(const char *s, size_t len, size_t i)
{
    if (s[i] == '\n')
        return i + 1;
    if ((s[i] == '.' || s[i] == '!' || s[i] == '?') && (i + 1 == len || is_space(s[i + 1])))
        return i + 1;
    if (i + 3 <= len && memcmp(s + i, "…", 3) == 0)
        return i + 3;
    return 0;
}

char *rag_extractive_answer(const char *text, size_t max)
{
    size_t len = strlen(text), pos = 0, chars = 0;
    while (pos < len && chars < max) {
        imp_kb_utf8_next(text, len, &pos);
        chars++;
    }
    if (pos >= len)
        return trimmed_copy(text, len, "");
    /* pos: the byte offset of code point number max; cut at or before it. */
    size_t best = 0, space = 0;
    for (size_t i = 0; i < pos; i++) {
        size_t end = sentence_end(text, len, i);
        if (end != 0 && end <= pos)
            best = end;
        if (is_space((unsigned char)text[i]))
            space = i;
    }
    if (best > 0)
        return trimmed_copy(text, best, "");
    if (space > 0)
        return trimmed_copy(text, space, "…");
    while (pos > 0 && ((unsigned char)text[pos] & 0xC0) == 0x80)
        pos--;
    return trimmed_copy(text, pos, "…");
}
