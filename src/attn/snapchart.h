/* attn snapshots: a snapshot file (src/analysis/snapshot.c's format) read
 * into memory, each head's role over time, and the two charts of it
 * (snapchart.c): small multiples (SVG) and a timeline (self-contained HTML). */
#ifndef ATTN_SNAPCHART_H
#define ATTN_SNAPCHART_H

#include <stdbool.h>
#include <stdint.h>

#include "at_analysis.h"
#include "report.h"

enum { SNAP_MAX_LAYERS = 64 };

/* One attention block (kind, layer) of every snapshot. */
typedef struct snap_block {
    float *attn;          /* (n, B, h, Lq, Lk) */
    double *stats;        /* (n, h, AT_STAT_COUNT) */
    double *roles;        /* (n, h, AT_SNAPSHOT_ROLES), or NULL in a file without them */
    int lq, lk;
    /* per head, from roles: the final role (-1: none), the index of the
     * first snapshot from which the best role is the final one for good */
    int *role, *since;
} snap_block;

typedef struct snap_data {
    const char *path;
    int n, B, S, T, kinds, layers, heads;
    int64_t *steps;
    int64_t *src, *tgt;   /* the probe, (B, S) and (B, T) */
    bool has_roles;
    snap_block blk[3][SNAP_MAX_LAYERS];
} snap_data;

/* The best role of head h of block b at snapshot i (the first of equal
 * scores; NaN never wins), or -1. */
int snap_best(const snap_data *d, const snap_block *b, int i, int h);
/* A kind's name: enc_self, dec_self, cross. */
const char *snap_kind(int k);

/* The charts into a text buffer (b->oom on failure). */
void snapchart_svg(tbuf *b, const snap_data *d);
void snapchart_html(tbuf *b, const snap_data *d);

#endif
