/* The knowledge-base chunker: headings, paragraphs, lists, sentence / word / code-point
 * splits with overlap, Q&A pairs in CSV and JSON, Cyrillic and mixed text, empty and 512 KiB
 * inputs, errors; plus the shared text model (UTF-8, folding, stop words, query terms).
 * Chunk boundaries are asserted exactly: byte offsets into the fixture and the text. */
#include "kb_chunk.c" /* the module itself: its stop-word table is checked directly */

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static imp_kb_chunks_t chunks;

static void teardown(void)
{
    imp_kb_chunks_dispose(&chunks);
}

static imp_kb_chunk_settings_t settings(size_t target, size_t max, size_t overlap)
{
    return (imp_kb_chunk_settings_t){target, max, overlap};
}

static void must_chunk(imp_kb_format_t f, const char *src, const imp_kb_chunk_settings_t *s)
{
    imp_kb_chunks_dispose(&chunks);
    imp_error_t *err = imp_kb_chunk(f, src, strlen(src), s, &chunks);
    ck_assert_msg(err == NULL, "chunking failed: %s", err ? imp_error_message(err) : "");
}

static imp_error_t *chunk_error(imp_kb_format_t f, const char *src, size_t len, const char *code)
{
    if (len == SIZE_MAX)
        len = strlen(src);
    imp_kb_chunks_dispose(&chunks);
    imp_error_t *err = imp_kb_chunk(f, src, len, NULL, &chunks);
    ck_assert_msg(err != NULL, "expected %s", code);
    ck_assert_str_eq(imp_error_code(err), code);
    ck_assert_int_eq(imp_error_class(err), IMP_ERR_POISON);
    ck_assert_uint_eq(chunks.n, 0);
    ck_assert_ptr_null(chunks.items);
    return err;
}

/* Offset of the first occurrence of needle (which the fixture must contain). */
static size_t off(const char *src, const char *needle)
{
    const char *p = strstr(src, needle);
    ck_assert_msg(p != NULL, "fixture lacks \"%s\"", needle);
    return (size_t)(p - src);
}

/* Chunk i is exactly this heading and text; for prose, text is src[start, end). */
static void expect(size_t i, const char *heading, const char *text, size_t start, size_t end)
{
    ck_assert_msg(i < chunks.n, "chunk %zu of %zu", i, chunks.n);
    const imp_kb_chunk_t *c = &chunks.items[i];
    ck_assert_str_eq(c->heading, heading);
    ck_assert_str_eq(c->text, text);
    ck_assert_uint_eq(c->start, start);
    ck_assert_uint_eq(c->end, end);
    ck_assert_uint_eq(c->chars, imp_kb_utf8_count(text, strlen(text)));
}

static void expect_prose(const char *src, size_t i, const char *heading, const char *text)
{
    size_t start = off(src, text);
    expect(i, heading, text, start, start + strlen(text));
}

/* ---- prose ------------------------------------------------------------------------------ */

START_TEST(markdown_headings)
{
    const char *src = "Preface text.\n"
                      "\n"
                      "# Prices\n"
                      "\n"
                      "## Haircuts ##\n"
                      "\n"
                      "- Women 10\n"
                      "- Men 5\n"
                      "\n"
                      "### Kids\n"
                      "Kids 3\n"
                      "\n"
                      "# Hours\n"
                      "\n"
                      "```\n"
                      "# not a heading\n"
                      "```\n"
                      "\n"
                      "#hashtag line\n"
                      "\n"
                      "####### seven\n";
    imp_kb_chunk_settings_t s = IMP_KB_CHUNK_DEFAULTS;
    must_chunk(IMP_KB_MARKDOWN, src, &s);
    ck_assert_uint_eq(chunks.n, 4);
    expect(0, "", "Preface text.", 0, 13);
    expect(1, "Prices > Haircuts", "- Women 10\n- Men 5", 41, 59);
    expect(2, "Prices > Haircuts > Kids", "Kids 3", 70, 76);
    expect_prose(src, 3, "Hours", "```\n# not a heading\n```\n\n#hashtag line\n\n####### seven");
    ck_assert_uint_eq(chunks.items[1].tokens, 6); /* Prices Haircuts Women 10 Men 5 */
}
END_TEST

START_TEST(markdown_heading_levels)
{
    const char *src = "# A\n### C\ntext c\n## B\ntext b\n#   Top   #  \ntext t\n";
    imp_kb_chunk_settings_t s = IMP_KB_CHUNK_DEFAULTS;
    must_chunk(IMP_KB_MARKDOWN, src, &s);
    ck_assert_uint_eq(chunks.n, 3);
    expect_prose(src, 0, "A > C", "text c");
    expect_prose(src, 1, "A > B", "text b");
    expect_prose(src, 2, "Top", "text t");
}
END_TEST

START_TEST(text_format_has_no_headings)
{
    const char *src = "# Not a heading\nfirst paragraph\n\n- item one\n- item two\n";
    imp_kb_chunk_settings_t s = IMP_KB_CHUNK_DEFAULTS;
    must_chunk(IMP_KB_TEXT, src, &s);
    ck_assert_uint_eq(chunks.n, 1);
    expect(0, "", "# Not a heading\nfirst paragraph\n\n- item one\n- item two", 0, strlen(src) - 1);
}
END_TEST

/* Blocks are packed while the chunk stays within target. */
START_TEST(paragraphs_packed_to_target)
{
    const char *src = "Paragraph number one.\n\nParagraph number two.\n\nParagraph three!!\n";
    imp_kb_chunk_settings_t s = settings(50, 80, 0);
    must_chunk(IMP_KB_TEXT, src, &s);
    ck_assert_uint_eq(chunks.n, 2);
    expect_prose(src, 0, "", "Paragraph number one.\n\nParagraph number two."); /* 44 chars */
    expect_prose(src, 1, "", "Paragraph three!!");
}
END_TEST

START_TEST(list_items_are_blocks)
{
    const char *src = "Intro:\n- alpha alpha alpha\n- beta beta beta\n1. gamma gamma gamma\n"
                      "2) delta delta delta\n   continued\n";
    imp_kb_chunk_settings_t s = settings(60, 80, 0);
    must_chunk(IMP_KB_TEXT, src, &s);
    ck_assert_uint_eq(chunks.n, 2);
    /* 43 characters; with the next item 64, over the target */
    expect_prose(src, 0, "", "Intro:\n- alpha alpha alpha\n- beta beta beta");
    expect_prose(src, 1, "", "1. gamma gamma gamma\n2) delta delta delta\n   continued");
}
END_TEST

/* A paragraph over max is split at sentences; whole sentences of up to overlap characters
 * are repeated at the start of the next chunk. */
START_TEST(long_paragraph_sentences_with_overlap)
{
    const char *src = "One two three. Four five six seven. Eight nine ten. Eleven twelve.";
    imp_kb_chunk_settings_t s = settings(50, 60, 20);
    must_chunk(IMP_KB_TEXT, src, &s);
    ck_assert_uint_eq(chunks.n, 3);
    expect(0, "", "One two three. Four five six seven.", 0, 35);
    expect(1, "", "Four five six seven. Eight nine ten.", 15, 51);
    expect(2, "", "Eight nine ten. Eleven twelve.", 36, 66);

    s.overlap_chars = 0;
    must_chunk(IMP_KB_TEXT, src, &s);
    ck_assert_uint_eq(chunks.n, 2);
    expect(0, "", "One two three. Four five six seven.", 0, 35);
    expect(1, "", "Eight nine ten. Eleven twelve.", 36, 66);
}
END_TEST

/* A sentence over max is split at spaces. */
START_TEST(long_sentence_words)
{
    char src[128] = "";
    for (int i = 1; i <= 20; i++)
        snprintf(src + strlen(src), sizeof(src) - strlen(src), "%sw%02d", i > 1 ? " " : "", i);
    ck_assert_uint_eq(strlen(src), 79);
    imp_kb_chunk_settings_t s = settings(50, 60, 0);
    must_chunk(IMP_KB_TEXT, src, &s);
    ck_assert_uint_eq(chunks.n, 2);
    expect(0, "", "w01 w02 w03 w04 w05 w06 w07 w08 w09 w10 w11 w12", 0, 47);
    expect(1, "", "w13 w14 w15 w16 w17 w18 w19 w20", 48, 79);

    s.overlap_chars = 10; /* "w11 w12" (7 characters) fits, "w10 w11 w12" (11) does not */
    must_chunk(IMP_KB_TEXT, src, &s);
    ck_assert_uint_eq(chunks.n, 2);
    expect(1, "", "w11 w12 w13 w14 w15 w16 w17 w18 w19 w20", 40, 79);
}
END_TEST

/* A word over max is cut every max code points, never inside one: 130 two-byte letters
 * with max 60 give 60 + 60 + 10 characters (120 + 120 + 20 bytes). */
START_TEST(long_word_cut_at_code_points)
{
    char src[400] = "";
    for (int i = 0; i < 130; i++)
        strcat(src, "я");
    imp_kb_chunk_settings_t s = settings(50, 60, 0);
    must_chunk(IMP_KB_TEXT, src, &s);
    ck_assert_uint_eq(chunks.n, 3);
    size_t bounds[][2] = {{0, 120}, {120, 240}, {240, 260}};
    for (size_t i = 0; i < 3; i++) {
        ck_assert_uint_eq(chunks.items[i].start, bounds[i][0]);
        ck_assert_uint_eq(chunks.items[i].end, bounds[i][1]);
        ck_assert(imp_kb_utf8_valid(chunks.items[i].text, strlen(chunks.items[i].text), NULL));
    }
    ck_assert_uint_eq(chunks.items[0].chars, 60);
    ck_assert_uint_eq(chunks.items[2].chars, 10);
}
END_TEST

/* Sizes count code points; "т.е." before a lower-case word and "e.g. this" do not end a
 * sentence; «…» and "…" do. */
START_TEST(cyrillic_and_mixed_sentences)
{
    const char *src = "## Цены и prices\n\n"
                      "Стрижка стоит 5 000 ₸, т.е. недорого. Coloring costs more, e.g. this "
                      "one. «Балаяж — от 30 000 ₸.» Запись… Всегда!\n";
    imp_kb_chunk_settings_t s = settings(50, 60, 0);
    must_chunk(IMP_KB_MARKDOWN, src, &s);
    ck_assert_uint_eq(chunks.n, 3);
    expect_prose(src, 0, "Цены и prices", "Стрижка стоит 5 000 ₸, т.е. недорого.");
    expect_prose(src, 1, "Цены и prices", "Coloring costs more, e.g. this one.");
    expect_prose(src, 2, "Цены и prices", "«Балаяж — от 30 000 ₸.» Запись… Всегда!");
    ck_assert_uint_eq(chunks.items[2].chars, 39);
    ck_assert_uint_lt(chunks.items[2].chars, strlen(chunks.items[2].text));
}
END_TEST

START_TEST(crlf_lines)
{
    const char *src = "# Title\r\n\r\nLine one.\r\n\r\nLine two.\r\n";
    imp_kb_chunk_settings_t s = IMP_KB_CHUNK_DEFAULTS;
    must_chunk(IMP_KB_MARKDOWN, src, &s);
    ck_assert_uint_eq(chunks.n, 1);
    expect_prose(src, 0, "Title", "Line one.\r\n\r\nLine two.");
}
END_TEST

/* ---- Q&A ---------------------------------------------------------------------------------- */

START_TEST(qa_csv_quoting)
{
    const char *src = "Вопрос,Ответ\r\n"
                      "\"Сколько стоит, стрижка?\",\"Женская — 10 000 ₸,\r\nмужская — 5 000 ₸\"\r\n"
                      "\r\n"
                      "Where?,\"Main \"\"St\"\" 5\"\r\n"
                      "q3 , a3 \n"
                      "last,no newline";
    imp_kb_chunk_settings_t s = IMP_KB_CHUNK_DEFAULTS;
    must_chunk(IMP_KB_QA_CSV, src, &s);
    ck_assert_uint_eq(chunks.n, 4);
    size_t r1 = off(src, "\"Сколько"), r1e = off(src, "₸\"\r\n\r\n") + strlen("₸\"");
    expect(0, "Сколько стоит, стрижка?", "Женская — 10 000 ₸,\r\nмужская — 5 000 ₸", r1, r1e);
    size_t r2 = off(src, "Where?");
    expect(1, "Where?", "Main \"St\" 5", r2, r2 + strlen("Where?,\"Main \"\"St\"\" 5\""));
    size_t r3 = off(src, "q3 ");
    expect(2, "q3", "a3", r3, r3 + strlen("q3 , a3 "));
    expect(3, "last", "no newline", off(src, "last"), strlen(src));
}
END_TEST

START_TEST(qa_csv_header_optional)
{
    const char *src = "question,answer\nq1,a1\n";
    imp_kb_chunk_settings_t s = IMP_KB_CHUNK_DEFAULTS;
    must_chunk(IMP_KB_QA_CSV, src, &s);
    ck_assert_uint_eq(chunks.n, 1);
    must_chunk(IMP_KB_QA_CSV, "q1,a1\nquestion,answer\n", &s); /* only a first record is one */
    ck_assert_uint_eq(chunks.n, 2);
    expect(1, "question", "answer", 6, 21);
}
END_TEST

START_TEST(qa_csv_errors)
{
    imp_error_t *err = chunk_error(IMP_KB_QA_CSV, "q,a\nx,y,z\n", SIZE_MAX, "kb_csv");
    ck_assert_str_eq(imp_error_message(err),
                     "record 2 (line 2): expected 2 fields (question,answer), got 3");
    imp_error_free(err);
    const char *unterminated = "q,a\n\"open,\nline\n";
    err = chunk_error(IMP_KB_QA_CSV, unterminated, SIZE_MAX, "kb_csv");
    ck_assert_str_eq(imp_error_message(err), "record 2 (line 2): unterminated quoted field");
    imp_error_free(err);
    err = chunk_error(IMP_KB_QA_CSV, "\"q\"x,a\n", SIZE_MAX, "kb_csv");
    ck_assert_str_eq(imp_error_message(err),
                     "record 1 (line 1): unexpected character after a closing quote");
    imp_error_free(err);
    err = chunk_error(IMP_KB_QA_CSV, "q,  \n", SIZE_MAX, "kb_csv");
    ck_assert_str_eq(imp_error_message(err), "record 1 (line 1): empty answer");
    imp_error_free(err);
    err = chunk_error(IMP_KB_QA_CSV, "single\n", SIZE_MAX, "kb_csv");
    imp_error_free(err);
}
END_TEST

START_TEST(qa_json_pairs)
{
    const char *src =
        "[{\"q\":\"Hi?\",\"a\":\"Hello\\nthere\"},\n"
        " {\"question\":\" \\u041a\\u0442\\u043e? \",\"answer\":\"Мы, \\\"Аврора\\\"\"}]";
    imp_kb_chunk_settings_t s = IMP_KB_CHUNK_DEFAULTS;
    must_chunk(IMP_KB_QA_JSON, src, &s);
    ck_assert_uint_eq(chunks.n, 2);
    size_t a = off(src, "{\"q\""), b = off(src, "{\"question\"");
    expect(0, "Hi?", "Hello\nthere", a, off(src, "},\n") + 1);
    expect(1, "Кто?", "Мы, \"Аврора\"", b, strlen(src) - 1);
}
END_TEST

START_TEST(qa_json_errors)
{
    imp_error_t *err = chunk_error(IMP_KB_QA_JSON, "{\"q\":\"a\"}", SIZE_MAX, "kb_json");
    imp_error_free(err);
    err = chunk_error(IMP_KB_QA_JSON, "[{\"q\":\"x\"}]", SIZE_MAX, "kb_json");
    ck_assert_str_eq(imp_error_message(err),
                     "item 1: needs non-empty string members \"q\" and \"a\"");
    imp_error_free(err);
    err = chunk_error(IMP_KB_QA_JSON, "[{\"q\":\"x\",\"a\":", SIZE_MAX, "kb_json");
    ck_assert_ptr_nonnull(strstr(imp_error_message(err), "malformed JSON at line 1"));
    imp_error_free(err);
    err = chunk_error(IMP_KB_QA_JSON, "[{\"q\":\"x\",\"a\":\"\\u0000\"}]", SIZE_MAX, "kb_json");
    imp_error_free(err);
}
END_TEST

/* A pair longer than max: the answer is split, every part keeps the question as heading and
 * the record as range. */
START_TEST(qa_long_pair_split)
{
    const char *src = "[{\"q\": \"Why?\", \"a\": \"First sentence is here. Second sentence is "
                      "here. Third one.\"}]";
    imp_kb_chunk_settings_t s = settings(50, 60, 0);
    must_chunk(IMP_KB_QA_JSON, src, &s);
    ck_assert_uint_eq(chunks.n, 2);
    size_t end = strlen(src) - 1;
    expect(0, "Why?", "First sentence is here. Second sentence is here.", 1, end);
    expect(1, "Why?", "Third one.", 1, end);

    const char *fits = "[{\"q\": \"Why?\", \"a\": \"Short.\"}]";
    must_chunk(IMP_KB_QA_JSON, fits, &s);
    ck_assert_uint_eq(chunks.n, 1);
}
END_TEST

/* ---- edges -------------------------------------------------------------------------------- */

START_TEST(empty_and_blank_inputs)
{
    const char *inputs[] = {"", "   \n\n\t\r\n", "# Only a heading\n## And another\n"};
    imp_kb_format_t formats[] = {IMP_KB_MARKDOWN, IMP_KB_TEXT, IMP_KB_QA_CSV, IMP_KB_QA_JSON};
    imp_kb_chunk_settings_t s = IMP_KB_CHUNK_DEFAULTS;
    for (size_t f = 0; f < IMP_ARRAY_LEN(formats); f++)
        for (size_t i = 0; i < 2; i++) {
            must_chunk(formats[f], inputs[i], &s);
            ck_assert_uint_eq(chunks.n, 0);
        }
    must_chunk(IMP_KB_MARKDOWN, inputs[2], &s);
    ck_assert_uint_eq(chunks.n, 0);
    must_chunk(IMP_KB_QA_JSON, "[]", &s);
    ck_assert_uint_eq(chunks.n, 0);
}
END_TEST

START_TEST(invalid_input)
{
    imp_error_t *err = chunk_error(IMP_KB_TEXT, "ok\xff", 3, "kb_utf8");
    ck_assert_str_eq(imp_error_message(err), "source is not valid UTF-8 text (byte offset 2)");
    imp_error_free(err);
    imp_error_free(chunk_error(IMP_KB_TEXT, "a\0b", 3, "kb_utf8"));
    imp_error_free(chunk_error(IMP_KB_TEXT, "\xd0", 1, "kb_utf8"));         /* truncated */
    imp_error_free(chunk_error(IMP_KB_TEXT, "\xc0\xaf", 2, "kb_utf8"));     /* overlong */
    imp_error_free(chunk_error(IMP_KB_TEXT, "\xed\xa0\x80", 3, "kb_utf8")); /* surrogate */
    imp_kb_chunk_settings_t bad = settings(50, 40, 0);
    imp_error_t *e2 = imp_kb_chunk(IMP_KB_TEXT, "x", 1, &bad, &chunks);
    ck_assert_str_eq(imp_error_code(e2), "kb_settings");
    imp_error_free(e2);
}
END_TEST

/* A 512 KiB source of mixed Russian and English markdown with long paragraphs: fast, every
 * chunk within max, offsets increasing, each text exactly its source range. One byte more
 * is refused. */
START_TEST(huge_input)
{
    static const char *const words[] = {"стрижка", "окрашивание", "маникюр", "price",
                                        "hours",   "запись",      "Ёлка",    "booking"};
    size_t cap = IMP_KB_SOURCE_MAX;
    char *src = imp_malloc(cap + 2);
    size_t n = 0;
    unsigned seed = 7;
    for (int i = 0; n + 64 < cap; i++) {
        if (i % 40 == 0)
            n += (size_t)snprintf(src + n, cap - n, "\n## Раздел %d\n\n", i);
        seed = seed * 1103515245u + 12345u;
        const char *w = words[(seed >> 16) % IMP_ARRAY_LEN(words)];
        n += (size_t)snprintf(src + n, cap - n, "%s%s", w,
                              (seed >> 8) % 17 == 0   ? ". "
                              : (seed >> 8) % 97 == 0 ? "\n\n"
                                                      : " ");
    }
    while (n < cap)
        src[n++] = 'x'; /* exactly 512 KiB, ending in one long word */
    src[n] = '\0';
    imp_kb_chunk_settings_t s = IMP_KB_CHUNK_DEFAULTS;
    clock_t t0 = clock();
    imp_error_t *err = imp_kb_chunk(IMP_KB_MARKDOWN, src, n, &s, &chunks);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    ck_assert_ptr_null(err);
    ck_assert_uint_gt(chunks.n, 300);
    ck_assert_msg(secs < 2.0, "took %.2f s", secs);
    for (size_t i = 0; i < chunks.n; i++) {
        const imp_kb_chunk_t *c = &chunks.items[i];
        ck_assert_uint_le(c->chars, s.max_chars);
        ck_assert_uint_eq(c->end - c->start, strlen(c->text));
        ck_assert(memcmp(src + c->start, c->text, c->end - c->start) == 0);
        ck_assert(imp_kb_utf8_valid(c->text, strlen(c->text), NULL));
        if (i > 0) {
            ck_assert_uint_gt(c->start, chunks.items[i - 1].start);
            ck_assert_uint_gt(c->end, chunks.items[i - 1].end);
        }
    }
    /* Deterministic: the same input gives the same chunks. */
    imp_kb_chunks_t again = {0};
    ck_assert_ptr_null(imp_kb_chunk(IMP_KB_MARKDOWN, src, n, &s, &again));
    ck_assert_uint_eq(again.n, chunks.n);
    for (size_t i = 0; i < again.n; i++) {
        ck_assert_str_eq(again.items[i].text, chunks.items[i].text);
        ck_assert_str_eq(again.items[i].heading, chunks.items[i].heading);
    }
    imp_kb_chunks_dispose(&again);
    src[n] = 'x';
    src[n + 1] = '\0';
    imp_error_free(chunk_error(IMP_KB_MARKDOWN, src, n + 1, "kb_too_large"));
    free(src);
}
END_TEST

/* ---- settings and the text model ----------------------------------------------------------- */

START_TEST(settings_json)
{
    imp_kb_chunk_settings_t s = settings(300, 500, 50), back;
    char *json = imp_kb_chunk_settings_json(&s);
    ck_assert_str_eq(json, "{\"target_chars\":300,\"max_chars\":500,\"overlap_chars\":50}");
    ck_assert_ptr_null(imp_kb_chunk_settings_parse(json, &back));
    ck_assert(memcmp(&s, &back, sizeof(s)) == 0);
    free(json);
    ck_assert_ptr_null(imp_kb_chunk_settings_parse("{}", &back));
    ck_assert_uint_eq(back.target_chars, 600);
    imp_error_t *err = imp_kb_chunk_settings_parse("{\"overlap_chars\":400}", &back);
    ck_assert_str_eq(imp_error_code(err), "kb_settings");
    imp_error_free(err);
    err = imp_kb_chunk_settings_parse("[1]", &back);
    ck_assert_ptr_nonnull(err);
    imp_error_free(err);
    imp_kb_format_t f;
    ck_assert_int_eq(imp_kb_format_parse("qa_csv", &f), 0);
    ck_assert_int_eq(f, IMP_KB_QA_CSV);
    ck_assert_str_eq(imp_kb_format_name(IMP_KB_QA_JSON), "qa_json");
    ck_assert_int_eq(imp_kb_format_parse("pdf", &f), -1);
}
END_TEST

START_TEST(text_model)
{
    ck_assert_uint_eq(imp_kb_fold_cp('Q'), 'q');
    ck_assert_uint_eq(imp_kb_fold_cp(0x416), 0x436); /* Ж ж */
    ck_assert_uint_eq(imp_kb_fold_cp(0x401), 0x435); /* Ё е */
    ck_assert_uint_eq(imp_kb_fold_cp(0x451), 0x435); /* ё е */
    ck_assert_uint_eq(imp_kb_fold_cp(0x406), 0x456); /* І і */
    ck_assert_uint_eq(imp_kb_fold_cp(0x49a), 0x49b); /* Қ қ */
    ck_assert_uint_eq(imp_kb_fold_cp(0xc9), 0xe9);   /* É é */
    ck_assert_uint_eq(imp_kb_fold_cp(0xd7), 0xd7);   /* × */
    ck_assert(imp_kb_is_word_cp('7') && imp_kb_is_word_cp(0x44f) && imp_kb_is_word_cp(0x4d9));
    ck_assert(!imp_kb_is_word_cp('-') && !imp_kb_is_word_cp(0x20b8) && !imp_kb_is_word_cp(0xab) &&
              !imp_kb_is_word_cp(0x1f600) && !imp_kb_is_word_cp(0xa0));
    size_t pos = 0;
    ck_assert_uint_eq(imp_kb_utf8_next("\xff"
                                       "a",
                                       2, &pos),
                      0xfffd);
    ck_assert_uint_eq(pos, 1);
    ck_assert_uint_eq(imp_kb_utf8_count("Ёж ₸", strlen("Ёж ₸")), 4);
}
END_TEST

START_TEST(stopwords_sorted_and_found)
{
    for (size_t i = 0; i < IMP_ARRAY_LEN(stopwords); i++) {
        if (i > 0)
            ck_assert_msg(strcmp(stopwords[i - 1], stopwords[i]) < 0, "%s before %s",
                          stopwords[i - 1], stopwords[i]);
        ck_assert(imp_kb_is_stopword(stopwords[i]));
    }
    ck_assert(!imp_kb_is_stopword("стрижка") && !imp_kb_is_stopword("where"));
}
END_TEST

START_TEST(query_terms)
{
    char *t = imp_kb_query_terms("Можно ли у вас оплатить КАРТОЙ? Ёлки-палки!");
    ck_assert_str_eq(t, "оплатить картой елки палки");
    free(t);
    t = imp_kb_query_terms("what do you");
    ck_assert_str_eq(t, "what do you"); /* only stop words: kept */
    free(t);
    t = imp_kb_query_terms(" ?! ");
    ck_assert_str_eq(t, "");
    free(t);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("kb_chunk");
    TCase *tc = tcase_create("chunker");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, markdown_headings);
    tcase_add_test(tc, markdown_heading_levels);
    tcase_add_test(tc, text_format_has_no_headings);
    tcase_add_test(tc, paragraphs_packed_to_target);
    tcase_add_test(tc, list_items_are_blocks);
    tcase_add_test(tc, long_paragraph_sentences_with_overlap);
    tcase_add_test(tc, long_sentence_words);
    tcase_add_test(tc, long_word_cut_at_code_points);
    tcase_add_test(tc, cyrillic_and_mixed_sentences);
    tcase_add_test(tc, crlf_lines);
    tcase_add_test(tc, qa_csv_quoting);
    tcase_add_test(tc, qa_csv_header_optional);
    tcase_add_test(tc, qa_csv_errors);
    tcase_add_test(tc, qa_json_pairs);
    tcase_add_test(tc, qa_json_errors);
    tcase_add_test(tc, qa_long_pair_split);
    tcase_add_test(tc, empty_and_blank_inputs);
    tcase_add_test(tc, invalid_input);
    tcase_add_test(tc, huge_input);
    suite_add_tcase(s, tc);
    TCase *model = tcase_create("text model");
    tcase_add_checked_fixture(model, NULL, teardown);
    tcase_add_test(model, settings_json);
    tcase_add_test(model, text_model);
    tcase_add_test(model, stopwords_sorted_and_found);
    tcase_add_test(model, query_terms);
    suite_add_tcase(s, model);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
