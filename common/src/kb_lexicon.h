/* The in-memory lexical index of a KB version (private to retrieval.c): the lexemes of the
 * chunks' full-text columns, as Postgres computed them, in postings lists ranked with BM25.
 *
 * Built by adding each chunk's tsvectors (their text form, "'lexeme':1A,4 ...") in row
 * order, then sealed; a sealed lexicon is read-only and may be searched from many threads. */
#ifndef IMP_KB_LEXICON_H
#define IMP_KB_LEXICON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The configurations of kb_chunks: tsv_simple, tsv_ru, tsv_en. */
enum { KB_LEX_SIMPLE = 0, KB_LEX_RUSSIAN, KB_LEX_ENGLISH, KB_LEX_CONFIGS };

typedef struct kb_lexicon kb_lexicon_t;

kb_lexicon_t *kb_lexicon_new(void);
void kb_lexicon_free(kb_lexicon_t *lx);

/* Add the tsvector text of one chunk (row) under a configuration. Rows must not decrease.
 * Returns 0, or -1 when the text is not a tsvector's output (nothing is added then). */
int kb_lexicon_add_tsvector(kb_lexicon_t *lx, uint32_t row, int config, const char *text);

/* Finish building for nrows rows. Idempotent. */
void kb_lexicon_seal(kb_lexicon_t *lx, uint32_t nrows);
bool kb_lexicon_sealed(const kb_lexicon_t *lx);

size_t kb_lexicon_terms(const kb_lexicon_t *lx);
size_t kb_lexicon_bytes(const kb_lexicon_t *lx);

/* Add the BM25 contribution of one query lexeme to score[row] of every row containing it
 * (k1 1.2, b 0.75; heading occurrences count twice). Rows whose score was 0 are appended to
 * touched (capacity nrows). Returns the lexeme's document frequency. */
size_t kb_lexicon_score(const kb_lexicon_t *lx, int config, const char *lexeme, float *score,
                        uint32_t *touched, size_t *ntouched);

#endif
