/* What the chart writers share (common.c): the data of one chart, read from
 * the model's views, the write sink, the colour scale, labels. The writers
 * themselves are declared in viz_internal.h, above this. */
#ifndef AT_VIZ_COMMON_H
#define AT_VIZ_COMMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "at_viz.h"
#include "model/internal.h"

#define VIZ_MAX_LABELS 1000000
#define VIZ_LABEL_SHOWN 16        /* characters of an axis label before the ellipsis */
#define VIZ_FONT_MAX 100
#define VIZ_CAPTION_MAX 1000
#define VIZ_NSTOPS 9

struct at_viz_options {
    int row, topk, cell, trim;
    char **labels[2];             /* [side][position], copies; entries may be NULL */
    int nlabels[2];
    int32_t *ids[2];
    int nids[2];
    char *font;                   /* the caller's family, or NULL */
    char *caption;                /* or NULL */
    struct viz_layer *an;         /* analysis layers (at_viz_options_add_*), in order */
    int nan;
    long map_values;              /* the values of the maps among them */
    long grid_values;             /* the values of the head grids */
    long label_bytes;             /* the bytes of the head grids' labels */
    int32_t *links;               /* (target, source) pairs, or NULL */
    int nlinks;
};

/* One analysis layer: a head grid (kind >= 0) or a token map (kind < 0). */
typedef struct viz_layer {
    char *title;
    int kind;                     /* an at_attn_kind, or -1 for a map */
    int rows, cols;               /* a grid: layers, heads; a map: its shape */
    int rside, cside;             /* a map: at_viz_side of its rows and columns */
    double *v;                    /* a grid: rows · cols values */
    float *f;                     /* a map: rows · cols values */
    char **labels;                /* a grid: rows · cols strings (entries may be NULL), or NULL */
    int diverging;
} viz_layer;

/* The labels of one sequence, one per position, valid UTF-8 without control
 * characters: `full` for tooltips, `shown` for axes (shortened). */
typedef struct viz_seq {
    int n;
    char **full, **shown;
    double *em;                   /* width of `shown` in em, estimated */
    double max_em;
} viz_seq;

/* One (kind, layer, head) matrix of the charted batch row. */
typedef struct viz_panel {
    const float *p;               /* element (i, j) at p[i·rs + j·cs] */
    int64_t rs, cs;
    int nq, nk;
    float max;
    at_attn_kind kind;
    int layer, head;
} viz_panel;

/* Everything a chart needs to know about the pass. */
typedef struct viz_ctx {
    at_model *m;
    const at_viz_options *o;
    at_viz_chart chart;
    at_attn_kind kind;
    int layer, head;
    int layers, heads, d_model, B, row, topk, cell;
    int S_all, T_all;             /* lengths of the pass */
    int S, T;                     /* lengths charted (trailing padding left out) */
    bool have_dec;
    viz_seq src, tgt;
    char font[512];               /* the font stack, CSS syntax, no double quotes */
    const char *caption;          /* "" if none; valid UTF-8, no control characters */
    char *caption_buf;
} viz_ctx;

/* ---- a write sink that remembers errors ---- */
typedef struct vout {
    FILE *f;
    bool err;
} vout;

void vo_puts(vout *o, const char *s);
void vo_putc(vout *o, char c);
void vo_printf(vout *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s (valid UTF-8) escaped for XML text and attribute values */
void vo_xml(vout *o, const char *s);
/* s as a JSON string literal, quotes included; '<', '>' and '&' as \u escapes so
 * that the text is also safe inside an HTML script element */
void vo_json(vout *o, const char *s);
/* a weight as a short decimal: at most 4 significant digits after the point */
void vo_num(vout *o, double v, int decimals);

/* base64 to a sink, in pieces */
typedef struct vb64 {
    vout *o;
    unsigned char carry[3];
    int ncarry;
    char buf[4096];
    size_t len;
} vb64;
void vb64_put(vb64 *b, const void *data, size_t len);
void vb64_end(vb64 *b);

/* ---- the colour scale ---- */
extern const char *const viz_stops[VIZ_NSTOPS];   /* "#rrggbb", light to dark */
#define VIZ_MASK_ON "#225ea8"
#define VIZ_MASK_OFF "#eeeeee"
#define VIZ_INK "#222222"
#define VIZ_MUTED "#666666"
/* t in [0, 1] → rgb, interpolated in RGB between the stops */
void viz_color(double t, unsigned char rgb[3]);
/* writes "#rrggbb" (8 bytes with the NUL) */
void viz_color_hex(double t, char hex[8]);
bool viz_color_dark(double t);    /* text on it should be white */

/* ---- data ---- */
const char *viz_kind_title(at_attn_kind kind);     /* "Encoder self-attention" */
const char *viz_kind_short(at_attn_kind kind);     /* "encoder self" */
const viz_seq *viz_rows(const viz_ctx *c, at_attn_kind kind);
const viz_seq *viz_cols(const viz_ctx *c, at_attn_kind kind);
const char *viz_rows_name(at_attn_kind kind);      /* "target" / "source" */
const char *viz_cols_name(at_attn_kind kind);

/* Shared by the chart writers: a cell size for n rows within budget pixels,
 * clamped to [lo, hi] unless the caller fixed it; the "rows … columns …" note
 * under a heatmap's title; a JSON array of a sequence's full token labels. */
int viz_auto_cell(const viz_ctx *c, int n, int budget, int lo, int hi);
void viz_axes_note(const viz_ctx *c, at_attn_kind kind, char *buf, size_t len);
void viz_json_tokens(vout *o, const viz_seq *q);
bool viz_kind_ready(const viz_ctx *c, at_attn_kind kind);
at_status viz_panel_get(viz_ctx *c, at_attn_kind kind, int layer, int head, viz_panel *out);
static inline float viz_w(const viz_panel *p, int i, int j)
{
    return p->p[(int64_t)i * p->rs + (int64_t)j * p->cs];
}
/* (layers·heads·AT_STAT_COUNT) statistics of one kind, malloc'd */
at_status viz_stats(viz_ctx *c, at_attn_kind kind, double **out);
/* (layers·heads·heads) JS divergences of one kind, malloc'd */
at_status viz_js(viz_ctx *c, at_attn_kind kind, double **out);
/* mask views of the pass */
at_status viz_masks(viz_ctx *c, at_view *src_mask, at_view *tgt_mask, bool *have_tgt);

/* text width estimate of UTF-8 s, in em */
double viz_text_em(const char *s);
/* "layer 2 · head 3"-style titles */
void viz_title(const viz_ctx *c, char *buf, size_t len);

/* A clean copy of s (malloc'd): invalid bytes become U+FFFD, control
 * characters a space; with max_chars > 0, cut to that many characters plus an
 * ellipsis. */
char *viz_clean_label(const char *s, int max_chars);
/* the labels of one side (the caller's, or the ids, or positions) for n
 * positions; viz_seq_free releases them */
at_status viz_seq_make(viz_seq *q, const at_viz_options *o, int side, int n);
void viz_seq_free(viz_seq *q);

#endif
