/* A double-precision reference loss of the annotated Transformer (tests only). */
#ifndef AT_REFMODEL_H
#define AT_REFMODEL_H

#include <stdio.h>

/* The state_dict in double: names[i] and data[i] (row-major, as in the model). */
typedef struct ref_model {
    int n;
    const char **names;
    double **data;
    int d, heads, d_ff, layers, tgt_vocab;
} ref_model;

/* The reference's loss: Σ over rows of the label-smoothed KL divergence of
 * the generator's log-probabilities, divided by the number of non-pad labels
 * (SEMANTICS §10–§11). Eval mode: no dropout. */
double ref_loss(const ref_model *r, const int *src, const int *tgt_full, int B, int S, int Tf,
                int pad, double smoothing);

#endif
