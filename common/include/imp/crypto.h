/* Cryptographic helpers over OpenSSL 3 libcrypto: HMAC-SHA256, SHA-256, constant-time
 * comparison, hex and base64 codecs, random bytes, and AES-256-GCM sealing of secrets at rest.
 *
 * Failures of OpenSSL itself (out of memory, a broken installation) abort the process, the
 * same way imp_malloc does: they never depend on the input. Failures that do depend on the
 * input (malformed text, a token that does not authenticate) are reported to the caller. */
#ifndef IMP_CRYPTO_H
#define IMP_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imp/error.h"

#define IMP_SHA256_LEN 32
#define IMP_HMAC_SHA256_LEN 32
#define IMP_CRYPTO_KEY_LEN 32 /* AES-256 */

/* One piece of a message hashed in parts (borrowed; base may be NULL when len is 0). */
typedef struct {
    const void *base;
    size_t len;
} imp_iov_t;

/* ---- HMAC-SHA256 ----
 *
 * imp_hmac_t holds the key already absorbed into an EVP_MAC context; each call duplicates
 * that context, so the key schedule is paid once and one imp_hmac_t serves any number of
 * messages. Thread safety: an imp_hmac_t is not synchronised. Use one per thread, or guard
 * it with a lock; distinct imp_hmac_t objects are independent. */
typedef struct imp_hmac imp_hmac_t;

/* New keyed context (the key is copied; any length, including 0). */
imp_hmac_t *imp_hmac_new(const void *key, size_t keylen);
void imp_hmac_free(imp_hmac_t *h);

/* out = HMAC-SHA256(key, data). */
void imp_hmac_sha256(imp_hmac_t *h, const void *data, size_t len, uint8_t out[IMP_HMAC_SHA256_LEN]);

/* out = HMAC-SHA256(key, parts[0] || parts[1] || ...), without concatenating them
 * (Standard Webhooks sign "id.timestamp.body"). */
void imp_hmac_sha256_parts(imp_hmac_t *h, const imp_iov_t *parts, size_t n,
                           uint8_t out[IMP_HMAC_SHA256_LEN]);

/* One-shot HMAC-SHA256 for a key used once. */
void imp_hmac_sha256_once(const void *key, size_t keylen, const void *data, size_t len,
                          uint8_t out[IMP_HMAC_SHA256_LEN]);

/* ---- SHA-256 ---- */
void imp_sha256(const void *data, size_t len, uint8_t out[IMP_SHA256_LEN]);

/* ---- Constant-time comparison ---- */

/* true when the n bytes at a and b are equal; the time taken does not depend on where they
 * differ (CRYPTO_memcmp). */
bool imp_crypto_equal(const void *a, const void *b, size_t n);

/* true when expected[0..elen) equals given[0..glen). For values whose length may differ
 * (a header against a stored secret token): different lengths give false, yet the content of
 * given is still compared in full, so the time taken depends only on glen (the untrusted
 * input's own length), never on the content or on where a difference lies. */
bool imp_crypto_equal_str(const void *expected, size_t elen, const void *given, size_t glen);

/* ---- Random ---- */

/* Fill buf with n bytes from the OpenSSL CSPRNG; aborts if it cannot (never returns weak
 * bytes). */
void imp_crypto_random(void *buf, size_t n);

/* Overwrite n bytes in a way the compiler cannot elide (OPENSSL_cleanse); for keys and
 * decrypted secrets before they are freed. */
void imp_crypto_wipe(void *p, size_t n);

/* ---- Hex ---- */

/* Lowercase hex of data into out, which must hold 2*len + 1 bytes; out is NUL-terminated. */
void imp_hex_encode(const void *data, size_t len, char *out);

/* Decode text[0..textlen) (hex digits of either case, even length, nothing else) into out.
 * Returns 0 and sets *outlen = textlen / 2, or -1 when text is malformed or the result would
 * exceed cap bytes (out is then unspecified). */
int imp_hex_decode(const char *text, size_t textlen, uint8_t *out, size_t cap, size_t *outlen);

/* ---- Base64 (RFC 4648) ----
 *
 * imp_base64_*: the standard alphabet (+/) with '=' padding, RFC 4648 §4.
 * imp_base64url_*: the URL-safe alphabet (-_) without padding, RFC 4648 §5 (as in JWT).
 * Decoders are strict: no whitespace or line breaks, no characters outside the alphabet, no
 * misplaced or (for base64url) any padding, and no non-zero bits in the last character's
 * unused low bits, so every byte string has exactly one accepted encoding. */

/* Characters needed for n bytes, excluding the terminating NUL. */
#define IMP_BASE64_ENCODED_LEN(n) ((((n) + 2) / 3) * 4)
#define IMP_BASE64URL_ENCODED_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))
/* An upper bound on the bytes decoded from textlen characters (either alphabet). */
#define IMP_BASE64_DECODED_MAX(textlen) ((((textlen) + 3) / 4) * 3)

/* Encode data into out (IMP_BASE64_ENCODED_LEN(len) + 1 bytes); NUL-terminates and returns
 * the number of characters written. */
size_t imp_base64_encode(const void *data, size_t len, char *out);
/* Same, URL-safe alphabet, no padding; out holds IMP_BASE64URL_ENCODED_LEN(len) + 1 bytes. */
size_t imp_base64url_encode(const void *data, size_t len, char *out);

/* Decode text[0..textlen) into out. Returns 0 and sets *outlen, or -1 when the text is
 * malformed or decodes to more than cap bytes (out is then unspecified). */
int imp_base64_decode(const char *text, size_t textlen, uint8_t *out, size_t cap, size_t *outlen);
int imp_base64url_decode(const char *text, size_t textlen, uint8_t *out, size_t cap,
                         size_t *outlen);

/* ---- Secrets at rest: AES-256-GCM ----
 *
 * A sealed secret is a text token that fits a TEXT column:
 *
 *     v1:<base64( nonce[12] || ciphertext[len] || tag[16] )>
 *
 * standard base64 with padding; the nonce is random per seal (safe for up to 2^32 seals under
 * one key); the GCM associated data is exactly the caller's aad bytes, with nothing added.
 * Bind every secret to its owner by passing the tenant id (or "tenant_id|channel") as aad:
 * a token copied to another tenant's row then fails to open.
 *
 * Error classes. imp_crypto_open fails with class poison: a token that does not parse
 * (code "secret_malformed") or does not authenticate under this key and aad (code
 * "secret_auth": wrong key, wrong aad or tampered; GCM cannot tell which). Such a failure is a
 * property of the stored data, so retrying cannot help; it is not fatal because one bad row
 * must not bring the fleet down. A worker that cannot decrypt a channel's secret dead-letters
 * the event, which is replayable once the key or the row is fixed. Key parsing fails with
 * class fatal (code "config"): it happens at start-up. */

/* Largest plaintext imp_crypto_seal accepts (secrets are small). */
#define IMP_CRYPTO_SEAL_MAX (64 * 1024)

/* Seal plain[0..len) under key and aad into a new heap string *token (caller frees).
 * aad may be NULL when aadlen is 0. Fails (poison, "secret_too_large") only when len exceeds
 * IMP_CRYPTO_SEAL_MAX; *token is then NULL. */
imp_error_t *imp_crypto_seal(const uint8_t key[IMP_CRYPTO_KEY_LEN], const void *plain, size_t len,
                             const void *aad, size_t aadlen, char **token);

/* Open a token made by imp_crypto_seal with the same key and aad. On success *plain is a new
 * heap buffer of *len bytes followed by a NUL (so text secrets can be used as C strings);
 * wipe it with imp_crypto_wipe before free. On failure *plain is NULL and *len is 0. */
imp_error_t *imp_crypto_open(const uint8_t key[IMP_CRYPTO_KEY_LEN], const char *token,
                             const void *aad, size_t aadlen, uint8_t **plain, size_t *len);

/* Parse a 32-byte key from configuration text: 64 hex digits, or the standard base64 (with
 * padding, 44 characters) of 32 bytes. name is the variable, used in the error message
 * (class fatal, code "config"), which says what is wrong but never echoes the text. */
imp_error_t *imp_crypto_key_parse(const char *name, const char *text,
                                  uint8_t key[IMP_CRYPTO_KEY_LEN]);

#endif
