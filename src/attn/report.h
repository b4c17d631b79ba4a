/* The attention report (report.c): every chart of a pass written into a
 * folder, and what attn viz and attn stats share to run that pass
 * (cmd_viz.c): vocabularies, token parsing, forward pass or greedy decoding. */
#ifndef ATTN_REPORT_H
#define ATTN_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "at_viz.h"
#include "attn.h"

/* ---------------------------------------------------------------- the report */

/* What a report charts besides the model's last pass. Labels win over ids;
 * a position with neither is shown as #position. */
typedef struct report_opts {
    const char *const *src_labels; /* tokens of the charted row's source, or NULL */
    int nsrc_labels;
    const char *const *tgt_labels; /* tokens of its decoder input, or NULL */
    int ntgt_labels;
    const int32_t *src_ids;        /* or NULL */
    int nsrc_ids;
    const int32_t *tgt_ids;        /* or NULL */
    int ntgt_ids;
    int row;                       /* 0-based batch row charted */
    int layer, head;               /* 1-based: heatmaps of this layer / head only; 0: all */
    const char *font;              /* a font family put first, or NULL */
    const char *caption;           /* a line under every title, or NULL */
    bool quiet;                    /* print nothing on success */
    const char *who;               /* the subcommand, for messages (default "viz") */
    double max_bytes;              /* refuse a report larger than this (0: no limit) */
    const char *max_flag;          /* the option that raises max_bytes, for messages */
    const at_viz_options *analysis; /* head grids, maps, gold links for the explorer
                                       (at_viz_options_add_*), or NULL */
} report_opts;

void report_defaults(report_opts *o);

/* About how many bytes report_write would write for a pass of S source and
 * T target positions (0: encoder only) on a model of that many layers and
 * heads: the cells of every chart times what a cell takes in SVG (a rectangle
 * with its tooltip, or a pixel of an image in large charts), in Vega-Lite (a
 * number) and in the explorer; within 20% of the truth when written. */
double report_estimate(const report_opts *o, int layers, int heads, int64_t S, int64_t T);
/* ATTN_OK, or (the estimate above o->max_bytes, when that is set) a message
 * saying how large the charts would be and how to raise the limit, and
 * ATTN_FAIL. */
int report_check_size(const report_opts *o, int layers, int heads, int64_t S, int64_t T);

/* Writes the charts of m's last pass (at_forward or at_greedy_decode) into
 * dir as one folder (outdir_begin .. outdir_commit: written beside or inside
 * dir, then moved into place; on any failure nothing is left), creating its
 * parents if missing:
 *   index.html                          the explorer (starts on cross-attention,
 *                                       last layer, head 1, when there is one)
 *   masks.svg, masks.vl.json            subsequent, padding and target masks
 *   stats.svg, stats.vl.json            entropy and max weight per layer and head
 * and for every kind computed (enc_self; dec_self and cross with a target):
 *   model-KIND.svg/.vl.json             layers x heads grid
 *   heads-KIND-lL.svg/.vl.json          every head of layer L
 *   layers-KIND-hH.svg/.vl.json         head H through every layer
 *   heatmap-KIND-lL-hH.svg/.vl.json     one head (only o->layer / o->head if set)
 * L and H count from 1. With o->max_bytes, a report report_check_size
 * refuses is not written, and one that grows past the limit while written is
 * given up (nothing left). Unless o->quiet, prints one line:
 * how many files were written and the page to open. Prints errors as
 * attn_error does; returns an exit code. *nfiles (may be NULL) receives the
 * number of files written. */
int report_write(at_model *m, const report_opts *o, const char *dir, int *nfiles);

/* ---------------------------------------------------------------- the pass */

/* A vocabulary file: one token per line (UTF-8; a trailing \r is dropped);
 * the token of id i is line i + 1. */
typedef struct vocab {
    char **tok;
    int n;
    char *buf;
} vocab;

/* Reads a vocabulary file (at most 1 GiB, no NUL byte, at least one line).
 * On failure v is zeroed. Prints the error; returns an exit code. */
int vocab_load(vocab *v, const char *path, const char *who);
void vocab_free(vocab *v);
/* The id of the len-byte token tok (its first line), or -1. */
int vocab_find(const vocab *v, const char *tok, size_t len);
/* --src/--tgt text as ids: with a vocabulary (v->n > 0), its tokens separated
 * by white space; without, ids 0 .. INT32_MAX separated by white space or
 * commas. *out (malloc'd) receives *n >= 1 ids. Prints the error; returns an
 * exit code. */
int parse_seq(const char *text, const vocab *v, const char *who, const char *opt,
              int32_t **out, int *n);
/* --start/--end: a whole number (any int32), else a token of tv. Prints the
 * error; returns an exit code. */
int parse_id(const char *s, const vocab *tv, const char *who, const char *opt, int32_t *out);
/* (vocab_load, parse_seq and parse_id are fuzzed by tests/fuzz_attn_*.c.) */

/* The input options attn viz and attn stats share. */
typedef struct pass_args {
    const char *model;
    int heads;
    const char *src, *tgt, *input;   /* --src "…" [--tgt "…"] | --input F */
    const char *src_text, *tgt_text; /* --src-text "…" [--tgt-text "…"]: sentences read by
                                        the model's own tokenizer (nmt.c) */
    const char *src_vocab, *tgt_vocab;
    bool decode;
    int pad, max_len;                /* max_len 0: the source length */
    const char *start, *end;         /* ids or target tokens; NULL: 1 and none */
    int row;                         /* 1-based */
} pass_args;

/* A pass that ran: the model with its views, and the ids it saw. */
typedef struct pass {
    at_model *m;
    vocab sv, tv;
    int32_t *src, *tgt;              /* (B, S) and the decoder input (B, T); tgt NULL: none */
    int B, S, T;
    bool decoded;
    char **src_lab, **tgt_lab;       /* labels of row `row`: S and T strings */
    int row;                         /* 0-based */
    nmt *text;                       /* with --src-text: the model's tokenizers, else NULL */
    char *translation;               /* with --src-text and no --tgt-text: the greedy
                                        translation, in words */
} pass;

/* Loads the model and vocabularies, reads the ids and runs at_forward (or
 * at_greedy_decode with a.decode). With --src-text the model's tokenizer
 * reads the sentence as <s> pieces </s> (the vocabularies are its pieces);
 * --tgt-text gives the decoder input <s> pieces, and without it the sentence
 * is translated greedily (nmt_translate_ids, beam 1) and the pass is teacher
 * forcing over that translation. who names the subcommand in messages.
 * Prints errors; returns an exit code (ATTN_USAGE for a bad command line).
 * It is pass_load (all but the pass: p->m, the vocabularies, p->src, p->tgt
 * unless decoding, B, S, T), then pass_exec (the pass, the labels); each
 * frees p when it fails. */
int pass_run(const pass_args *a, const char *who, pass *out);
int pass_load(const pass_args *a, const char *who, pass *p);
int pass_exec(const pass_args *a, const char *who, pass *p);

/* The options of a pass (--model first, then --heads, --src, --tgt, --input,
 * --decode, --max-len, --start, --end, --pad, --src-vocab, --tgt-vocab,
 * --src-text, --tgt-text), writing into a; fills opts and returns their
 * number, PASS_NOPTS. */
#define PASS_NOPTS 14
int pass_opts(pass_args *a, opt *opts);
void pass_free(pass *p);

/* Writes len bytes to path atomically (file_out: a regular file or nothing is
 * replaced, a symbolic link followed). Prints the error ("attn: WHO: ...");
 * returns an exit code. */
int report_write_file(const char *who, const char *path, const char *data, size_t len);

/* A [kind][layer][head] array of 3 x layers x heads values as the JSON members
 * "enc_self": [[per head] per layer], "dec_self": ..., "cross": ... (no braces). */
void report_json_kinds(const float *v, int layers, int heads);
/* The same as one layers x heads table per kind under a title, layers and
 * heads counted from 1 as in the charts. */
void report_kind_tables(const char *title, const float *v, int layers, int heads);

/* A value per head, [kind][layer][head] (NAN: none), as one SVG of a
 * layers x heads grid per kind (headmap.c). max 0: the largest magnitude. */
typedef struct headmap {
    const char *who;              /* the command, for messages and the SVG's desc */
    const double *v;
    int layers, heads;
    bool diverging;               /* around 0 (RdBu), else from 0 (YlGnBu) */
    double max;
    const char *title, *sub, *note;
    const char *what;             /* a cell's tooltip: what the value is */
    const char *legend;           /* above the colour bar */
    const char *missing;          /* a cell's tooltip where v is NAN */
    unsigned kinds;               /* bit k: draw kind k; 0: all three */
} headmap;
int headmap_write(const outdir *od, const headmap *h, const char *name);
/* n charts into DIR (written whole or not at all: outdir.c); an exit code. */
int headmap_save(const char *dir, const headmap *maps, const char *const *names, int n);
/* 3 x layers x heads floats as doubles (malloc'd; NULL when out of memory). */
double *headmap_values(const float *v, int layers, int heads);

/* A growable text buffer: tb_printf appends (on failure it sets oom and
 * appends nothing more); free p when done. */
typedef struct tbuf {
    char *p;
    size_t len, cap;
    bool oom;
} tbuf;
void tb_printf(tbuf *b, const char *fmt, ...) ATTN_PRINTF(2, 3);
/* Appends s escaped for XML text and attribute values (& < > "); control
 * characters are left out. */
void tb_xml(tbuf *b, const char *s);

/* ---------------------------------------------------------------- subcommands */

int cmd_viz(int argc, char **argv);
int cmd_stats(int argc, char **argv);

#endif
