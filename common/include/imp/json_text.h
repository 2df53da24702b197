/* Byte-level helpers shared by the JSON writers and readers that bypass jansson (the envelope
 * writer, the ingress's body reader). They follow jansson's rules, so text that passes them
 * is text jansson accepts. */
#ifndef IMP_JSON_TEXT_H
#define IMP_JSON_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The length of the UTF-8 sequence at s[0..n) (s[0] >= 0x80) by jansson's rules: no overlong
 * forms, no surrogates, nothing above U+10FFFF; 0 when there is none. */
static inline size_t imp_json_utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len = c >= 0xc2 && c <= 0xdf   ? 2
                 : c >= 0xe0 && c <= 0xef ? 3
                 : c >= 0xf0 && c <= 0xf4 ? 4
                                          : 0;
    if (len == 0 || len > n)
        return 0;
    uint32_t v = c & (len == 2 ? 0x1fu : len == 3 ? 0x0fu : 0x07u);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3fu);
    }
    if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff) || (len == 3 && v < 0x800) ||
        (len == 4 && v < 0x10000))
        return 0;
    return len;
}

/* Whether one of the 8 bytes of x is a control character, '"', '\\' or not ASCII: the bytes
 * a JSON string reader or writer must look at. Exact for "none" (a false "some" only costs
 * time). */
static inline bool imp_json_word_special(uint64_t x)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), high = UINT64_C(0x8080808080808080);
    uint64_t quote = x ^ (ones * '"'), bslash = x ^ (ones * '\\');
    uint64_t hit =
        ((x - ones * 0x20) & ~x) | ((quote - ones) & ~quote) | ((bslash - ones) & ~bslash) | x;
    return (hit & high) != 0;
}

#endif
