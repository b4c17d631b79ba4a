/* The attn program's private declarations: exit codes, messages, option
 * parsing (args.c), file helpers (io.c) and the subcommands (cmd_*.c). */
#ifndef ATTN_H
#define ATTN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "at.h"
#include "io/st.h"

/* Exit codes: 2 for a command line that cannot be run, 1 for a failure while
 * running (unreadable file, bad data, failed write). */
enum { ATTN_OK = 0, ATTN_FAIL = 1, ATTN_USAGE = 2 };

/* ---------------------------------------------------------------- messages */

#if defined(__GNUC__)
#define ATTN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ATTN_PRINTF(a, b)
#endif

/* Prints "attn: <message>" as one line on stderr (control characters in the
 * message, newlines included, become spaces). */
void attn_error(const char *fmt, ...) ATTN_PRINTF(1, 2);

/* ---------------------------------------------------------------- options (args.c) */

typedef enum opt_kind {
    OPT_FLAG, /* --name; dest is bool * */
    OPT_STR,  /* --name VALUE; dest is const char ** (points into argv) */
    OPT_INT,  /* --name N, a whole number in [lo, hi]; dest is int * */
    OPT_NUM,  /* --name X, a finite number in [lo, hi]; dest is double * */
    OPT_LIST  /* --name VALUE, repeatable; dest is opt_list * */
} opt_kind;

/* The values of a repeatable option, in order (pointers into argv). */
enum { OPT_LIST_MAX = 4096 };
typedef struct opt_list {
    const char *v[OPT_LIST_MAX];
    int n;
} opt_list;

typedef struct opt {
    const char *name; /* without the leading "--" */
    opt_kind kind;
    void *dest;
    double lo, hi;    /* OPT_INT, OPT_NUM: accepted range, both ends included */
    bool seen;        /* set by args_parse */
} opt;

enum { ARGS_OK = 0, ARGS_HELP = 1, ARGS_ERROR = -1 };

/* Parses argv[1..argc-1] of subcommand argv[0]: options as "--name value" or
 * "--name=value", -h/--help, "--" ending the options, and up to maxpos
 * positional arguments (stored in pos, counted in *npos). An option given
 * twice (but for an OPT_LIST), an unknown option, a missing or malformed value
 * and a surplus positional are errors. Returns ARGS_OK, ARGS_HELP (--help seen; nothing
 * printed) or ARGS_ERROR (the one-line message is printed). */
int args_parse(int argc, char **argv, opt *opts, int nopts, char **pos, int maxpos,
               int *npos);

/* args_parse for a subcommand that takes no positional argument, printing its
 * help for --help. Returns true to go on; false when the caller should return
 * *exit_code (ATTN_OK after the help, ATTN_USAGE after an error). */
bool args_command(int argc, char **argv, opt *opts, int nopts, const char *help,
                  int *exit_code);

/* Prints "attn: CMD: --NAME is required (see attn CMD --help)" and returns
 * ATTN_USAGE if o was not seen, else returns ATTN_OK. */
int args_require(const char *cmd, const opt *o);

/* ---------------------------------------------------------------- files (io.c) */

/* Reads a checkpoint (at_model_load_buffer over st_read). heads > 0 is passed
 * as AT_P_HEADS in the hint. If file is not NULL it receives the parsed file
 * (free with st_free); otherwise it is freed. Prints the error; returns an
 * exit code. */
int io_load_model(const char *path, int heads, at_model **out, st_file *file);

/* Reads integer tensor `name` of shape (rows, cols) from f as int32 ids.
 * A missing tensor gives ATTN_OK with *out NULL when !required. Prints the
 * error; returns an exit code. *out is freed by the caller. */
int io_read_ids(const st_file *f, const char *fpath, const char *name, bool required,
                int32_t **out, int *rows, int *cols);

/* A batch as training reads it: src (B, S) and the full target tgt (B, T+1). */
typedef struct id_batch {
    const int32_t *src, *tgt;
    int B, S, T1;
    int32_t pad;
} id_batch;

/* src (B, S) and tgt (B, T) of an input file (what it is, for messages),
 * tgt optional unless need_tgt (absent: NULL and T 0), of the same batch.
 * The caller frees *src and *tgt. Prints the error; returns an exit code. */
int io_read_input(const char *cmd, const char *what, const char *input, bool need_tgt,
                  int32_t **src, int32_t **tgt, int *B, int *S, int *T);

/* src and tgt of an input file into *src, *tgt (the caller frees them) and
 * b; tgt needs 2 columns or more. Prints the error (prefixed with cmd);
 * returns an exit code. */
int io_read_batch(const char *cmd, const char *input, int32_t **src, int32_t **tgt,
                  id_batch *b);

/* Writes the results of the last pass on m (at_forward or at_greedy_decode)
 * to path, atomically, under the golden names: src_mask, memory,
 * attn.enc_self.{i}, and with a target tgt_mask, decoder_out, logprobs,
 * attn.dec_self.{i}, attn.cross.{i}, all F32 from the views themselves (no
 * copy when contiguous), then the nextra tensors of extra. meta_kv holds nmeta
 * key/value pairs. Prints the error; returns an exit code. */
int io_write_outputs(at_model *m, const char *path, const st_out *extra, int nextra,
                     const char *const *meta_kv, int nmeta);

/* The model's hyperparameter as an int (0 if it cannot be read). */
int io_model_int(const at_model *m, at_param key);

/* DIR/NAME, malloc'd (NULL when out of memory). */
char *io_join(const char *dir, const char *name);

/* ---------------------------------------------------------------- attn decode's rows (cmd_decode.c) */

/* The --src rows (ids 0 .. INT32_MAX separated by commas or white space) as
 * one (B, S) batch: B = rows->n (at least 1), S the longest row, shorter rows
 * filled with pad (refused when pad < 0). *out is malloc'd. Prints the error;
 * returns an exit code. (Fuzzed by tests/fuzz_attn_args.c.) */
int parse_rows(const opt_list *rows, int32_t pad, int32_t **out, int *B, int *S);

/* ---------------------------------------------------------------- output paths (outdir.c) */

/* The program as it was run (main's argv[0]), for commands shown in messages. */
extern const char *attn_program;

/* Whether path could be written now, as file_check_writable says (a regular
 * file or nothing; a symbolic link is followed; its directory writable): for
 * a command to fail before its long job rather than after it. Prints
 * "attn: WHO: ..."; returns an exit code. */
int io_check_output(const char *who, const char *path);

/* A folder written as a whole. outdir_begin makes a temporary folder
 * (DIR.tmp.PID.XXXXXX beside DIR, creating DIR's missing parents; or, when DIR
 * exists, DIR/.attn.tmp.PID.XXXXXX inside it) and removes those a killed run
 * left behind. Files are written into it (outdir_path). outdir_commit renames
 * it to DIR, or, when DIR exists, moves its files in beside DIR's others
 * (replacing files of the same name, following symbolic links to their
 * targets, refusing devices, FIFOs and folders in the way: every move is
 * checked before the first). outdir_abort removes the temporary folder and
 * the parents outdir_begin made: a failure leaves nothing half written.
 * Each prints its error ("attn: WHO: ..."); they return exit codes. */
typedef struct outdir {
    const char *who;
    char *dir;     /* the folder asked for, without trailing slashes */
    char *tmp;     /* the temporary folder */
    char *made;    /* the shallowest parent outdir_begin created, or NULL */
    bool merge;    /* dir existed: its new files are moved in one by one */
} outdir;

/* Whether dir could be written by outdir_begin and outdir_commit now: absent
 * with a writable nearest existing ancestor, or a writable directory in which
 * each of the NULL-terminated files (may be NULL) is a regular file or absent
 * and each of subdirs a directory or absent. For failing before a long job. */
int outdir_check(const char *who, const char *dir, const char *const *files,
                 const char *const *subdirs);
int outdir_begin(outdir *o, const char *who, const char *dir);
/* TMP/name, malloc'd (NULL and a message when out of memory). */
char *outdir_path(const outdir *o, const char *name);
int outdir_commit(outdir *o);
void outdir_abort(outdir *o);

/* ---------------------------------------------------------------- the copy task (copy.c) */

/* Settings of a copy-task run; copy_defaults gives the reference's. */
/* ---------------------------------------------------------------- training snapshots (snapshot.c) */

/* The attention and head statistics of a probe every K steps, in one file. */
typedef struct snapshots snapshots;
/* Reads the probe (src (B, S), optional decoder input tgt (B, T), pad 0),
 * takes the first snapshot at the model's current step and writes out. */
int snap_open(const char *who, const char *probe, const char *out, int every, at_model *m,
              snapshots **s);
/* The same for --probe-text (attn train --task translate): each text
 * "source" or "source ||| target" (a text @F: the lines of file F), encoded
 * with the run's tokenizers as the trainer reads pairs, padded with 0. */
struct at_tokenizer;
int snap_open_text(const char *who, const opt_list *texts, struct at_tokenizer *src_tok,
                   struct at_tokenizer *tgt_tok, const char *out, int every, at_model *m,
                   snapshots **s);
int snap_take(snapshots *s, at_model *m);
/* A snapshot when the step count is a multiple of K (s NULL: none). */
int snap_after_step(snapshots *s, at_model *m);
int snap_count(const snapshots *s);
void snap_close(snapshots *s);
/* OUT without its .safetensors, then .snapshots.safetensors (malloc'd). */
char *snap_default_path(const char *out);

typedef struct copy_opts {
    int vocab, layers, d_model, heads, d_ff;      /* the model */
    double dropout, attn_dropout;
    double lr, warmup, smoothing;                 /* Adam's base lr, Noam warmup */
    int seed;                                     /* initialisation, dropout and data */
    int batch, seq_len, batches, eval_batches;    /* data_gen(V, batch, batches), length */
    int epochs, save_every, heldout;
    const char *out;   /* training checkpoint: every save_every epochs and at the end */
    bool quiet;        /* no epoch lines, no progress bar */
    const char *who;   /* the subcommand, for messages */
    snapshots *snap;   /* --snapshot-every, or NULL */
} copy_opts;

/* A deterministic stream of the data generator. Epoch e (0-based) draws its
 * training batches, then its evaluation batches, from stream e, so a resumed
 * run sees the data of a straight one; the held-out rows come from a stream
 * no epoch uses. */
typedef struct copy_rng {
    uint64_t s;
} copy_rng;
#define COPY_HELDOUT_STREAM UINT64_MAX

typedef struct copy_result {
    int epochs_run;                 /* epochs completed (a partial one not counted) */
    double train_loss, eval_loss;   /* of the last epoch run (eval -1: none) */
    double train_seconds, seconds;  /* training steps alone; everything */
    int interrupted;                /* the signal that stopped training early, or 0 */
} copy_result;

typedef struct copy_accuracy {
    int rows, exact;
    int64_t tokens, tokens_correct;  /* positions after the start symbol */
    double seconds;
} copy_accuracy;

void copy_defaults(copy_opts *o);
double copy_now(void);
copy_rng copy_stream(uint64_t seed, uint64_t stream);
/* data_gen's rows: column 0 is the start symbol 1, the rest uniform in 1..vocab-1. */
void copy_rows(copy_rng *r, int32_t *ids, int rows, int len, int vocab);
/* The stream's next 64 bits (splitmix64). */
uint64_t copy_next(copy_rng *r);
/* Creates the model of o (exit code; AT_E_ARG from the library is a usage error). */
int copy_create(const copy_opts *o, at_model **out);
/* The number of trained parameters. */
int64_t copy_parameters(at_model *m);
/* Trains from step at_model_steps(m) (epoch steps / o->batches, which skips
 * the first steps % o->batches batches of that epoch's data: a checkpoint
 * taken mid-epoch goes on where it stopped) up to o->epochs, printing one
 * line per completed epoch (and a progress bar when stderr is a terminal),
 * saving to o->out every o->save_every epochs except the last (the caller
 * saves at the end). Between two steps (and two evaluation batches) it
 * checks for a signal caught by copy_catch_signals: then it stops there with
 * res->interrupted set and ATTN_OK. Returns an exit code; res says what was
 * done. */
int copy_train(at_model *m, const copy_opts *o, copy_result *res);

/* From now on the first SIGINT or SIGTERM only asks copy_train to stop after
 * its current step (and says so on stdout at once, first clearing the
 * progress bar with bar); a second one (of either) ends the process at once,
 * by that signal. A signal ignored when this is called (a background job of
 * a script) stays ignored. copy_release_signals restores what was there. */
void copy_catch_signals(bool bar);
void copy_release_signals(void);
/* The signal caught since copy_catch_signals, or 0. */
int copy_caught_signal(void);
/* Writes the training checkpoint o->out. */
int copy_save(at_model *m, const copy_opts *o);
/* Greedy-decodes `rows` held-out rows and counts exact copies. */
int copy_heldout(at_model *m, const copy_opts *o, int rows, copy_accuracy *acc);
void copy_print_heldout(const copy_opts *o, const copy_accuracy *acc);
/* Decodes the reference's own example, src 0 1 ... 9 with start symbol 0 and
 * no padding mask, and prints it with a note. */
int copy_reference_example(at_model *m, const copy_opts *o);

/* ---------------------------------------------------------------- translation models (nmt.c) */

/* How a translation model reads and writes text (docs/translation.md): the
 * SentencePiece tokenizer(s) it carries in its metadata (AT_TOK_META_JOINT,
 * or AT_TOK_META_SRC and AT_TOK_META_TGT: base64 of the serialized model),
 * ids framed as <s> pieces </s> on both sides (AT_TOK_BOS_ID, AT_TOK_EOS_ID),
 * pad AT_TOK_PAD_ID; decoding starts at <s> and ends at </s>. */
struct at_tokenizer;
typedef struct nmt {
    at_model *m;
    struct at_tokenizer *src, *tgt;   /* the same pointer when joint */
    bool joint;
    bool owns_model;                  /* nmt_load opened m: nmt_free frees it */
    int max_len;                      /* the positions the model has (AT_P_MAX_LEN) */
} nmt;

/* Opens checkpoint path and its tokenizers. A model without a tokenizer,
 * or whose tokenizer's vocabulary differs from the model's, is an error
 * that says so. Prints "attn: WHO: ..."; returns an exit code. */
int nmt_load(const char *who, const char *path, nmt *out);
/* The same for a model already open (not owned; path for messages). */
int nmt_from_model(const char *who, at_model *m, const char *path, nmt *out);
/* Frees the tokenizers (and the model when nmt_load opened it). */
void nmt_free(nmt *t);
/* Stores tokenizers in m's metadata (src == tgt: one joint entry). */
int nmt_attach(const char *who, at_model *m, struct at_tokenizer *src,
               struct at_tokenizer *tgt);

/* Encodes one sentence as the model reads it: <s> pieces </s>, at most max
 * ids (a longer one is cut to max - 1 ids and </s>, and *truncated set).
 * *ids is malloc'd. Invalid UTF-8 is an error naming the byte. */
int nmt_encode(const char *who, struct at_tokenizer *t, const char *text, size_t len, int max,
               int32_t **ids, int *n, bool *truncated);

typedef struct nmt_opts {
    int beam;          /* 1: greedy decoding (at_greedy_decode); K > 1: at_beam_decode */
    double alpha;      /* GNMT length penalty (beam only) */
    double len_a, len_b;   /* the longest output: a + b * (source ids) ids */
    int batch;         /* sentences per decoding call (sorted by length first) */
    /* Called before each decoding call with the input indices of its B
     * sentences, in row order, and their source length S (NULL: nothing):
     * how attn translate --override sets the rows of each batch. A return
     * other than ATTN_OK stops translating with it. */
    int (*before)(void *user, const int *index, int B, int S);
    void *user;
} nmt_opts;
void nmt_opts_default(nmt_opts *o);   /* beam 4, alpha 0.6, a 10, b 2, batch 32, no hook */

/* Translates n sentences (UTF-8, lens[i] bytes each): each *out[i] becomes
 * the detokenized translation, malloc'd (free each and nothing else on
 * failure: they are NULL). Sentences longer than the model's positions are
 * truncated with one warning naming the first. Returns an exit code. */
int nmt_translate(const char *who, nmt *t, const char *const *lines, const size_t *lens, int n,
                  const nmt_opts *o, char **out);

/* Settings a resumed run takes from its checkpoint (both training tasks):
 * each key's value is stored in dest (an int when is_int, else a double);
 * a flag given on the command line (opts) with another value is refused.
 * Prints the error; returns an exit code. */
typedef struct resumed {
    const char *flag;   /* the option's name, without "--" */
    at_param key;
    bool is_int;
    void *dest;
} resumed;
int resume_take(at_model *m, const char *path, const opt *opts, int nopts, const resumed *r,
                int nr);

/* ---------------------------------------------------------------- interventions (intv.c) */

/* The intervention options a pass may take (docs/interventions.md, "On the
 * command line"): --gate KIND:L:H=G (repeatable), --override F, and for attn
 * dump --taps SITE,... and --keep KIND[:L[:H]] (repeatable). Specs count
 * layers and heads from 1, as the charts do; the library from 0. */
typedef struct head_spec {
    int kind, layer, head;   /* 0-based; AT_ALL for '*' (or a part left out) */
    float value;             /* --gate's G */
    const char *text;        /* the spec as given, for messages */
} head_spec;

/* One tensor of --override F: attn.KIND.I (all heads) or attn.KIND.I.headJ. */
typedef struct override_t {
    int kind, layer, head;   /* head AT_ALL: (B, h, Lq, Lk), else (B, Lq, Lk) */
    int B, q_len, k_len;
    float *probs;
} override_t;

/* A tensor a --taps tap copied out of the pass, written as {site}.{kind}.{i}. */
typedef struct tap_copy {
    char name[48];
    int ndim;
    int64_t shape[4];
    float *data;
} tap_copy;

/* Which flags a command offers (intv_opts). */
enum { IV_GATE = 1, IV_OVERRIDE = 2, IV_TAPS = 4, IV_KEEP = 8 };

typedef struct intv {
    const char *who;               /* the subcommand, for messages */
    opt_list gate_args, keep_args; /* as given */
    const char *override_path, *taps_arg;
    head_spec *gates, *keeps;
    int ngates, nkeeps;
    override_t *ov;
    int nov;
    bool tap_site[AT_SITE_COUNT];
    tap_copy *taps;
    int ntaps, taps_cap;
    int tap_error;                 /* a tap that could not copy (out of memory) */
    int layers, heads;             /* the model's, after intv_apply */
    bool *kept;                    /* with --keep: [kind][layer][head], else NULL */
} intv;

/* Adds the options of `which` (IV_*) writing into iv to opts; returns their
 * number (at most 4). iv is zeroed first, iv->who set. iv is large (two
 * opt_lists): make it static. */
int intv_opts(intv *iv, const char *who, unsigned which, opt *opts);
/* Parses the specs given (their syntax: kinds, numbers, '*', G finite, site
 * names). ATTN_USAGE with a message naming the flag when one is malformed. */
int intv_parse(intv *iv);
/* Checks the parsed specs against the model's layers and heads (ATTN_USAGE
 * with the allowed range), then sets the gates and the capture policy. */
int intv_apply(intv *iv, at_model *m);
/* Reads --override F and checks every tensor against the pass: B rows, and
 * for S or T >= 0 those exact lengths (-1: any length, as in decoding, where
 * row t is used at step t; T 0: no decoder, so no decoder attention).
 * Tensors that attn dump writes besides attention are ignored; an unknown
 * name, a wrong dtype or shape is an error (exit 1) naming it. Does nothing
 * without --override. */
int intv_load_override(intv *iv, at_model *m, int B, int S, int T);
/* Sets every override read (at_attention_override). */
int intv_set_override(intv *iv, at_model *m);
/* The override rows of sentences index[0 .. B-1] for a decoding call over a
 * source of S positions (keys cut or filled with 0 to S): attn translate's
 * batches hold sentences in another order than the file. */
int intv_set_override_rows(intv *iv, at_model *m, const int *index, int B, int S);
/* Registers a tap per --taps site that copies what it sees into iv->taps. */
int intv_add_taps(intv *iv, at_model *m);
/* Whether head (kind, layer, head) is written (no --keep: all). */
bool intv_kept(const intv *iv, int kind, int layer, int head);
/* One spec KIND[:L[:H]] of --flag, min_parts of its three parts required
 * (ATTN_USAGE with a message); its range against iv's model, known after
 * intv_apply (ATTN_USAGE naming the range); whether it names a head. */
int intv_parse_spec(const char *who, const char *flag, const char *text, int min_parts,
                    head_spec *out);
int intv_check_spec(const intv *iv, const char *flag, const head_spec *s);
bool intv_spec_has(const head_spec *s, int kind, int layer, int head);
void intv_free(intv *iv);

/* io_write_outputs with attention chosen by iv's capture policy: a layer whose
 * heads are all kept as attn.{kind}.{i}, one partly kept as its kept heads
 * attn.{kind}.{i}.head{j} (B, Lq, Lk), a dropped one not at all; then iv's
 * tap copies (but those named as a tensor already written: memory, logprobs)
 * and extra. iv may be NULL. */
int io_write_pass(at_model *m, const char *path, const intv *iv, const st_out *extra,
                  int nextra, const char *const *meta_kv, int nmeta);

/* ---------------------------------------------------------------- subcommands */

int cmd_info(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_demo_translate(int argc, char **argv);    /* attn demo translate (demo_translate.c) */
int cmd_train(int argc, char **argv);
int cmd_train_translate(int argc, char **argv);   /* attn train --task translate (nmt_train.c) */
int cmd_decode(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_corpus(int argc, char **argv);
int cmd_importance(int argc, char **argv);   /* cmd_importance.c */
int cmd_attribute(int argc, char **argv);    /* cmd_attribute.c */
int cmd_rollout(int argc, char **argv);      /* cmd_rollout.c */
int cmd_patch(int argc, char **argv);        /* cmd_patch.c */
int cmd_counterfactual(int argc, char **argv); /* cmd_counterfactual.c */
int cmd_align_eval(int argc, char **argv);   /* cmd_align_eval.c */
int cmd_heads(int argc, char **argv);        /* cmd_heads.c */
int cmd_snapshots(int argc, char **argv);    /* cmd_snapshots.c */
int cmd_prune(int argc, char **argv);        /* cmd_prune.c */

/* ---------------------------------------------------------------- translating, the ids (nmt.c) */

/* What nmt_translate_ids decoded, in the order of the input: the source ids
 * of sentence i (<s> pieces </s>, cut to the model's positions) and its
 * output ys (<s> first; through </s> unless the length limit came first). */
typedef struct nmt_batch {
    int n;
    int32_t **src, **ys;
    int *src_len, *ys_len;
    int truncated;   /* sentences cut to the model's positions */
} nmt_batch;

/* nmt_translate without detokenizing: encodes every sentence (messages name
 * line first_line + i when first_line > 0), sorts them by source length
 * (stably), decodes o->batch at a time (padded with AT_TOK_PAD_ID) and keeps
 * the ids. A translation is at most nmt_row_limit(t, o, |x|) ids, |x| its
 * own source ids, whatever batch it was decoded in. Prints errors and the
 * truncation warning; returns an exit code (res is empty on failure). */
int nmt_translate_ids(const char *who, nmt *t, const char *const *lines, const size_t *lens,
                      int n, const nmt_opts *o, int first_line, nmt_batch *res);
void nmt_batch_free(nmt_batch *b);
/* The text of output ys: the ids after <s> up to </s>, detokenized; *out
 * malloc'd. */
int nmt_detok(const char *who, nmt *t, const int32_t *ys, int len, char **out);
/* floor(a + b * src_ids), at most the model's positions, at least 2. */
int nmt_row_limit(const nmt *t, const nmt_opts *o, int src_ids);
/* Checks beam (1 .. AT_BEAM_MAX), alpha, a, b and batch; ATTN_USAGE with a
 * message when one is out of range. */
int nmt_check_opts(const char *who, const nmt_opts *o);
/* The offset of the first byte of text that is not valid UTF-8 (Python's
 * strict rules), or len. */
size_t nmt_utf8_invalid(const char *text, size_t len);

/* Sentences to translate, one per line of a file (or of the standard input,
 * path "-"): lines end at \n, a \r before it is dropped, a last line
 * without \n counts. Every line must be valid UTF-8 without NUL and not
 * blank (an error names the file, the line and the byte). v[i] points into
 * buf (NUL-terminated) or, from nmt_args_lines, into argv. */
typedef struct nmt_lines {
    char *buf;
    const char **v;
    size_t *len;
    int n;
    bool from_file;   /* messages name lines ("line 3") rather than texts */
} nmt_lines;
int nmt_read_lines(const char *who, const char *path, nmt_lines *out);
/* The same checks on n command-line texts (ATTN_USAGE when one fails). */
int nmt_args_lines(const char *who, char **texts, int n, nmt_lines *out);
void nmt_lines_free(nmt_lines *l);

/* Corpus BLEU and chrF2, sacreBLEU's defaults, of n translations against
 * one reference each (ref->v[0 .. n)). Prints the error; returns an exit code. */
int nmt_score(const char *who, char *const *hyp, const nmt_lines *ref, int n, double *bleu,
              double *chrf);

int cmd_translate(int argc, char **argv);   /* cmd_translate.c */

#endif
