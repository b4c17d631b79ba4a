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

/* ---------------------------------------------------------------- word alignments (align.c) */

/* Links, scores, word maps and corpus files, for the evaluation object
 * (align_eval.c). Messages of the failures carry no function name: the
 * public entry points add theirs with align_where. */

/* Parses one line of links (at_align_parse's rules); out may be NULL to count. */
at_status align_parse_links(const char *line, size_t len, int32_t sw, int32_t tw,
                            at_align_link *out, size_t cap, size_t *n);
/* Prefixes the message of the last failure with "who: where: " and returns s. */
at_status align_where(at_status s, const char *who, const char *where);
/* Adds the score of hyp against gold to c, sorting copies in buf (room for
 * ng + nh links). */
void align_score_in(at_align_counts *c, const at_align_link *gold, size_t ng,
                    const at_align_link *hyp, size_t nh, at_align_link *buf);
double align_aer(const at_align_counts *c);
/* at_align_word_map, at_align_pool and at_align_argmax without their
 * argument checks (count: room for tw ints). */
at_status align_word_map_of(const at_tokenizer *t, const int32_t *ids, size_t n,
                            int32_t *word, int32_t *words);
void align_pool_map(double *out, int32_t tw, int32_t sw, const float *map, int64_t rs,
                    int64_t cs, int32_t rows, int32_t cols, const int32_t *tword,
                    const int32_t *sword, int32_t *count);
size_t align_argmax_links(at_align_link *out, const double *map, int32_t tw, int32_t sw);

/* A text file split into lines: \n ends a line, a \r before it is dropped,
 * a last line without \n counts. */
typedef struct align_lines {
    char *buf;
    size_t n;
    const char **v;
    size_t *len;
} align_lines;

/* The links of every line of a file, parsed against the words of a corpus. */
typedef struct align_link_file {
    at_align_link *all;   /* every line's links, one after the other */
    size_t *start;        /* n + 1 offsets into all */
    int32_t *sw, *tw;     /* the words of each line pair */
    size_t n;
} align_link_file;

/* A corpus folder's split: its sentences and gold links, all checked. */
typedef struct align_corpus {
    align_lines src, tgt;
    align_link_file gold;
} align_corpus;

/* Reads and checks DIR/SPLIT.src, .tgt and .align (messages name the files). */
at_status align_corpus_read(const char *dir, const char *split, align_corpus *c);
void align_corpus_free(align_corpus *c);

#endif
