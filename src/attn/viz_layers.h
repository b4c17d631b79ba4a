/* attn viz --importance, --rollout, --relevance, --roles, --flow, --value-norm,
 * --gold (viz_layers.c):
 * analysis computed by the library on the input of attn viz and attached to
 * the explorer's settings (at_viz_options_add_headmap, _add_map, _set_links). */
#ifndef ATTN_VIZ_LAYERS_H
#define ATTN_VIZ_LAYERS_H

#include <stdbool.h>
#include <stdint.h>

#include "report.h"

typedef struct viz_layers_args {
    bool importance;     /* |dL/dxi| at the gates and ablations, as attn importance */
    bool rollout;        /* at_rollout of every kind computed, as attn rollout */
    bool relevance;      /* Chefer et al.'s R^qs and R^qq, one row per output token */
    int ig;              /* integrated gradients' steps (0: none), each head's sum */
    bool counterfactual; /* permuted and uniform attention per head, as attn counterfactual */
    const char *patch;   /* --patch F: the corrupted batch of attn patch, or NULL */
    bool roles;          /* each head's best built-in pattern, as attn heads */
    bool flow;           /* at_attention_flow of enc_self (and dec_self), as attn rollout --flow */
    bool value_norm;     /* at_value_norm of every layer, its heads' mean, as --value-norm */
    const char *gold;    /* --gold FILE, or NULL */
} viz_layers_args;

/* Whether an analysis needs the loss (a full target). */
bool viz_layers_need_loss(const viz_layers_args *a);

/* The analyses that run passes of their own (importance, relevance) on p->m
 * with p->src and the full target full (B, p->T + 1), before the pass that is
 * charted; they overwrite the model's views. Attaches them to o. Prints the
 * error; returns an exit code. */
int viz_layers_loss(const viz_layers_args *a, const pass *p, const int32_t *full, int32_t pad,
                    at_viz_options *o);

/* The analyses of the charted pass's views (rollout, roles) and the gold links
 * of --gold, after pass_exec. Attaches them to o. Prints the error; returns an
 * exit code. */
int viz_layers_view(const viz_layers_args *a, const pass *p, int row_arg, at_viz_options *o);

#endif
