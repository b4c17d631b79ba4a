/* libat_text's internal declarations (nothing here is exported: the library
 * is built with hidden visibility and src/text/libat_text.map). */
#ifndef AT_TEXT_INTERNAL_H
#define AT_TEXT_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "at_text.h"

#if defined(__GNUC__)
#define TEXT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TEXT_PRINTF(a, b)
#endif

/* ---------------------------------------------------------------- errors (common.c) */

/* Records the message of a failure in this thread (at_text_errmsg) and
 * returns s. */
at_status text_fail(at_status s, const char *fmt, ...) TEXT_PRINTF(2, 3);

/* One thread per accumulator: text_enter fails (AT_E_STATE, with a message)
 * when another call is inside; text_leave ends the call. */
bool text_enter(atomic_flag *busy, const char *who);
void text_leave(atomic_flag *busy);

/* ---------------------------------------------------------------- UTF-8 (common.c) */

/* The offset of the first byte of s[0..n) that is not part of valid UTF-8
 * (strict, as Python's decoder: no overlong forms, no surrogates, nothing
 * above U+10FFFF, no truncated sequence), or n when all of it is valid. */
size_t utf8_invalid_at(const unsigned char *s, size_t n);

/* The length in bytes of the white-space code point (Python's str.isspace)
 * at s[0..n), or 0 if s does not start with one. s is valid UTF-8. */
size_t ws_len(const unsigned char *s, size_t n);

/* The length of s[0..n) once trailing white space is removed (str.rstrip). */
size_t rstrip_len(const unsigned char *s, size_t n);

/* The length of the UTF-8 sequence that starts with byte c (1 for anything
 * that is not a lead byte). */
static inline size_t utf8_seq_len(unsigned char c)
{
    return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* ---------------------------------------------------------------- base64 (base64.c) */

/* The base64 of p[0..n), malloc'd and NUL-terminated, its length in
 * *out_len; NULL when out of memory. */
char *base64_encode(const unsigned char *p, size_t n, size_t *out_len);

/* Decodes s[0..n) (a multiple of 4 characters of the standard alphabet, '='
 * padding only at the end) into out (room for n / 4 * 3 bytes); returns the
 * number of bytes, or SIZE_MAX for anything else. */
size_t base64_decode(const char *s, size_t n, unsigned char *out);

/* ---------------------------------------------------------------- growable bytes (common.c) */

typedef struct tbuf {
    char *p;
    size_t len, cap;
} tbuf;

/* Room for at least `need` bytes; false (and a message) when out of memory. */
bool tbuf_reserve(tbuf *b, size_t need);
void tbuf_free(tbuf *b);

/* An array of size_t (token or code point offsets). */
typedef struct tidx {
    size_t *p;
    size_t len, cap;
} tidx;
bool tidx_reserve(tidx *x, size_t need);
void tidx_free(tidx *x);

/* ---------------------------------------------------------------- n-gram counts (ngram.c) */

/* An n-gram is a byte range of a string that stays alive while the table
 * refers to it; two n-grams are the same when their bytes and order are. */
typedef struct ng_entry {
    const char *p;     /* NULL: free slot */
    uint64_t hash;
    uint32_t len;
    uint32_t n;        /* order, from 1 */
    int64_t hyp;       /* count in the hypothesis */
    int64_t ref;       /* BLEU: largest count in one reference */
    int64_t cur;       /* count in reference cur_id */
    size_t cur_id;     /* which reference cur counts (from 1; 0: none yet) */
} ng_entry;

typedef struct ng_table {
    ng_entry *slots;
    size_t cap;        /* a power of two, or 0 */
    size_t used;
    size_t *list;      /* indices of the used slots, in insertion order */
} ng_table;

/* The entry of (p, len, n), inserted with zero counts when new; NULL (and a
 * message) when out of memory. Entries move when the table grows: do not
 * keep pointers across calls. */
ng_entry *ng_get(ng_table *t, const char *p, size_t len, uint32_t n);
/* Empties the table, keeping its memory. */
void ng_clear(ng_table *t);
void ng_free(ng_table *t);

/* ---------------------------------------------------------------- segments (bleu.c, chrf.c) */

/* Checks the arguments of an add (at_bleu_add, at_chrf_add): pointers, at
 * least one reference, lengths, UTF-8, not every reference empty. */
at_status text_check_segment(const char *who, const char *hyp, size_t hyp_len,
                             const char *const *refs, const size_t *ref_lens, size_t n_refs);

/* The bodies of at_bleu_add and at_chrf_add, for a caller that holds the
 * accumulator's guard (at_text_eval_buffers). */
at_status bleu_add_segment(at_bleu *b, const char *hyp, size_t hyp_len,
                           const char *const *refs, const size_t *ref_lens, size_t n_refs);
at_status chrf_add_segment(at_chrf *c, const char *hyp, size_t hyp_len,
                           const char *const *refs, const size_t *ref_lens, size_t n_refs);
atomic_flag *bleu_busy(at_bleu *b);
atomic_flag *chrf_busy(at_chrf *c);

#endif
