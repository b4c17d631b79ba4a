/**
 * @file at_text.h
 * @brief libat_text: the text companion library of libat — corpus BLEU and
 *        chrF as sacreBLEU computes them, verses of SWORD Bibles with their
 *        Strong's numbers, SentencePiece tokenizers.
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

#ifdef __cplusplus
}
#endif

#endif
