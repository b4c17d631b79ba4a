/* The attn program's private declarations: exit codes, messages, option
 * parsing (args.c), file helpers (io.c) and the subcommands (cmd_*.c). */
#ifndef ATTN_H
#define ATTN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "at.h"
#include "st.h"

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
    OPT_NUM   /* --name X, a finite number in [lo, hi]; dest is double * */
} opt_kind;

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
 * twice, an unknown option, a missing or malformed value and a surplus
 * positional are errors. Returns ARGS_OK, ARGS_HELP (--help seen; nothing
 * printed) or ARGS_ERROR (the one-line message is printed). */
int args_parse(int argc, char **argv, opt *opts, int nopts, char **pos, int maxpos,
               int *npos);

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

/* Writes the results of the last at_forward on m to path, atomically, under
 * the golden names: src_mask, memory, attn.enc_self.{i}, and with a target
 * tgt_mask, decoder_out, logprobs, attn.dec_self.{i}, attn.cross.{i}, all F32
 * from the views themselves (no copy when contiguous). meta_kv holds nmeta
 * key/value pairs. Prints the error; returns an exit code. */
int io_write_outputs(at_model *m, const char *path, const char *const *meta_kv, int nmeta);

/* The model's hyperparameter as an int (0 if it cannot be read). */
int io_model_int(const at_model *m, at_param key);

/* ---------------------------------------------------------------- subcommands */

int cmd_info(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_demo(int argc, char **argv);

#endif
