/* Knowledge-base sources and the chunker: one source (its format and text) in, the chunks
 * that are embedded and indexed out (docs/knowledge-base.md).
 *
 *   imp_kb_chunks_t chunks = {0};
 *   imp_kb_chunk_settings_t set = IMP_KB_CHUNK_DEFAULTS;
 *   imp_error_t *err = imp_kb_chunk(IMP_KB_MARKDOWN, text, len, &set, &chunks);
 *   for (size_t i = 0; i < chunks.n; i++)
 *       ... chunks.items[i].heading, .text, .start, .end ...
 *   imp_kb_chunks_dispose(&chunks);
 *
 * Formats:
 *   markdown  ATX headings ("# Prices", "## Haircuts") open sections; a chunk never spans two
 *             sections and carries its heading path ("Prices > Haircuts"). Inside a section
 *             the blocks are paragraphs (separated by blank lines), list items ("- ", "* ",
 *             "+ ", "1. ", "1) ") and fenced code ("```", "~~~"; no headings inside).
 *   text      the same without headings and fences: paragraphs and list items.
 *   qa_csv    RFC 4180 records "question,answer" (quoted fields with "" escapes, embedded
 *             commas and line breaks, CRLF or LF); a first record "question,answer" (any
 *             case, or "вопрос,ответ") is a header and skipped; blank lines are skipped.
 *   qa_json   [{"q": ..., "a": ...}, ...] ("question"/"answer" are accepted as keys too).
 *   A Q&A pair is one chunk: heading = the question, text = the answer. A pair longer than
 *   max_chars is split at sentence (then word) boundaries of the answer, and every part
 *   keeps the question as its heading.
 *
 * Sizes are in characters (Unicode code points), not bytes. Blocks are packed into a chunk
 * while it stays within target_chars; a block longer than max_chars is split at sentence
 * boundaries (". ", "! ", "? ", "… ", line breaks), a sentence longer than max_chars at
 * spaces, and a word longer than max_chars every max_chars code points. A chunk never
 * exceeds max_chars (a Q&A part: max_chars plus its question). When a section continues in
 * a new chunk, the trailing whole pieces (sentences, list items, paragraphs) of the previous
 * chunk that fit in overlap_chars are repeated at its start.
 *
 * For prose, a chunk's text is exactly the source bytes [start, end): nothing is rewritten,
 * so offsets can be shown and checked. For Q&A the range is the pair's record (every part
 * of a split pair has the record's range) and the text is the unquoted answer (part).
 * UTF-8 is validated; a cut never falls inside a code point. The output depends only on the
 * input and the settings. */
#ifndef IMP_KB_H
#define IMP_KB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imp/error.h"

/* Largest source accepted (also a CHECK on kb_sources.content). */
#define IMP_KB_SOURCE_MAX (512 * 1024)

typedef enum {
    IMP_KB_MARKDOWN = 0,
    IMP_KB_TEXT,
    IMP_KB_QA_CSV,
    IMP_KB_QA_JSON,
} imp_kb_format_t;

/* "markdown", "text", "qa_csv", "qa_json" (the kb_sources.format values). */
const char *imp_kb_format_name(imp_kb_format_t f);
/* 0 on success, -1 when unknown. */
int imp_kb_format_parse(const char *name, imp_kb_format_t *out);

typedef struct {
    size_t target_chars;  /* pack blocks up to this size */
    size_t max_chars;     /* hard limit of a chunk */
    size_t overlap_chars; /* repeated from the previous chunk of the same section */
} imp_kb_chunk_settings_t;

#define IMP_KB_CHUNK_DEFAULTS                                                                      \
    ((imp_kb_chunk_settings_t){.target_chars = 600, .max_chars = 1000, .overlap_chars = 100})

/* Bounds: 50 <= target <= 8000, target <= max <= 16000, overlap <= target / 2. NULL when
 * valid, else poison "kb_settings" naming the setting. */
imp_error_t *imp_kb_chunk_settings_validate(const imp_kb_chunk_settings_t *s);

/* {"target_chars":…,"max_chars":…,"overlap_chars":…}, a new heap string (kb_versions.
 * chunk_settings). */
char *imp_kb_chunk_settings_json(const imp_kb_chunk_settings_t *s);
/* Parse that object; missing members keep the defaults; the result is validated. */
imp_error_t *imp_kb_chunk_settings_parse(const char *json, imp_kb_chunk_settings_t *out);

typedef struct {
    char *heading; /* heading path or question; "" when none (heap, NUL-terminated) */
    char *text;    /* the chunk's text (heap, NUL-terminated, never empty) */
    size_t start;  /* byte range in the source, see above */
    size_t end;
    size_t chars;  /* code points of text */
    size_t tokens; /* words of heading and text (maximal runs of letters and digits) */
} imp_kb_chunk_t;

typedef struct {
    imp_kb_chunk_t *items;
    size_t n;
} imp_kb_chunks_t;

/* Chunk one source with the settings (NULL: IMP_KB_CHUNK_DEFAULTS). text need not be
 * NUL-terminated. On error out is empty and the error is poison: "kb_too_large" (more than
 * IMP_KB_SOURCE_MAX bytes), "kb_utf8" (invalid UTF-8 or a NUL byte; the message gives the byte
 * offset), "kb_csv" / "kb_json" (malformed Q&A; the message gives the record and line),
 * "kb_settings", "kb_format". Empty or blank input: zero chunks, no error. */
imp_error_t *imp_kb_chunk(imp_kb_format_t format, const char *text, size_t len,
                          const imp_kb_chunk_settings_t *settings, imp_kb_chunks_t *out);

/* Free the chunks and reset *c to empty. NULL or empty is a no-op. */
void imp_kb_chunks_dispose(imp_kb_chunks_t *c);

/* The text a chunk is embedded and searched as: the heading, a line break, the text (just
 * the text when the heading is empty). A new heap string. The full-text columns of
 * kb_chunks index the same two parts. */
char *imp_kb_chunk_document(const char *heading, const char *text);

/* ---- the text model shared by the chunker, the built-in embedder and the SQL side ---- */

/* True when text[0..len) is valid UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF) without NUL bytes; otherwise *bad_offset (when not NULL) is the offset of the
 * first bad byte. */
bool imp_kb_utf8_valid(const char *text, size_t len, size_t *bad_offset);

/* Decode the code point at s[*pos] (len bytes in all) and advance *pos past it. Invalid
 * bytes decode as U+FFFD one byte at a time, so any input can be walked. */
uint32_t imp_kb_utf8_next(const char *s, size_t len, size_t *pos);

/* Code points in s[0..len) (bytes that do not continue a sequence). */
size_t imp_kb_utf8_count(const char *s, size_t len);

/* Letters and digits (what words are made of): ASCII letters and digits, and every code
 * point from U+00C0 up except the ones that are punctuation, symbols, spaces or marks of
 * the ranges in use here (Latin-1 signs, General Punctuation, currency, arrows and symbols,
 * CJK punctuation, private use, specials, emoji). */
bool imp_kb_is_word_cp(uint32_t cp);

/* Lower-case one code point for matching: ASCII A-Z, Latin-1 À-Þ (not ×), Cyrillic
 * А-Я, Ѐ-Џ and the Kazakh letters Ә Ғ Қ Ң Ө Ұ Ү Һ І; then ё (and Ё) becomes е, as people
 * type it. The SQL function imp_kb_fold (migrations/0020) folds Cyrillic the same way. */
uint32_t imp_kb_fold_cp(uint32_t cp);

/* True for the built-in Russian and English function and question words ("what", "do",
 * "можно", "сколько"); folded is lower case with ё as е (imp_kb_fold_cp). The hash embedder
 * weighs them down and full-text queries leave them out. */
bool imp_kb_is_stopword(const char *folded);

/* The words of a query, folded, without stop words, separated by single spaces — what the
 * full-text search looks for; when every word is a stop word, all of them. A new heap
 * string ("" when the query has no words). */
char *imp_kb_query_terms(const char *query);

#endif
