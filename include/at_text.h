/**
 * @file at_text.h
 * @brief libat_text: the text companion library of libat — corpus BLEU and
 *        chrF as sacreBLEU computes them, verses of SWORD Bibles with their
 *        Strong's numbers, SentencePiece tokenizers, word alignments scored
 *        against gold links.
 *
 * libat_text is a library of its own (@c libat_text.so.0, @c -lat_text,
 * pkg-config @c libat_text, CMake @c libat::at_text) beside the core
 * @c libat.so, which does not depend on it: text handling will need C++
 * libraries (SentencePiece, libsword) that a host embedding the core in a C
 * program should not have to load. It follows the core's ABI rules: only
 * @c at_* symbols are exported, the SONAME carries the major version, new
 * functions and enum values are only ever added, and the result structs
 * begin with a @c struct_size that the caller fills in, so that they can grow.
 * It shares the core's version numbers and ::at_status codes (this header
 * includes at.h for them, but the library does not link libat).
 *
 * Conventions:
 * - every fallible call returns an ::at_status (::AT_OK is 0); why the last
 *   failed call of this library in the calling thread failed is in
 *   at_text_errmsg();
 * - text is UTF-8, passed as a pointer and a length in bytes (it may contain
 *   NUL bytes; it need not be NUL-terminated); text that is not valid UTF-8
 *   (overlong forms, surrogates, code points above U+10FFFF, truncated
 *   sequences, as Python's strict decoder refuses them) is ::AT_E_FORMAT;
 * - "white space" is what Python's @c str.split() splits on: U+0009–U+000D,
 *   U+001C–U+0020, U+0085, U+00A0, U+1680, U+2000–U+200A, U+2028, U+2029,
 *   U+202F, U+205F and U+3000;
 * - an accumulator (::at_bleu, ::at_chrf) is used by one thread at a time: a
 *   call that finds another thread inside a call on the same accumulator
 *   returns ::AT_E_STATE and does nothing; separate accumulators are
 *   independent.
 *
 * Example (two segments, one reference each):
 * @code
 * at_bleu *b;
 * at_bleu_create(&b);
 * const char *hyp[] = {"The cat sat on the mat.", "It rained."};
 * const char *ref[] = {"The cat sat on a mat.", "It was raining."};
 * for (int i = 0; i < 2; i++) {
 *     size_t rl = strlen(ref[i]);
 *     at_bleu_add(b, hyp[i], strlen(hyp[i]), &ref[i], &rl, 1);
 * }
 * at_bleu_score s = {.struct_size = sizeof s};
 * at_bleu_result(b, &s);   // s.score, s.precisions[0..3], s.bp, s.ratio, ...
 * at_bleu_free(b);
 * @endcode
 */
#ifndef AT_TEXT_H
#define AT_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "at.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @cond AT_INTERNAL */
#if defined(AT_TEXT_BUILDING) && defined(__GNUC__)
#  define AT_TEXT_API __attribute__((visibility("default")))
#else
#  define AT_TEXT_API
#endif
/** @endcond */

/** @defgroup text_common Text library: version and errors
 *  What every part of libat_text shares.
 *  @{ */

/**
 * @brief The version of the libat_text that is running.
 * @return AT_VERSION_NUMBER of the library loaded (the same numbering as the
 *         core's: both are built from one source tree).
 */
AT_TEXT_API unsigned at_text_version_number(void);

/**
 * @brief Why the last failed call of libat_text in this thread failed.
 * @return A message naming what was wrong (an argument, a line, a byte
 *         offset); "" if no call has failed in this thread. It stays valid
 *         until the next libat_text call in the same thread; never NULL.
 */
AT_TEXT_API const char *at_text_errmsg(void);

/** @} */

/** @defgroup bleu BLEU
 *  Corpus BLEU, the number sacreBLEU 2.x prints by default: 13a
 *  tokenization, BLEU-4 from n-gram counts clipped by the references and
 *  summed over the corpus, the brevity penalty of the corpus lengths, and
 *  'exp' smoothing.
 *
 *  How a segment is counted (sacreBLEU's definitions):
 *  - the hypothesis and each reference lose their trailing white space and
 *    are tokenized by mteval-v13a's rules (::AT_BLEU_TOK_13A): @c \<skipped\>
 *    is removed, @c &quot; @c &amp; @c &lt; @c &gt; are unescaped, the ASCII
 *    punctuation but @c ' @c - @c . @c , is split off, @c . and @c , are
 *    split off unless between digits (1,000.5 stays one token), @c - is split
 *    off after a digit; tokens are then the runs between white space;
 *  - each n-gram (n = 1..4) of the hypothesis matches at most as often as it
 *    occurs in the reference that has it most often; the reference length is
 *    the length of the reference closest to the hypothesis's (the shorter on
 *    a tie);
 *  - empty references (0 bytes) are left out; a segment whose references
 *    are all empty is refused (::AT_E_ARG), as sacreBLEU refuses it (a
 *    reference of white space only is kept, with length 0, as there).
 *
 *  The corpus score: with @c c_n matched and @c t_n hypothesis n-grams,
 *  @c p_n = 100 c_n / t_n; BP = exp(1 − r/h) when the hypothesis length h is
 *  below the reference length r (0 when h = 0), else 1; BLEU = BP · exp(Σ ln
 *  p_n / 4). With no match at all BLEU is 0. Smoothing matters only when some
 *  order has no match but a lower one does: sacreBLEU's default 'exp' (NIST
 *  mteval-v13a's, ::AT_BLEU_SMOOTH_EXP) then takes p_n = 100 / (2^k t_n) for
 *  the k-th such order; ::AT_BLEU_SMOOTH_NONE gives BLEU 0 instead. An order
 *  with t_n = 0 (a corpus of fewer than n tokens) ends the sum: its p_n and
 *  those above it stay 0 and BLEU is 0 (without effective order).
 *  @{ */

/** An accumulator of corpus BLEU statistics: create, add segments, read the
 *  result (as often as wanted), free. */
typedef struct at_bleu at_bleu;

/** The n-gram orders of BLEU-4. */
#define AT_BLEU_ORDERS 4

/** Settings of an ::at_bleu (at_bleu_set()). Values are fixed; new keys are
 *  added at the end. */
typedef enum at_bleu_param {
    AT_BLEU_SMOOTH = 1,          /**< an ::at_bleu_smooth (default ::AT_BLEU_SMOOTH_EXP) */
    AT_BLEU_SMOOTH_VALUE = 2,    /**< the value of 'floor' (default 0.1) and 'add-k'
                                      (default 1); a negative value restores the default */
    AT_BLEU_TOKENIZE = 3,        /**< an ::at_bleu_tokenizer (default ::AT_BLEU_TOK_13A);
                                      only before the first segment */
    AT_BLEU_EFFECTIVE_ORDER = 4  /**< 1: average only over the orders up to the highest
                                      with t_n > 0 (sentence BLEU); default 0 */
} at_bleu_param;

/** Smoothing methods, as sacreBLEU names them. */
typedef enum at_bleu_smooth {
    AT_BLEU_SMOOTH_EXP = 0,    /**< 'exp', the default: p_n = 100 / (2^k t_n) for the k-th
                                    order without a match */
    AT_BLEU_SMOOTH_NONE = 1,   /**< 'none': an order without a match makes BLEU 0 */
    AT_BLEU_SMOOTH_FLOOR = 2,  /**< 'floor': p_n = 100 v / t_n for an order without a match */
    AT_BLEU_SMOOTH_ADD_K = 3   /**< 'add-k': v is added to c_n and t_n for n > 1 */
} at_bleu_smooth;

/** Tokenizers for BLEU. */
typedef enum at_bleu_tokenizer {
    AT_BLEU_TOK_13A = 0,   /**< mteval-v13a, sacreBLEU's default */
    AT_BLEU_TOK_NONE = 1   /**< none: tokens are the runs between white space */
} at_bleu_tokenizer;

/** A corpus BLEU result. The caller sets @c struct_size to @c sizeof(at_bleu_score)
 *  before the call; fields are only ever added at the end. */
typedef struct at_bleu_score {
    size_t struct_size;                  /**< set by the caller: sizeof(at_bleu_score) */
    double score;                        /**< BLEU, 0..100 */
    double precisions[AT_BLEU_ORDERS];   /**< p_1..p_4 in percent, smoothed as the score used
                                              them (what sacreBLEU prints) */
    double bp;                           /**< brevity penalty */
    double ratio;                        /**< hyp_len / ref_len (0 when ref_len is 0) */
    int64_t hyp_len;                     /**< hypothesis tokens over the corpus */
    int64_t ref_len;                     /**< closest reference tokens over the corpus */
    int64_t counts[AT_BLEU_ORDERS];      /**< matched (clipped) n-grams c_n */
    int64_t totals[AT_BLEU_ORDERS];      /**< hypothesis n-grams t_n */
    int64_t segments;                    /**< segments added */
} at_bleu_score;

/**
 * @brief Creates an empty BLEU accumulator with sacreBLEU's default settings.
 * @param out receives the accumulator (NULL on failure).
 * @return ::AT_OK, ::AT_E_ARG (out NULL), ::AT_E_NOMEM.
 */
AT_TEXT_API at_status at_bleu_create(at_bleu **out);

/**
 * @brief Frees an accumulator.
 * @param b the accumulator, or NULL.
 */
AT_TEXT_API void at_bleu_free(at_bleu *b);

/**
 * @brief Changes a setting.
 * @param b     the accumulator.
 * @param key   the setting.
 * @param value its value (an enum value as a number, or a number).
 * @return ::AT_OK; ::AT_E_ARG for an unknown key or value; ::AT_E_STATE for
 *         ::AT_BLEU_TOKENIZE after the first segment (it would mix two
 *         tokenizations), or when another thread is using @p b.
 */
AT_TEXT_API at_status at_bleu_set(at_bleu *b, at_bleu_param key, double value);

/**
 * @brief Adds one segment: a hypothesis and its references.
 * @param b        the accumulator.
 * @param hyp      the hypothesis, UTF-8, @p hyp_len bytes (may be empty; NULL
 *                 only when @p hyp_len is 0).
 * @param hyp_len  its length in bytes.
 * @param refs     @p n_refs references, UTF-8.
 * @param ref_lens their lengths in bytes.
 * @param n_refs   at least 1.
 * @return ::AT_OK; ::AT_E_ARG (a NULL pointer, no reference, or every
 *         reference empty); ::AT_E_FORMAT (text that is not valid UTF-8: the
 *         message says which and at which byte); ::AT_E_NOMEM; ::AT_E_STATE
 *         (another thread is using @p b). On failure nothing is added.
 */
AT_TEXT_API at_status at_bleu_add(at_bleu *b, const char *hyp, size_t hyp_len,
                                  const char *const *refs, const size_t *ref_lens,
                                  size_t n_refs);

/**
 * @brief The corpus BLEU of the segments added so far.
 * @param b   the accumulator.
 * @param out the result; @c out->struct_size must be set (at least the size of
 *            this version's struct). With no segment every field is 0.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_STATE (another thread is using @p b).
 */
AT_TEXT_API at_status at_bleu_result(at_bleu *b, at_bleu_score *out);

/**
 * @brief Forgets every segment, keeping the settings.
 * @param b the accumulator.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_STATE (another thread is using @p b).
 */
AT_TEXT_API at_status at_bleu_reset(at_bleu *b);

/** @} */

/** @defgroup chrf chrF
 *  Corpus chrF, sacreBLEU 2.x's default chrF2: character n-grams of orders 1
 *  to 6, no word n-grams, β = 2, white space removed.
 *
 *  Per segment, white space is removed from the hypothesis and the
 *  references (unless ::AT_CHRF_WHITESPACE), and for every order n the
 *  hypothesis's character n-grams (of code points), the reference's and their
 *  clipped matches are counted; when the reference has no n-gram of order n
 *  the hypothesis's of that order are not counted either (as sacreBLEU
 *  does). With several references the one whose segment-level chrF is
 *  highest counts (the first on a tie). The counts are summed over the
 *  corpus. Then, by default (sacreBLEU's 'effective order', eps_smoothing
 *  off), precision and recall are averaged over the orders where both
 *  counts are positive and chrF = 100 (1 + β²) P R / (β² P + R) (0 when P + R
 *  is 0). With ::AT_CHRF_EPS_SMOOTHING the F-score of each order is computed
 *  with 1e-16 for an undefined precision, recall or F (chrF++.py, NLTK and
 *  Moses), and chrF is 100 times their mean.
 *  @{ */

/** An accumulator of corpus chrF statistics. */
typedef struct at_chrf at_chrf;

/** The largest character order ::AT_CHRF_CHAR_ORDER accepts. */
#define AT_CHRF_MAX_ORDER 16

/** Settings of an ::at_chrf (at_chrf_set()). Values are fixed; new keys are
 *  added at the end. */
typedef enum at_chrf_param {
    AT_CHRF_CHAR_ORDER = 1,     /**< 1..AT_CHRF_MAX_ORDER (default 6); only before the
                                     first segment */
    AT_CHRF_BETA = 2,           /**< β > 0 (default 2); only before the first segment
                                     (it also picks the best reference) */
    AT_CHRF_EPS_SMOOTHING = 3,  /**< 1: chrF++.py's eps smoothing; default 0 (sacreBLEU's
                                     default, effective order); only before the first
                                     segment */
    AT_CHRF_WHITESPACE = 4      /**< 1: keep white space in the character n-grams; default
                                     0; only before the first segment */
} at_chrf_param;

/** A corpus chrF result; @c struct_size is set by the caller. */
typedef struct at_chrf_score {
    size_t struct_size;   /**< set by the caller: sizeof(at_chrf_score) */
    double score;         /**< chrF, 0..100, with the accumulator's settings */
    double precision;     /**< character n-gram precision averaged over the effective
                               orders, 0..100 */
    double recall;        /**< recall averaged likewise, 0..100 */
    double beta;          /**< β */
    int32_t char_order;   /**< the character order */
    int32_t effective_order; /**< orders with both counts positive */
    int64_t segments;     /**< segments added */
} at_chrf_score;

/**
 * @brief Creates an empty chrF accumulator with sacreBLEU's default settings.
 * @param out receives the accumulator (NULL on failure).
 * @return ::AT_OK, ::AT_E_ARG (out NULL), ::AT_E_NOMEM.
 */
AT_TEXT_API at_status at_chrf_create(at_chrf **out);

/**
 * @brief Frees an accumulator.
 * @param c the accumulator, or NULL.
 */
AT_TEXT_API void at_chrf_free(at_chrf *c);

/**
 * @brief Changes a setting.
 * @param c     the accumulator.
 * @param key   the setting.
 * @param value its value (0 or 1 for the switches).
 * @return ::AT_OK; ::AT_E_ARG for an unknown key or a value out of range;
 *         ::AT_E_STATE after the first segment (every setting shapes the
 *         per-segment statistics), or when another thread is using @p c.
 */
AT_TEXT_API at_status at_chrf_set(at_chrf *c, at_chrf_param key, double value);

/**
 * @brief Adds one segment: a hypothesis and its references.
 *
 * The text is taken as it is (no trailing white space is removed: it only
 * matters with ::AT_CHRF_WHITESPACE); empty references (0 bytes) are left
 * out.
 * @param c        the accumulator.
 * @param hyp      the hypothesis, UTF-8, @p hyp_len bytes (NULL only when
 *                 @p hyp_len is 0).
 * @param hyp_len  its length in bytes.
 * @param refs     @p n_refs references, UTF-8.
 * @param ref_lens their lengths in bytes.
 * @param n_refs   at least 1.
 * @return ::AT_OK; ::AT_E_ARG (a NULL pointer, no reference, or every
 *         reference empty); ::AT_E_FORMAT (invalid UTF-8); ::AT_E_NOMEM;
 *         ::AT_E_STATE. On failure nothing is added.
 */
AT_TEXT_API at_status at_chrf_add(at_chrf *c, const char *hyp, size_t hyp_len,
                                  const char *const *refs, const size_t *ref_lens,
                                  size_t n_refs);

/**
 * @brief The corpus chrF of the segments added so far (0 with none).
 * @param c   the accumulator.
 * @param out the result; @c out->struct_size must be set.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_STATE.
 */
AT_TEXT_API at_status at_chrf_result(at_chrf *c, at_chrf_score *out);

/**
 * @brief Forgets every segment, keeping the settings.
 * @param c the accumulator.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_STATE.
 */
AT_TEXT_API at_status at_chrf_reset(at_chrf *c);

/** @} */

/** @defgroup text_eval Scoring files
 *  Whole corpora as sacreBLEU's command line reads them: one segment per
 *  line.
 *
 *  Lines end at @c \\n (a @c \\r before it is trailing white space; a last
 *  line without @c \\n counts; a file that ends with @c \\n has no empty line
 *  after it). Each line loses its trailing white space. Everything is checked
 *  before anything is added: every file must be valid UTF-8 (the message
 *  names the file, the line and the byte in it), the reference files must
 *  have as many lines as the hypothesis file (the message gives both counts
 *  and the first line that has no partner), no hypothesis file may be empty,
 *  and no line may have only empty references.
 *  @{ */

/**
 * @brief Scores texts held in memory.
 * @param hyp       the hypotheses, one per line, @p hyp_len bytes.
 * @param hyp_len   its length.
 * @param refs      @p n_refs reference texts, each with one line per hypothesis.
 * @param ref_lens  their lengths.
 * @param n_refs    at least 1.
 * @param names     NULL, or 1 + @p n_refs names used in messages (the
 *                  hypothesis text's first); by default "hypothesis",
 *                  "reference 1", ….
 * @param bleu      an accumulator the segments are added to, or NULL.
 * @param chrf      another, or NULL (not both NULL).
 * @return ::AT_OK; ::AT_E_ARG; ::AT_E_FORMAT (invalid UTF-8, different line
 *         counts, no line, a line without a non-empty reference); ::AT_E_NOMEM
 *         (then the accumulators may hold part of the corpus: reset them);
 *         ::AT_E_STATE.
 */
AT_TEXT_API at_status at_text_eval_buffers(const char *hyp, size_t hyp_len,
                                           const char *const *refs, const size_t *ref_lens,
                                           size_t n_refs, const char *const *names,
                                           at_bleu *bleu, at_chrf *chrf);

/**
 * @brief Scores files: at_text_eval_buffers() over their contents.
 *
 * Only regular files (or symbolic links to one) are read: a FIFO, a device
 * or a directory is refused (::AT_E_IO) rather than waited on. Messages name
 * the files by the paths given.
 * @param hyp_path  the hypotheses.
 * @param ref_paths @p n_refs reference files.
 * @param n_refs    at least 1.
 * @param bleu      an accumulator, or NULL.
 * @param chrf      another, or NULL (not both NULL).
 * @return as at_text_eval_buffers(), and ::AT_E_IO for a file that cannot be
 *         read.
 */
AT_TEXT_API at_status at_text_eval_files(const char *hyp_path, const char *const *ref_paths,
                                         size_t n_refs, at_bleu *bleu, at_chrf *chrf);

/** @} */

/** @defgroup bible SWORD Bibles
 *  Verses of a Bible installed as a SWORD module (read with libsword's C
 *  API, @c sword/flatapi.h), as plain text with the Strong's numbers of
 *  every word. Debian packages the modules: @c sword-text-kjv
 *  (@c engKJV2006eb, King James with Strong's numbers), @c sword-text-sparv
 *  (@c spaRV1909eb, Reina-Valera 1909 with Strong's numbers),
 *  @c sword-text-web (@c engWEB2015eb, World English Bible); libsword finds
 *  them under @c /usr/share/sword (or @c SWORD_PATH, @c ~/.sword).
 *
 *  How a verse's OSIS markup becomes plain text (at_bible_parse()):
 *  - the contents of @c \<note> (footnotes, cross references) are dropped,
 *    and so are those of @c \<title> unless it has @c canonical="true" (a
 *    psalm's superscription is scripture and stays; section headings, the
 *    acrostic letters of Psalm 119 and the subscriptions of the epistles
 *    go);
 *  - every other element is removed and its text kept (@c \<w>,
 *    @c \<transChange> — the KJV's italic words —, @c \<divineName>,
 *    @c \<q>, @c \<foreign>, @c \<seg>, …); the block elements and
 *    milestones @c \<div>, @c \<chapter>, @c \<verse>, @c \<p>, @c \<l>,
 *    @c \<lg>, @c \<lb>, @c \<milestone> count as white space;
 *  - the five XML entities and numeric character references are decoded;
 *    the pilcrow ¶ (a paragraph sign of the KJV) is dropped;
 *  - runs of white space become one space; there is none at either end.
 *  Words are the runs between spaces. A word carries the Strong's numbers
 *  of the @c \<w lemma="..."> elements its characters are in: the @c lemma
 *  attribute's tokens, @c strong:H0430 or, after one, bare @c G5547 (RV1909
 *  lists several as @c strong:G2424 G5547); tokens of other schemes
 *  (@c lemma.TR:...) are ignored. A number is coded as an int32:
 *  Hebrew Hn is n, Greek Gn is ::AT_STRONG_GREEK + n.
 *
 *  libsword is used under a lock of this library (it is not thread-safe);
 *  its log messages are turned off, so it prints nothing.
 *  @{ */

/** An open SWORD Bible module (or, opened with a NULL name, a markup
 *  parser only). */
typedef struct at_bible at_bible;

/** Added to a Greek Strong's number in ::at_bible_verse's codes. */
#define AT_STRONG_GREEK 100000

/** One verse. The caller sets @c struct_size; the pointers stay valid until
 *  the next at_bible_next() or at_bible_parse() on the same ::at_bible. */
typedef struct at_bible_verse {
    size_t struct_size;          /**< set by the caller: sizeof(at_bible_verse) */
    const char *ref;             /**< "Gen 1:1": OSIS book name, chapter:verse
                                      ("" from at_bible_parse()) */
    const char *book;            /**< the OSIS book name, "Gen" ("" from at_bible_parse()) */
    int32_t book_index;          /**< 1.. in the versification's book order (0 from
                                      at_bible_parse()) */
    int32_t chapter;             /**< from 1 (0 from at_bible_parse()) */
    int32_t verse;               /**< from 1 (0 from at_bible_parse()) */
    const char *text;            /**< the plain text, UTF-8, NUL-terminated; "" for a
                                      verse the module leaves empty */
    size_t text_len;             /**< its length in bytes */
    const char *markup;          /**< the module's raw entry, NUL-terminated */
    size_t markup_len;           /**< its length in bytes */
    int32_t words;               /**< the words of @c text (runs between spaces) */
    const int32_t *strong_start; /**< @c words + 1 offsets: word i carries
                                      strongs[strong_start[i] .. strong_start[i+1]) */
    const int32_t *strongs;      /**< the Strong's numbers of the words, coded as
                                      above, each at most once per word, in the order
                                      of the markup */
} at_bible_verse;

/**
 * @brief Opens an installed SWORD Bible module.
 * @param module the module's name (@c "engKJV2006eb"), or NULL for an
 *               ::at_bible that only parses markup (at_bible_parse()).
 * @param out    receives the handle (NULL on failure).
 * @return ::AT_OK; ::AT_E_ARG (out NULL); ::AT_E_IO (no such module
 *         installed: the message names the Debian package that provides it,
 *         or lists the installed modules); ::AT_E_FORMAT (the module is not a
 *         Bible, or its markup is not OSIS); ::AT_E_NOMEM.
 */
AT_TEXT_API at_status at_bible_open(const char *module, at_bible **out);

/**
 * @brief Closes a module.
 * @param b the handle, or NULL.
 */
AT_TEXT_API void at_bible_free(at_bible *b);

/**
 * @brief A setting of the module's configuration.
 * @param b   the handle.
 * @param key a key of the module's .conf file: @c "Versification" (libsword's
 *            default @c "KJV" when the file has none), @c "Description",
 *            @c "Lang", @c "SourceType", …
 * @return its value, "" when the module has no such key or @p b is a parser
 *         only; valid until at_bible_free(). Never NULL.
 */
AT_TEXT_API const char *at_bible_info(at_bible *b, const char *key);

/**
 * @brief The next verse, from Gen 1:1 (or the module's first) in the
 *        versification's order; book and chapter introductions are skipped.
 * @param b    the handle.
 * @param out  the verse (@c struct_size set by the caller).
 * @param done set to 1 (and @p out left alone) when there is no verse left,
 *             else 0.
 * @return ::AT_OK; ::AT_E_ARG; ::AT_E_STATE (@p b parses only);
 *         ::AT_E_FORMAT (an entry that is not valid UTF-8: the message names
 *         the verse); ::AT_E_NOMEM.
 */
AT_TEXT_API at_status at_bible_next(at_bible *b, at_bible_verse *out, int *done);

/**
 * @brief Plain text and Strong's numbers of a piece of OSIS markup, by the
 *        rules above (what at_bible_next() does to each entry).
 * @param b      any handle (its buffers are used).
 * @param markup the markup, UTF-8, @p len bytes (NULL only when @p len is 0).
 * @param len    its length.
 * @param out    the result; @c ref and @c book are "", the numbers 0.
 * @return ::AT_OK; ::AT_E_ARG; ::AT_E_FORMAT (invalid UTF-8: the byte's
 *         offset); ::AT_E_NOMEM.
 */
AT_TEXT_API at_status at_bible_parse(at_bible *b, const char *markup, size_t len,
                                     at_bible_verse *out);

/** @} */

/** @defgroup tokenizer Tokenizer (SentencePiece)
 *  Subword tokenizers trained and run by SentencePiece (Debian
 *  @c libsentencepiece-dev; the model files are those of its @c spm_train,
 *  @c spm_encode and of @c python3-sentencepiece): byte-pair encoding or
 *  the unigram language model, trained on one or more text files of one
 *  sentence per line.
 *
 *  The special ids of a tokenizer trained here are fixed, as the model
 *  uses them: ::AT_TOK_PAD_ID 0 @c \<pad> (the copy task's pad, the
 *  @p pad of at_forward()), ::AT_TOK_UNK_ID 1 @c \<unk>, ::AT_TOK_BOS_ID 2
 *  @c \<s> (the decoder's start id) and ::AT_TOK_EOS_ID 3 @c \</s> (the end
 *  id); the learnt pieces follow from id 4. A model trained elsewhere keeps
 *  its own ids: ask at_tokenizer_special_id(). Encoding adds neither
 *  @c \<s> nor @c \</s>: the caller places them. Decoding drops the special
 *  ids. Text is normalized as SentencePiece's default @c nmt_nfkc rule says
 *  (NFKC, runs of white space become one space, none at either end), so
 *  decode(encode(s)) gives back every such normalized s (with the
 *  characters the vocabulary covers: with @c character_coverage 1, all of
 *  the training text's).
 *
 *  Results (ids, pieces, text) are lent by the tokenizer: they stay valid
 *  until the next call of the same kind on it, or at_tokenizer_free(). A
 *  tokenizer is used by one thread at a time (a call that finds another
 *  thread inside at_tokenizer_encode(), at_tokenizer_encode_pieces() or
 *  at_tokenizer_decode() returns ::AT_E_STATE); separate tokenizers are
 *  independent. No C++ exception leaves the library; SentencePiece's log
 *  lines are turned off while it trains, so nothing is printed.
 *  @{ */

/** A SentencePiece model loaded for encoding and decoding. */
typedef struct at_tokenizer at_tokenizer;

#define AT_TOK_PAD_ID 0   /**< @c \<pad> in a tokenizer trained by at_tokenizer_train() */
#define AT_TOK_UNK_ID 1   /**< @c \<unk>, for characters the vocabulary lacks */
#define AT_TOK_BOS_ID 2   /**< @c \<s>, the start of a sentence */
#define AT_TOK_EOS_ID 3   /**< @c \</s>, its end */

/** The segmentation algorithm of at_tokenizer_train(). */
typedef enum at_tok_model {
    AT_TOK_BPE = 0,       /**< byte-pair encoding, the default */
    AT_TOK_UNIGRAM = 1    /**< the unigram language model (SentencePiece's own default) */
} at_tok_model;

/** The special tokens of at_tokenizer_special_id(). */
typedef enum at_tok_special {
    AT_TOK_PAD = 0,       /**< padding */
    AT_TOK_UNK = 1,       /**< unknown */
    AT_TOK_BOS = 2,       /**< start of a sentence */
    AT_TOK_EOS = 3        /**< end of a sentence */
} at_tok_special;

/** Training settings. The caller sets @c struct_size; a field left 0 takes
 *  its default. Fields are only ever added at the end. */
typedef struct at_tokenizer_options {
    size_t struct_size;        /**< set by the caller: sizeof(at_tokenizer_options) */
    int32_t model;             /**< an ::at_tok_model (default ::AT_TOK_BPE) */
    int32_t vocab_size;        /**< pieces including the 4 special ones, 8..2^24
                                    (default 8000); the text must allow that many */
    double character_coverage; /**< share of the characters kept in the vocabulary,
                                    0.5..1 (default 1: every character) */
    int32_t threads;           /**< training threads, 1..1024 (default 1) */
    int32_t reserved;          /**< 0 */
    int64_t max_sentences;     /**< train on the first N non-empty lines (default 0: all) */
} at_tokenizer_options;

/**
 * @brief Trains a tokenizer on text files of one sentence per line.
 *
 * Only regular files are read; empty lines are skipped, a final @c \\r of a
 * line is dropped. Training is deterministic: the same files and options
 * give the same model.
 * @param paths   @p n_paths files, UTF-8.
 * @param n_paths at least 1.
 * @param opt     the settings, or NULL for the defaults.
 * @param out     receives the tokenizer (NULL on failure).
 * @return ::AT_OK; ::AT_E_ARG (a NULL pointer, an option out of range, or a
 *         vocabulary the text cannot fill: SentencePiece's message says how
 *         large it may be); ::AT_E_IO (a file that cannot be read);
 *         ::AT_E_FORMAT (a line that is not valid UTF-8: the message names
 *         the file and line; no text at all); ::AT_E_NOMEM.
 */
AT_TEXT_API at_status at_tokenizer_train(const char *const *paths, size_t n_paths,
                                         const at_tokenizer_options *opt, at_tokenizer **out);

/**
 * @brief Loads a SentencePiece model file (@c .model, a serialized ModelProto).
 * @param path the file (regular files only).
 * @param out  receives the tokenizer (NULL on failure).
 * @return ::AT_OK; ::AT_E_ARG; ::AT_E_IO; ::AT_E_FORMAT (not a model);
 *         ::AT_E_NOMEM.
 */
AT_TEXT_API at_status at_tokenizer_load(const char *path, at_tokenizer **out);

/**
 * @brief Loads a model from memory: the bytes of a @c .model file, as
 *        at_tokenizer_serialize() gives them.
 * @param data the serialized model, @p len bytes (copied).
 * @param len  its length.
 * @param out  receives the tokenizer (NULL on failure).
 * @return ::AT_OK; ::AT_E_ARG; ::AT_E_FORMAT (empty, or not a model);
 *         ::AT_E_NOMEM.
 */
AT_TEXT_API at_status at_tokenizer_load_buffer(const void *data, size_t len,
                                               at_tokenizer **out);

/**
 * @brief Frees a tokenizer and what it lent.
 * @param t the tokenizer, or NULL.
 */
AT_TEXT_API void at_tokenizer_free(at_tokenizer *t);

/**
 * @brief The serialized model: the bytes of its @c .model file, to be kept
 *        elsewhere (a checkpoint's metadata, say) and read back with
 *        at_tokenizer_load_buffer().
 * @param t    the tokenizer.
 * @param data receives a pointer to the bytes, valid until at_tokenizer_free().
 * @param len  receives their length.
 * @return ::AT_OK, ::AT_E_ARG.
 */
AT_TEXT_API at_status at_tokenizer_serialize(at_tokenizer *t, const void **data, size_t *len);

/** The metadata key (at_model_set_meta()) of a model's tokenizer when the
 *  source and the target share one vocabulary; the value is
 *  at_tokenizer_to_base64(). */
#define AT_TOK_META_JOINT "tokenizer"
/** The metadata key of the source side's tokenizer when they are separate. */
#define AT_TOK_META_SRC "tokenizer.src"
/** The metadata key of the target side's tokenizer when they are separate. */
#define AT_TOK_META_TGT "tokenizer.tgt"

/**
 * @brief The serialized model as base64 text (RFC 4648, padded): what a
 *        checkpoint's metadata carries under ::AT_TOK_META_JOINT (Python:
 *        @c sentencepiece.SentencePieceProcessor(model_proto=base64.b64decode(v))).
 * @param t    the tokenizer.
 * @param text receives the NUL-terminated text, valid until at_tokenizer_free().
 * @param len  receives its length.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_NOMEM.
 */
AT_TEXT_API at_status at_tokenizer_to_base64(at_tokenizer *t, const char **text, size_t *len);

/**
 * @brief Loads a model from the base64 text of at_tokenizer_to_base64().
 * @param text the text, @p len bytes.
 * @param len  its length.
 * @param out  receives the tokenizer (NULL on failure).
 * @return ::AT_OK; ::AT_E_ARG; ::AT_E_FORMAT (empty, not base64, or not a
 *         model); ::AT_E_NOMEM.
 */
AT_TEXT_API at_status at_tokenizer_load_base64(const char *text, size_t len, at_tokenizer **out);

/**
 * @brief Writes the model file (what spm_encode --model reads); the file is
 *        replaced atomically.
 * @param t    the tokenizer.
 * @param path the file.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_IO, ::AT_E_NOMEM.
 */
AT_TEXT_API at_status at_tokenizer_save(at_tokenizer *t, const char *path);

/**
 * @brief Encodes text into ids (what @c spm_encode @c --output_format=id prints).
 * @param t    the tokenizer.
 * @param text UTF-8, @p len bytes (NULL only when @p len is 0).
 * @param len  its length.
 * @param ids  receives the ids, lent until the next at_tokenizer_encode().
 * @param n    receives their number (0 for text of white space only).
 * @return ::AT_OK; ::AT_E_ARG; ::AT_E_FORMAT (invalid UTF-8: the byte's
 *         offset); ::AT_E_STATE (another thread is using @p t); ::AT_E_NOMEM.
 */
AT_TEXT_API at_status at_tokenizer_encode(at_tokenizer *t, const char *text, size_t len,
                                          const int32_t **ids, size_t *n);

/**
 * @brief Encodes text into pieces (what @c spm_encode prints by default; a
 *        word starts with U+2581 ▁).
 * @param t      the tokenizer.
 * @param text   UTF-8, @p len bytes (NULL only when @p len is 0).
 * @param len    its length.
 * @param pieces receives @p n NUL-terminated pieces, lent until the next
 *               at_tokenizer_encode_pieces().
 * @param n      receives their number.
 * @return as at_tokenizer_encode().
 */
AT_TEXT_API at_status at_tokenizer_encode_pieces(at_tokenizer *t, const char *text, size_t len,
                                                 const char *const **pieces, size_t *n);

/**
 * @brief Decodes ids into text; special ids are dropped, @c \<unk> becomes
 *        U+2047 ⁇ as in SentencePiece.
 * @param t    the tokenizer.
 * @param ids  @p n ids (NULL only when @p n is 0).
 * @param n    their number.
 * @param text receives the text, UTF-8, NUL-terminated, lent until the next
 *             at_tokenizer_decode().
 * @param len  receives its length in bytes.
 * @return ::AT_OK; ::AT_E_ARG; ::AT_E_RANGE (an id outside
 *         0..at_tokenizer_vocab_size()−1: the message gives its position);
 *         ::AT_E_STATE; ::AT_E_NOMEM.
 */
AT_TEXT_API at_status at_tokenizer_decode(at_tokenizer *t, const int32_t *ids, size_t n,
                                          const char **text, size_t *len);

/**
 * @brief The number of pieces, special ones included.
 * @param t the tokenizer.
 * @return the vocabulary size (ids are 0 .. size−1); 0 for NULL.
 */
AT_TEXT_API int32_t at_tokenizer_vocab_size(const at_tokenizer *t);

/**
 * @brief The piece of an id.
 * @param t     the tokenizer.
 * @param id    0 .. at_tokenizer_vocab_size()−1.
 * @param piece receives the piece, NUL-terminated, valid until
 *              at_tokenizer_free() ("" on failure).
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_RANGE.
 */
AT_TEXT_API at_status at_tokenizer_piece(const at_tokenizer *t, int32_t id, const char **piece);

/**
 * @brief The id of a piece.
 * @param t     the tokenizer.
 * @param piece the piece, UTF-8, @p len bytes.
 * @param len   its length.
 * @param id    receives its id, or the @c \<unk> id when the vocabulary has no
 *              such piece.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_FORMAT (invalid UTF-8).
 */
AT_TEXT_API at_status at_tokenizer_id(const at_tokenizer *t, const char *piece, size_t len,
                                      int32_t *id);

/**
 * @brief The id of a special token.
 * @param t     the tokenizer.
 * @param which which one.
 * @return its id, or −1 when the model has none (or @p t is NULL).
 */
AT_TEXT_API int32_t at_tokenizer_special_id(const at_tokenizer *t, at_tok_special which);

/** @} */

/** @defgroup align Word alignment against gold links
 *  How often does attention point at the word that was translated? Word
 *  alignments (links between source and target words) read off a
 *  translation model's cross-attention — or any aligner's — scored against
 *  gold links with the alignment error rate, precision and recall (what
 *  @c attn @c align-eval prints; docs/alignment.md).
 *
 *  **Links.** A line of links is Pharaoh text: pairs separated by spaces,
 *  @c i-j for a sure link and @c i?j for a possible one, @c i the 0-based
 *  source word and @c j the 0-based target word, each a whole number of 1
 *  to 6 digits. Words are the runs of bytes other than space, tab and
 *  carriage return of the line's text (at_align_words(): the corpus's own
 *  rule, one space between words).
 *
 *  **Scores.** Only target words that have at least one gold link are
 *  scored (the others have no right answer): A is the set of distinct
 *  proposed links on them, S the sure gold links, P ⊇ S the sure and
 *  possible ones. Summed over sentences (::at_align_counts add up),
 *  AER = 1 − (|A∩S| + |A∩P|) / (|A| + |S|) (Och & Ney 2003; 1 when |A| +
 *  |S| is 0), precision = |A∩P| / |A|, recall = |A∩S| / |S| (0 when the
 *  denominator is 0). With sure links only (P = S, the Strong's links of
 *  @c attn @c corpus @c bible) AER = 1 − 2|A∩S| / (|A| + |S|).
 *
 *  **From subword attention to word links.** A sentence is encoded as the
 *  model reads it, @c \<s> pieces @c \</s>; a piece that starts with U+2581
 *  ▁ starts a word, the others continue the current one
 *  (at_align_word_map()). A (target piece × source piece) map becomes a word
 *  map by summing over a source word's pieces and averaging over a target
 *  word's pieces (at_align_pool()), and each target word is linked to the
 *  source word with the largest entry, the first on ties (at_align_argmax()).
 *
 *  **A whole evaluation** (::at_align_eval): line pairs and their gold links
 *  go in; it hands out padded batches of ids; the caller runs the model on
 *  each (libat_text does not link libat: at_forward() and the analysis calls
 *  are the caller's) and feeds back the batch's cross-attention, rollout,
 *  value norms and attention gradients (at_align_eval_feed()); it keeps the
 *  counts of every head, every layer's mean over heads, the mean over all,
 *  rollout, value norms and gradient × attention, and names the best head.
 *  Everything it counts is a sum over lines, so evaluations of parts of a
 *  corpus (threads, MPI ranks) merge exactly: at_align_eval_merge(), or
 *  at_align_eval_sums() and at_align_eval_add_sums() around an MPI sum.
 *  @code
 *  at_align_eval *e;
 *  at_align_eval_create(&e, tok, tok, layers, heads, max_len);
 *  at_align_eval_add_corpus(e, "corpus", "test", 0);
 *  at_align_batch b = {.struct_size = sizeof b};
 *  while (at_align_eval_next(e, 16, &b) == AT_OK && b.rows > 0) {
 *      at_forward(m, b.src, b.tgt, b.rows, b.src_len, b.tgt_len, AT_TOK_PAD_ID);
 *      for (int l = 0; l < layers; l++) {            // then rollout, value norms
 *          at_view v;                                // and gradients likewise
 *          at_get_attention(m, AT_ATTN_CROSS, l, &v);
 *          at_align_eval_feed(e, AT_ALIGN_IN_ATTENTION, l, &v, NULL);
 *      }
 *      ...
 *  }
 *  at_align_eval_info info = {.struct_size = sizeof info};
 *  at_align_eval_result(e, &info);   // info.best_layer, info.best_head, ...
 *  at_align_eval_free(e);
 *  @endcode
 *  An ::at_align_eval is used by one thread at a time (::AT_E_STATE
 *  otherwise, as the accumulators).
 *  @{ */

/** One link: source word @c src, target word @c tgt (both from 0). Final:
 *  this struct never changes. */
typedef struct at_align_link {
    int32_t src;    /**< the source word */
    int32_t tgt;    /**< the target word */
    int32_t sure;   /**< 1: a sure link (@c i-j), 0: a possible one (@c i?j) */
} at_align_link;

/** Counts of one alignment method over a corpus; they add over sentences
 *  (and over parts of a corpus). Final: this struct never changes. */
typedef struct at_align_counts {
    int64_t hyp;           /**< |A|: distinct proposed links on target words with a gold link */
    int64_t sure;          /**< |S|: distinct sure gold links */
    int64_t hit_sure;      /**< |A∩S| */
    int64_t hit_possible;  /**< |A∩P|: proposed links that are sure or possible gold links */
} at_align_counts;

/**
 * @brief The words of a line of text: runs of bytes other than space, tab
 *        and carriage return.
 * @param text  the line, @p len bytes (NULL only when @p len is 0).
 * @param len   its length.
 * @param words receives the number of words.
 * @return ::AT_OK; ::AT_E_ARG (a NULL pointer); ::AT_E_RANGE (more than
 *         INT32_MAX words).
 */
AT_TEXT_API at_status at_align_words(const char *text, size_t len, int32_t *words);

/**
 * @brief Parses one line of links (@c "0-0 1-2 2?2").
 *
 * Call it with @p out NULL to learn how many links the line has (at most
 * @p len / 3 + 1), then with room for them.
 * @param line      the links, @p len bytes (NULL only when @p len is 0); an
 *                  empty line (or one of blanks) has no link.
 * @param len       its length.
 * @param src_words the words of the source line (every @c i must be below it).
 * @param tgt_words the words of the target line (every @c j must be below it).
 * @param out       room for @p cap links, in the line's order, or NULL.
 * @param cap       its size in links.
 * @param n         receives the number of links of the line.
 * @return ::AT_OK; ::AT_E_ARG (a NULL pointer, negative word counts);
 *         ::AT_E_FORMAT (a token that is not @c i-j or @c i?j, or a link
 *         beyond the line's words: the message quotes it); ::AT_E_RANGE
 *         (@p cap below the number of links: @p n has it, nothing is written).
 */
AT_TEXT_API at_status at_align_parse(const char *line, size_t len, int32_t src_words,
                                     int32_t tgt_words, at_align_link *out, size_t cap,
                                     size_t *n);

/**
 * @brief Scores one sentence's proposed links against its gold links, adding
 *        into @p counts.
 *
 * Duplicates count once; a link listed both sure and possible in @p gold is
 * sure; the @c sure flag of the proposed links is not read.
 * @param counts    the sums to add to (the caller zeroes them first).
 * @param gold      @p n_gold gold links (NULL only when @p n_gold is 0).
 * @param n_gold    their number.
 * @param hyp       @p n_hyp proposed links (NULL only when @p n_hyp is 0).
 * @param n_hyp     their number.
 * @param src_words the sentence's source words (links must lie below them).
 * @param tgt_words its target words.
 * @return ::AT_OK; ::AT_E_ARG; ::AT_E_RANGE (a link outside the words: the
 *         message says which); ::AT_E_NOMEM. On failure nothing is added.
 */
AT_TEXT_API at_status at_align_score(at_align_counts *counts, const at_align_link *gold,
                                     size_t n_gold, const at_align_link *hyp, size_t n_hyp,
                                     int32_t src_words, int32_t tgt_words);

/**
 * @brief AER, precision and recall of counts, as defined above.
 * @param counts    the counts.
 * @param aer       receives the alignment error rate (or NULL).
 * @param precision receives the precision (or NULL).
 * @param recall    receives the recall (or NULL).
 * @return ::AT_OK; ::AT_E_ARG (@p counts NULL, or a negative count).
 */
AT_TEXT_API at_status at_align_rates(const at_align_counts *counts, double *aer,
                                     double *precision, double *recall);

/**
 * @brief The word of each piece of a sentence.
 *
 * @p ids is the sentence as the model reads it: ::AT_TOK_BOS_ID, pieces,
 * ::AT_TOK_EOS_ID (either may be missing). Those two get −1; a piece that
 * starts with U+2581 ▁, or the first piece, starts a new word; every other
 * piece belongs to the word before it.
 * @param t     the tokenizer that made @p ids.
 * @param ids   @p n ids.
 * @param n     their number (at most INT32_MAX).
 * @param word  receives @p n word numbers (from 0, or −1).
 * @param words receives the number of words.
 * @return ::AT_OK; ::AT_E_ARG; ::AT_E_RANGE (an id outside the vocabulary:
 *         the message gives its position).
 */
AT_TEXT_API at_status at_align_word_map(const at_tokenizer *t, const int32_t *ids, size_t n,
                                        int32_t *word, int32_t *words);

/**
 * @brief A (target piece × source piece) map reduced to words.
 *
 * out[j · src_words + i] = mean over the rows r with tgt_word[r] = j of the
 * sum over the columns c with src_word[c] = i of map[r · row_stride + c ·
 * col_stride]: a source word's pieces share the attention a query gives it,
 * and each of a target word's pieces is one query. Rows and columns of word
 * −1 (@c \<s>, @c \</s>) are left out; a target word without rows gets 0.
 * For cross-attention, row r is the query that emits target piece r + 1
 * (its input is piece r), so @p tgt_word is the word map of the target ids
 * from their second entry.
 * @param out        receives @p tgt_words × @p src_words values.
 * @param tgt_words  the target words (≥ 0).
 * @param src_words  the source words (≥ 0).
 * @param map        the map: @p rows × @p cols floats at the strides given.
 * @param row_stride distance between rows, in floats.
 * @param col_stride distance between columns, in floats.
 * @param rows       its rows.
 * @param cols       its columns.
 * @param tgt_word   the target word of each row (−1 .. @p tgt_words − 1).
 * @param src_word   the source word of each column (−1 .. @p src_words − 1).
 * @return ::AT_OK; ::AT_E_ARG (a NULL pointer, a negative size);
 *         ::AT_E_RANGE (a word number out of range).
 */
AT_TEXT_API at_status at_align_pool(double *out, int32_t tgt_words, int32_t src_words,
                                    const float *map, int64_t row_stride, int64_t col_stride,
                                    int32_t rows, int32_t cols, const int32_t *tgt_word,
                                    const int32_t *src_word);

/**
 * @brief One sure link per target word: to the source word with the largest
 *        entry of its row (the first on ties).
 * @param out       receives @p tgt_words links, in target order (none when
 *                  @p src_words is 0).
 * @param n         receives their number.
 * @param map       the word map, @p tgt_words × @p src_words (at_align_pool()).
 * @param tgt_words the target words (≥ 0).
 * @param src_words the source words (≥ 0).
 * @return ::AT_OK, ::AT_E_ARG.
 */
AT_TEXT_API at_status at_align_argmax(at_align_link *out, size_t *n, const double *map,
                                      int32_t tgt_words, int32_t src_words);

/** An evaluation of a model's alignments over line pairs with gold links. */
typedef struct at_align_eval at_align_eval;

/** What at_align_eval_feed() is given. Values are fixed; new ones are added
 *  at the end. */
typedef enum at_align_input {
    AT_ALIGN_IN_ATTENTION = 0,   /**< a cross-attention layer's weights, (rows, h, T, S) */
    AT_ALIGN_IN_ROLLOUT = 1,     /**< at_rollout() of the cross-attention, (rows, T, S) */
    AT_ALIGN_IN_VALUE_NORM = 2,  /**< at_value_norm() of a cross layer, (rows, h, T, S) */
    AT_ALIGN_IN_GRADIENT = 3     /**< a cross layer's dL/dA, with its A, (rows, h, T, S) */
} at_align_input;

/** The alignment methods an ::at_align_eval scores. Values are fixed. */
typedef enum at_align_method {
    AT_ALIGN_HEAD = 0,         /**< one head of one layer */
    AT_ALIGN_LAYER = 1,        /**< a layer's heads averaged */
    AT_ALIGN_AVERAGE = 2,      /**< every head of every layer averaged */
    AT_ALIGN_ROLLOUT = 3,      /**< rollout to the source */
    AT_ALIGN_VALUE_NORM = 4,   /**< value norms, averaged over heads and layers */
    AT_ALIGN_ATTRIBUTION = 5   /**< (−dL/dA ⊙ A)⁺, averaged over heads and layers */
} at_align_method;

/** A batch of line pairs for the model (at_align_eval_next()); the caller
 *  sets @c struct_size. The arrays are lent until the next
 *  at_align_eval_next() or at_align_eval_free(). */
typedef struct at_align_batch {
    size_t struct_size;      /**< set by the caller: sizeof(at_align_batch) */
    int32_t rows;            /**< line pairs (0: none left) */
    int32_t src_len;         /**< S: the longest source, in ids */
    int32_t tgt_len;         /**< T: the longest decoder input, in ids */
    int32_t reserved;        /**< 0 */
    const int32_t *src;      /**< (rows, S) sources @c \<s> pieces @c \</s>, padded with
                                  ::AT_TOK_PAD_ID */
    const int32_t *tgt;      /**< (rows, T) decoder inputs @c \<s> pieces, padded */
    const int32_t *ys;       /**< (rows, T + 1) full targets @c \<s> pieces @c \</s>,
                                  padded: the labels of at_attention_gradients() */
    const int64_t *lines;    /**< (rows) the line of each row, from 0, in the order added */
} at_align_batch;

/** The state of an evaluation (at_align_eval_result()); the caller sets
 *  @c struct_size. */
typedef struct at_align_eval_info {
    size_t struct_size;   /**< set by the caller: sizeof(at_align_eval_info) */
    int64_t lines;        /**< line pairs scored */
    int64_t truncated;    /**< left out: longer than the model's positions */
    int64_t pieces;       /**< left out: their pieces do not make up their words */
    int64_t no_links;     /**< left out: no gold link */
    int64_t pending;      /**< added and not yet scored */
    int64_t gold;         /**< |S| over the lines scored */
    int32_t layers;       /**< as created */
    int32_t heads;        /**< as created */
    int32_t best_layer;   /**< the head with the lowest AER (the first on ties): its layer, */
    int32_t best_head;    /**< and its head, both from 0 */
    double best_aer;      /**< its AER */
} at_align_eval_info;

/**
 * @brief Creates an evaluation for a model of @p layers cross-attention
 *        layers of @p heads heads and @p max_len positions.
 * @param out     receives the evaluation (NULL on failure).
 * @param src     the source side's tokenizer, borrowed until
 *                at_align_eval_free() (its lent ids are overwritten by adds).
 * @param tgt     the target side's (may be @p src).
 * @param layers  1 .. 4096.
 * @param heads   1 .. 4096.
 * @param max_len the model's positions, 2 .. 2^24: longer sources (and
 *                decoder inputs) are left out and counted.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_NOMEM.
 */
AT_TEXT_API at_status at_align_eval_create(at_align_eval **out, at_tokenizer *src,
                                           at_tokenizer *tgt, int32_t layers, int32_t heads,
                                           int32_t max_len);

/**
 * @brief Frees an evaluation.
 * @param e the evaluation, or NULL.
 */
AT_TEXT_API void at_align_eval_free(at_align_eval *e);

/**
 * @brief Adds one line pair and its gold links.
 *
 * The links are parsed against the lines' words; a pair without gold link,
 * longer than the model's positions, or whose pieces do not make up as many
 * words as its text has (a normaliser that moved white space) is left out
 * and counted; the others wait for at_align_eval_next().
 * @param e       the evaluation.
 * @param src     the source line, UTF-8, @p src_len bytes.
 * @param src_len its length.
 * @param tgt     the target line.
 * @param tgt_len its length.
 * @param links   its gold links (at_align_parse()'s syntax).
 * @param links_len their length.
 * @return ::AT_OK; ::AT_E_ARG; ::AT_E_FORMAT (bad links, invalid UTF-8: the
 *         message names the line, counted from 1 over the adds);
 *         ::AT_E_NOMEM; ::AT_E_STATE. On failure nothing is added.
 */
AT_TEXT_API at_status at_align_eval_add(at_align_eval *e, const char *src, size_t src_len,
                                        const char *tgt, size_t tgt_len, const char *links,
                                        size_t links_len);

/**
 * @brief Adds the line pairs of a corpus folder: @p dir/@p split.src,
 *        .tgt and .align, one line pair and its links per line.
 *
 * Lines end at @c \\n (a @c \\r before it is dropped; a last line without
 * @c \\n counts). Everything is checked before anything is added: the three
 * files must have as many lines, the sentences must be valid UTF-8, without
 * NUL and not blank, and every line of links must parse against its pair's
 * words, also past @p limit. Messages name the file and the line
 * (@c "corpus/test.align line 3: link 12-4 is beyond the line's words (11
 * source, 9 target)").
 * @param e     the evaluation.
 * @param dir   the folder.
 * @param split the split's name (@c "test"; no @c '/').
 * @param limit add only the first @p limit lines (0: all).
 * @return ::AT_OK; ::AT_E_ARG; ::AT_E_IO (a file that cannot be read);
 *         ::AT_E_FORMAT (line counts that differ, bad text or links);
 *         ::AT_E_NOMEM; ::AT_E_STATE (@p e, or a tokenizer, in use by another
 *         thread). On failure nothing is added.
 */
AT_TEXT_API at_status at_align_eval_add_corpus(at_align_eval *e, const char *dir,
                                               const char *split, int64_t limit);

/**
 * @brief Adds one part of a corpus split, for evaluations that run in
 *        several processes (MPI ranks) and merge their counts.
 *
 * As at_align_eval_add_corpus() — the whole split is read and checked, so
 * every part sees the same errors — but of its first @p limit lines (all
 * with 0) only the contiguous range of part @p part of @p parts is added:
 * n / parts lines each, the first n % parts parts one more. The parts' sums
 * (at_align_eval_sums()) add up to the evaluation of the lines together.
 * @param e     the evaluation.
 * @param dir   the folder.
 * @param split the split's name.
 * @param limit the lines considered (0: all).
 * @param part  0 .. @p parts − 1.
 * @param parts 1 or more.
 * @return as at_align_eval_add_corpus(); ::AT_E_ARG also for a part outside
 *         [0, parts).
 */
AT_TEXT_API at_status at_align_eval_add_corpus_part(at_align_eval *e, const char *dir,
                                                    const char *split, int64_t limit,
                                                    int64_t part, int64_t parts);

/**
 * @brief The next batch of waiting line pairs, in the order added.
 *
 * The caller runs the model on it — at_forward() on @c src and @c tgt, and
 * at_attention_gradients() on @c src and @c ys with the batch's mean NLL —
 * and gives every input of ::at_align_input to at_align_eval_feed() before
 * asking for the next batch; the lines count as scored then.
 * @param e        the evaluation.
 * @param max_rows at most this many rows (1 .. 2^20).
 * @param out      the batch (@c struct_size set); @c rows is 0 when no line waits.
 * @return ::AT_OK; ::AT_E_ARG; ::AT_E_STATE (the last batch is not complete:
 *         the message says what it lacks); ::AT_E_NOMEM.
 */
AT_TEXT_API at_status at_align_eval_next(at_align_eval *e, int32_t max_rows,
                                         at_align_batch *out);

/**
 * @brief Gives the current batch one of its maps and scores what it completes.
 *
 * Every input is needed once per batch, and the layers of each in order
 * 0, 1, …: ::AT_ALIGN_IN_ATTENTION per layer (scores its heads and their
 * mean; the last layer scores the mean of all), ::AT_ALIGN_IN_ROLLOUT once
 * (@p layer 0), ::AT_ALIGN_IN_VALUE_NORM and ::AT_ALIGN_IN_GRADIENT per
 * layer (their means over heads and layers are scored with the last layer).
 * The data are read during the call only.
 * @param e     the evaluation.
 * @param input which map.
 * @param layer its layer, from 0.
 * @param map   the map: 4-D (rows, heads, T, S) as at_get_attention() gives
 *              it (any strides), or for the rollout 3-D (rows, T, S).
 * @param attn  with ::AT_ALIGN_IN_GRADIENT the attention the gradient is of
 *              (at_get_attention() after at_attention_gradients()), else NULL.
 * @return ::AT_OK; ::AT_E_ARG (NULL, an unknown input); ::AT_E_SHAPE (a map
 *         of another shape than the batch's); ::AT_E_STATE (no batch, a layer
 *         out of order or given twice); ::AT_E_NOMEM.
 */
AT_TEXT_API at_status at_align_eval_feed(at_align_eval *e, at_align_input input, int32_t layer,
                                         const at_view *map, const at_view *attn);

/**
 * @brief The counts of one method over the lines scored.
 * @param e      the evaluation.
 * @param method which method.
 * @param layer  its layer for ::AT_ALIGN_HEAD and ::AT_ALIGN_LAYER (from 0),
 *               else ignored.
 * @param head   its head for ::AT_ALIGN_HEAD (from 0), else ignored.
 * @param out    receives the counts (at_align_rates() turns them into scores).
 * @return ::AT_OK; ::AT_E_ARG; ::AT_E_RANGE (a layer or head out of range);
 *         ::AT_E_STATE (a batch is incomplete).
 */
AT_TEXT_API at_status at_align_eval_counts(at_align_eval *e, at_align_method method,
                                           int32_t layer, int32_t head, at_align_counts *out);

/**
 * @brief The lines scored and left out, and the best head.
 * @param e   the evaluation.
 * @param out receives the state (@c struct_size set).
 * @return ::AT_OK; ::AT_E_ARG; ::AT_E_STATE (a batch is incomplete).
 */
AT_TEXT_API at_status at_align_eval_result(at_align_eval *e, at_align_eval_info *out);

/**
 * @brief Adds the counts of another evaluation of the same shape (layers and
 *        heads) into @p e: the result is the evaluation of both parts.
 * @param e    the evaluation added to.
 * @param from the other (unchanged; its waiting lines are not taken; no
 *             other thread may be using it).
 * @return ::AT_OK; ::AT_E_ARG (NULL, the same object); ::AT_E_SHAPE (another
 *         shape); ::AT_E_STATE (a batch of either is incomplete).
 */
AT_TEXT_API at_status at_align_eval_merge(at_align_eval *e, const at_align_eval *from);

/**
 * @brief Every count of the evaluation as one array of sums, for a sum over
 *        processes (@c MPI_Allreduce with @c MPI_SUM) and at_align_eval_add_sums().
 *
 * The layout: lines, truncated, pieces, no_links, then the four fields of
 * ::at_align_counts for every head (layer-major), every layer, the average,
 * rollout, value norms and attribution: 4 + 4 (L·h + L + 4) values.
 * @param e   the evaluation.
 * @param out room for @p cap values, or NULL to learn @p n.
 * @param cap its size.
 * @param n   receives the number of values.
 * @return ::AT_OK; ::AT_E_ARG; ::AT_E_RANGE (@p cap too small); ::AT_E_STATE.
 */
AT_TEXT_API at_status at_align_eval_sums(at_align_eval *e, int64_t *out, size_t cap, size_t *n);

/**
 * @brief Adds an array of at_align_eval_sums() (of an evaluation of the same
 *        shape, or a sum of several) into @p e.
 * @param e    the evaluation.
 * @param sums the values.
 * @param n    their number (what at_align_eval_sums() gives for @p e).
 * @return ::AT_OK; ::AT_E_ARG (NULL, a negative value); ::AT_E_SHAPE (another
 *         count); ::AT_E_STATE.
 */
AT_TEXT_API at_status at_align_eval_add_sums(at_align_eval *e, const int64_t *sums, size_t n);

/**
 * @brief Scores a file of proposed links against a corpus folder's gold
 *        links, line by line (what @c attn @c align-eval @c --hyp does).
 *
 * Reads and checks @p dir/@p split.src, .tgt and .align as
 * at_align_eval_add_corpus() does, and @p hyp_path the same way (as many
 * lines, links inside each line's words).
 * @param dir      the folder.
 * @param split    the split.
 * @param hyp_path the proposed links.
 * @param limit    only the first @p limit lines (0: all).
 * @param out      receives the counts.
 * @param lines    receives the number of lines scored (or NULL).
 * @return as at_align_eval_add_corpus().
 */
AT_TEXT_API at_status at_align_score_files(const char *dir, const char *split,
                                           const char *hyp_path, int64_t limit,
                                           at_align_counts *out, int64_t *lines);

/** @} */

#ifdef __cplusplus
}
#endif

#endif
