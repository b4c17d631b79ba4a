/**
 * @file at_analysis.h
 * @brief libat attention analysis: gradients with respect to attention,
 *        rollout and flow, value-norm attention, head roles.
 *
 * The methods read a handle's last pass (its views) or run passes of their
 * own on it, as each function says; they are part of libat.so (include this
 * header beside at.h). Kinds, layers and heads count from 0, as in at.h.
 */
#ifndef AT_ANALYSIS_H
#define AT_ANALYSIS_H

#include "at.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- section: attention gradients (owner: the library's model layer) ---- */

/** @defgroup attribution Gradients with respect to attention
 *  ∂L/∂A for every attention tensor A, from one backward pass.
 *  @{ */

/**
 * @brief One forward and one backward pass in evaluation mode that keep
 *        ∂L/∂A for every attention tensor A (every kind, layer and head),
 *        then readable with at_get_attention_grad().
 *
 * With @p target_pos −1, L is the mean negative log-likelihood of tgt[:, 1:]
 * over the labels that are not @p pad (as at_gate_gradients()). With
 * 0 ≤ @p target_pos < tgt_len − 1, L is Σ_b log p(tgt[b][pos + 1] |
 * src[b], tgt[b][0 .. pos]), the log-probability of the target token at that
 * position, summed over the rows whose label there is not @p pad. ∂L/∂A is
 * the gradient that flows into the probabilities from downstream (the
 * softmax is upstream of A): A ⊙ ∂L/∂A is the relevance of Chefer et al.'s
 * rules. The weights may be shared (nothing is written to them); the gates'
 * gradients (at_gate_gradients()'s) are computed in the same pass.
 * @param m the model.
 * @param src source ids (batch, src_len).
 * @param tgt full target ids (batch, tgt_len), tgt_len ≥ 2.
 * @param batch B ≥ 1.
 * @param src_len S ≥ 1.
 * @param tgt_len T + 1 ≥ 2.
 * @param pad the pad id, inside the target vocabulary.
 * @param target_pos −1, or a position 0 .. T − 1.
 * @param[out] value L (may be NULL).
 * @return as at_gate_gradients(); ::AT_E_RANGE for @p target_pos outside
 *         [−1, T); ::AT_E_ARG when every label at @p target_pos is pad.
 */
AT_API at_status at_attention_gradients(at_model *m, const int32_t *src, const int32_t *tgt,
                                        int batch, int src_len, int tgt_len, int32_t pad,
                                        int target_pos, double *value);

/**
 * @brief ∂L/∂A of one layer's attention after at_attention_gradients():
 *        a (batch, head, query, key) view, shaped as at_get_attention().
 * @param m the model.
 * @param kind which attention.
 * @param layer 0-based layer.
 * @param[out] out the view; valid until the next pass on @p m.
 * @return ::AT_OK, ::AT_E_ARG, ::AT_E_STATE (no at_attention_gradients()
 *         since the last pass).
 */
AT_API at_status at_get_attention_grad(at_model *m, at_attn_kind kind, int layer,
                                       at_view *out);

/**
 * @brief Integrated gradients on one layer's attention (Hao et al. 2021):
 *        A ⊙ (1/m) Σ_{k=1..m} ∂F(k/m · A)/∂A, zero baseline, m steps.
 *
 * F is at_attention_gradients()'s L (the mean NLL with @p target_pos −1,
 * else the log-probability at that position); the layer's attention A (every
 * head) is that of the handle as it is, scaled by α = k/m through an
 * override while the other layers run as they do, so Σ attributions ≈
 * F(A) − F(0) (Riemann sum; the error shrinks as m grows). The handle's own
 * override of that layer, if any, is put back afterwards.
 * @param m the model.
 * @param src source ids (batch, src_len).
 * @param tgt full target ids (batch, tgt_len), tgt_len ≥ 2.
 * @param batch B ≥ 1.
 * @param src_len S ≥ 1.
 * @param tgt_len T + 1 ≥ 2.
 * @param pad the pad id.
 * @param target_pos −1, or a position 0 .. T − 1.
 * @param kind which attention.
 * @param layer 0-based layer.
 * @param steps m, 1 .. 10,000.
 * @param[out] out (batch, h, Lq, Lk) attributions.
 * @param[out] completeness |Σ out − (F(A) − F(0))| (may be NULL).
 * @return as at_attention_gradients(); ::AT_E_ARG for NULL @p out, kind,
 *         layer or steps out of range.
 */
AT_API at_status at_integrated_gradients(at_model *m, const int32_t *src, const int32_t *tgt,
                                         int batch, int src_len, int tgt_len, int32_t pad,
                                         int target_pos, at_attn_kind kind, int layer,
                                         int steps, float *out, double *completeness);

/**
 * @brief Chefer et al. 2021's relevance for encoder–decoder models (their
 *        §3.2, rules 6–11) for the target token at @p target_pos.
 *
 * With Ā = mean_heads((∇A ⊙ A)⁺) of each attention tensor (∇A from
 * at_attention_gradients() with that target): R^ss = I, then R^ss += Ā·R^ss
 * for each encoder layer; R^qq = I, R^qs = 0, then for each decoder layer
 * R^qq += Ā·R^qq and R^qs += Ā·R^qs with its self-attention, and
 * R^qs += (R̄^qq)ᵀ·Ā·R̄^ss with its cross-attention, R̄ = Ŝ + I where Ŝ is
 * R − I with its rows normalised to sum to one (rows of zeros stay zero).
 * Row @p target_pos of R^qs is that token's relevance over the source.
 * @param m the model.
 * @param src source ids (batch, src_len).
 * @param tgt full target ids (batch, tgt_len), tgt_len ≥ 2.
 * @param batch B ≥ 1.
 * @param src_len S ≥ 1.
 * @param tgt_len T + 1 ≥ 2.
 * @param pad the pad id.
 * @param target_pos a position 0 .. T − 1.
 * @param[out] rss (batch, S, S), or NULL.
 * @param[out] rqq (batch, T, T), or NULL.
 * @param[out] rqs (batch, T, S), or NULL.
 * @return as at_attention_gradients(); ::AT_E_RANGE for @p target_pos −1.
 */
AT_API at_status at_relevance_chefer(at_model *m, const int32_t *src, const int32_t *tgt,
                                     int batch, int src_len, int tgt_len, int32_t pad,
                                     int target_pos, float *rss, float *rqq, float *rqs);

/** @} */

/* ---- section: rollout, flow, value norms ---- */

/** @defgroup rollout Rollout, flow and value norms
 *  Attention rollout and attention flow (Abnar & Zuidema 2020) and
 *  value-norm attention (Kobayashi et al. 2020), computed from the last pass's
 *  views. docs/rollout.md gives the formulas and the decoder-side rule.
 *  @{ */

/** The longest sequence at_attention_flow() takes: it solves L² maximum flows per row
 *  on a graph of (N + 1)·L nodes. */
#define AT_FLOW_MAX_LEN 64

/**
 * @brief Attention rollout of the last pass, written to @p out (row-major,
 *        contiguous).
 *
 * With Ā_l the mean over heads of layer l's attention and
 * Ã_l = ½·Ā_l + ½·I, every row renormalised to sum 1 (padded positions
 * included: it is exactly this formula applied to the views):
 * - ::AT_ATTN_ENC_SELF: R_ss = Ã_N ⋯ Ã_1, (B, S, S).
 * - ::AT_ATTN_DEC_SELF: R_tt = Ã_N ⋯ Ã_1 of the decoder's self-attention,
 *   (B, T, T).
 * - ::AT_ATTN_CROSS: R_ts, (B, T, S), the share of each target position's
 *   state that comes from each source token. Following Chefer et al. 2021's
 *   encoder–decoder rules (self-attention updates both the target–target and
 *   the target–source map; cross-attention adds the attended source tokens'
 *   own encoder relevance R_ss) with rollout's ½ residual weights: start
 *   from P_tt = I, R_ts = 0; per decoder layer, self-attention
 *   P_tt ← Ã·P_tt, R_ts ← Ã·R_ts, then cross-attention (Ā_c the heads' mean)
 *   P_tt ← ½·P_tt, R_ts ← ½·R_ts + ½·Ā_c·R_ss. Every row of [P_tt | R_ts]
 *   sums to 1, so a row of R_ts sums to 1 − 2^−N (P_tt = 2^−N·R_tt).
 * @param m the model, after at_forward() (a target for the decoder kinds) or
 *        a decoding call.
 * @param kind which rollout.
 * @param[out] out B·Lq·Lk floats, the shape above.
 * @return ::AT_OK; ::AT_E_ARG (NULL, unknown kind); ::AT_E_STATE (the
 *         attention needed was not computed, or the capture policy dropped
 *         some of its heads); ::AT_E_NOMEM.
 */
AT_API at_status at_rollout(at_model *m, at_attn_kind kind, float *out);

/**
 * @brief Attention flow of the last pass: the maximum flow from each
 *        position of the top layer to each input position.
 *
 * The graph has a node per position and layer boundary (N + 1 rows of L
 * nodes); node i of layer l has an edge to node j of layer l − 1 of capacity
 * Ã_l[i][j] (Ã as at_rollout()). out[b][i][j] is the value of the maximum
 * flow from (N, i) to (0, j), in [0, 1] (not divided by the row's sum, as
 * Abnar & Zuidema's code does afterwards). Dinic's algorithm on the dense
 * layered graph: O(V²·E) per pair, V = (N + 1)·L, E = N·L², L² pairs per row.
 * @param m the model, after a pass (a target for ::AT_ATTN_DEC_SELF).
 * @param kind ::AT_ATTN_ENC_SELF (B, S, S) or ::AT_ATTN_DEC_SELF (B, T, T);
 *        cross-attention has no flow of its own here (::AT_E_ARG).
 * @param[out] out B·L·L floats.
 * @return ::AT_OK; ::AT_E_ARG; ::AT_E_RANGE (L > ::AT_FLOW_MAX_LEN);
 *         ::AT_E_STATE and ::AT_E_NOMEM as at_rollout().
 */
AT_API at_status at_attention_flow(at_model *m, at_attn_kind kind, float *out);

/**
 * @brief Value-norm attention of one layer (Kobayashi et al. 2020, §3):
 *        out[b][h][i][j] = ‖α_ij^h · f_h(x_j)‖₂, shaped as at_get_attention()
 *        (B, h, Lq, Lk), contiguous.
 *
 * f_h(x_j) = v_j^h · W_O^h: head h's value vector of key j (the value
 * projection's bias included) through its slice of the output projection,
 * the columns h·d_k .. (h + 1)·d_k of W_O, without W_O's bias (it is the same
 * for every token) and without head gates.
 * @param m the model, after a pass.
 * @param kind which attention.
 * @param layer 0-based layer.
 * @param[out] out B·h·Lq·Lk floats.
 * @return ::AT_OK; ::AT_E_ARG (NULL, unknown kind, layer outside
 *         [0, layers)); ::AT_E_STATE and ::AT_E_NOMEM as at_rollout().
 */
AT_API at_status at_value_norm(at_model *m, at_attn_kind kind, int layer, float *out);

/** @} */

/* ---- section: head roles and patterns ---- */

/** @defgroup patterns Head roles and a pattern library
 *  How much each head of the last pass looks like a template: the roles of
 *  Voita et al. 2019 (positional heads, heads on rare or boundary tokens,
 *  broad heads) and a monotonic alignment for cross-attention, plus
 *  templates of the caller's.
 *
 *  Every score is a mean over the valid query rows of the pass (rows of
 *  non-pad queries), and inside a row only the valid keys count (those the
 *  source mask, or for decoder self-attention the target mask, lets
 *  through), as at_attention_stats() does. For a template T, the score of
 *  a row i is Σ_j A_ij·T_ij / max_j T_ij over the valid keys j: the
 *  attention mass on a 0/1 mask, in [0, 1] for any template, 1 exactly when
 *  the head puts all its weight where the template is largest. A row where
 *  the template has no weight on a valid key (the previous token of the
 *  first one, say) is left out of the mean: a head is not judged where the
 *  pattern does not exist. A head with no row left scores 0.
 *  @{ */

/** Built-in templates; the values are fixed and new ones are added at the end. */
typedef enum at_pattern {
    AT_PAT_DIAGONAL = 0,  /**< query i on key i */
    AT_PAT_OFFSET = 1,    /**< query i on key i + k (k ≠ 0) */
    AT_PAT_PREV = 2,      /**< the previous token: AT_PAT_OFFSET with k = −1 */
    AT_PAT_NEXT = 3,      /**< the next token: AT_PAT_OFFSET with k = +1 */
    AT_PAT_FIRST = 4,     /**< the first valid key (the start symbol, position 0) */
    AT_PAT_EOS = 5,       /**< the last valid key of the row: the end-of-sentence
                               sink of an unpadded or right-padded row (for a given
                               eos id, pass a template to at_head_template_scores()) */
    AT_PAT_BROAD = 6,     /**< a broad head: the row's score is its overlap with
                               uniform attention over its n valid keys,
                               Σ_j min(A_ij, 1/n) = 1 − TV (on the scale of the
                               masses; rows with n < 2 are left out) */
    AT_PAT_MONOTONIC = 7  /**< cross-attention's monotonic alignment: the r-th valid
                               query row of n_q ↦ the valid key of rank
                               round(r·(n_k − 1)/(n_q − 1)) (0 when n_q = 1), n_k
                               the row's valid keys, with a band of ±k ranks
                               (k ≥ 0) around it */
} at_pattern;

/** The number of built-in templates this header knows. */
#define AT_PATTERN_COUNT 8

/**
 * @brief The name of a built-in template: "diagonal", "offset", "prev",
 *        "next", "first", "eos", "broad", "monotonic".
 * @param pattern an ::at_pattern.
 * @return a static string, or NULL for an unknown value.
 */
AT_API const char *at_pattern_name(int pattern);

/**
 * @brief The score of every head of one attention tensor of the last pass
 *        on a built-in template (the group's formula).
 * @param m the model, after a pass (forward, training step, decoding).
 * @param kind which attention; works on non-square cross-attention.
 * @param layer 0-based layer.
 * @param pattern an ::at_pattern.
 * @param k the offset of ::AT_PAT_OFFSET (≠ 0), the band half-width of
 *          ::AT_PAT_MONOTONIC (≥ 0); 0 for every other template.
 * @param[out] out one score per head (AT_P_HEADS values); NaN for a head
 *                 with a weight that is not finite in its valid region.
 * @return ::AT_OK, ::AT_E_ARG (NULL, unknown kind or pattern, layer out of
 *         range, a bad @p k, ::AT_PAT_MONOTONIC on self-attention: use
 *         ::AT_PAT_DIAGONAL there), ::AT_E_STATE (no such attention computed,
 *         or a head dropped by the capture policy), ::AT_E_NOMEM.
 */
AT_API at_status at_head_pattern_scores(at_model *m, at_attn_kind kind, int layer, int pattern,
                                        int k, double *out);

/**
 * @brief The score of every head on a template of the caller's (a mask or
 *        any non-negative weights), with the group's formula.
 * @param m the model, after a pass.
 * @param kind which attention.
 * @param layer 0-based layer.
 * @param tmpl (batch, q_len, k_len) float32 values, row-major, finite and ≥ 0.
 * @param batch 1 (one template for every batch row) or the pass's batch.
 * @param q_len the attention's query length (S for ::AT_ATTN_ENC_SELF, T
 *              otherwise).
 * @param k_len its key length (T for ::AT_ATTN_DEC_SELF, S otherwise).
 * @param[out] out one score per head.
 * @return ::AT_OK, ::AT_E_ARG (NULL, unknown kind, layer out of range),
 *         ::AT_E_SHAPE (@p batch, @p q_len or @p k_len not the attention's),
 *         ::AT_E_NUMERIC (a value negative or not finite: the message says
 *         where), ::AT_E_STATE, ::AT_E_NOMEM.
 */
AT_API at_status at_head_template_scores(at_model *m, at_attn_kind kind, int layer,
                                         const float *tmpl, int batch, int q_len, int k_len,
                                         double *out);

/** The number of built-in head roles (at_head_role()). */
#define AT_HEAD_ROLES 9

/**
 * @brief The library's built-in head roles: each a pattern with its k under a
 *        name — "diagonal", "prev", "next", "prev2" (::AT_PAT_OFFSET, k −2),
 *        "next2" (k +2), "first", "eos", "broad", "monotonic" (cross-attention
 *        only), in this order. `attn heads` scores every head on them (a
 *        head's role is the first of its highest scores), and snapshots record
 *        their scores (at_snapshots_take()).
 * @param index 0 .. ::AT_HEAD_ROLES − 1.
 * @param[out] name receives the name (static; may be NULL).
 * @param[out] pattern receives the ::at_pattern (may be NULL).
 * @param[out] k receives its k for at_head_pattern_scores() (may be NULL).
 * @return ::AT_OK, or ::AT_E_ARG for an index out of range (nothing written).
 */
AT_API at_status at_head_role(int index, const char **name, int *pattern, int *k);

/** @} */

/* ---- section: activation patching and counterfactual attention ---- */

/** @defgroup patching Activation patching and counterfactual attention
 *  What one head contributes, measured by changing it: its output taken from
 *  another input (activation patching), its attention permuted or made
 *  uniform (Jain & Wallace 2019). Both run passes of their own on the
 *  handle (docs/patching.md); results are [kind][layer][head], kinds in
 *  ::at_attn_kind order, 3 · AT_P_LAYERS · AT_P_HEADS values.
 *  @{ */

/**
 * @brief Activation patching: for every head, the change of a value of
 *        the clean run when that head's output is the corrupted run's.
 *
 * The value is measured on the clean target's labels tgt[:, 1:]: with
 * @p target_pos −1 the mean negative log-likelihood over the labels that
 * are not @p pad; with 0 ≤ @p target_pos < tgt_len − 1 Σ_b log p(label at
 * that position), over rows whose label there is not pad (as
 * at_attention_gradients() defines L). out[k][l][j] = value(clean run with
 * head j's head_out of block (k, l) — its P·V, before the gate and W_O —
 * replaced by the corrupted run's) − value(clean run). Passes: one clean,
 * one corrupted recording every block's head_out through a tap, then one
 * clean pass per head with a tap writing that head's columns: 3·N·h + 2
 * forward passes in evaluation mode. The handle's gates and overrides
 * apply to every pass; the handle must have no taps of its own (they
 * cannot be removed one by one), and has none afterwards either. With the
 * corrupted input equal to the clean one every value is exactly 0.
 * @param m the model.
 * @param clean_src clean source ids (batch, src_len).
 * @param clean_tgt clean full target ids (batch, tgt_len), tgt_len ≥ 2.
 * @param corrupt_src corrupted source ids, the same shape.
 * @param corrupt_tgt corrupted full target ids, the same shape (its
 *                    labels are not used: the value is the clean labels').
 * @param batch B ≥ 1.
 * @param src_len S ≥ 1.
 * @param tgt_len T + 1 ≥ 2.
 * @param pad the pad id.
 * @param target_pos −1, or a decoder position 0 .. T − 1.
 * @param[out] out 3 · N · h values, [kind][layer][head].
 * @param[out] clean_value the clean run's value (may be NULL).
 * @param[out] corrupt_value the corrupted run's, on the clean labels (may
 *                           be NULL).
 * @return ::AT_OK, ::AT_E_ARG (NULL, sizes, every label pad), ::AT_E_RANGE
 *         (@p target_pos outside [−1, T), ids), ::AT_E_STATE (the handle has
 *         taps), ::AT_E_NOMEM, or a status of at_forward().
 */
AT_API at_status at_activation_patch(at_model *m, const int32_t *clean_src,
                                     const int32_t *clean_tgt, const int32_t *corrupt_src,
                                     const int32_t *corrupt_tgt, int batch, int src_len,
                                     int tgt_len, int32_t pad, int target_pos, float *out,
                                     double *clean_value, double *corrupt_value);

/**
 * @brief Counterfactual attention (Jain & Wallace 2019): for every head,
 *        how far the next-token distribution moves when that head's
 *        attention is permuted, or uniform, over each row's valid keys.
 *
 * For each (kind, layer, head) the head's attention of the base pass
 * (the handle as it is) is replaced, through at_attention_override() of
 * that head alone, by (a) each row's weights on its valid (unmasked) keys
 * shuffled among those keys, and (b) 1/n on each of its n valid keys; a
 * row without valid keys keeps its weights. The output change is the total
 * variation ½ Σ_y |p(y) − p'(y)| of the next-token distribution, averaged
 * over the target positions whose input id is not @p pad. The shuffle is
 * Fisher–Yates (j = n − 1 down to 1 swaps valid key j with key
 * r = x mod (j + 1)), rows in (b, i) order, x the successive outputs of
 * splitmix64 (state += 0x9E3779B97F4A7C15, then its mix) started per head
 * at seed ^ (((kind · N + layer) · h + head) · 0xD1B54A32D192ED03), all
 * mod 2⁶⁴: deterministic and reproducible elsewhere (docs/patching.md).
 * Passes: 1 + 3·N (the base, again per block) + 2 · 3·N·h.
 * @param m the model; it must have no overrides of its own.
 * @param src source ids (batch, src_len).
 * @param tgt_in decoder input ids (batch, tgt_len), as at_forward().
 * @param batch B ≥ 1.
 * @param src_len S ≥ 1.
 * @param tgt_len T ≥ 1.
 * @param pad the pad id.
 * @param seed the permutations' seed.
 * @param[out] tv_permuted 3 · N · h values, [kind][layer][head].
 * @param[out] tv_uniform 3 · N · h values.
 * @return ::AT_OK, ::AT_E_ARG (NULL, sizes, every position pad),
 *         ::AT_E_STATE (the handle has overrides, or drops attention),
 *         ::AT_E_NOMEM, or a status of at_forward().
 */
AT_API at_status at_counterfactual_attention(at_model *m, const int32_t *src,
                                             const int32_t *tgt_in, int batch, int src_len,
                                             int tgt_len, int32_t pad, uint64_t seed,
                                             float *tv_permuted, float *tv_uniform);

/** @} */

/* ---- section: snapshots (heads forming during training) ---- */

/** @defgroup snapshots Heads forming during training
 *  The attention, the statistics and the head-role scores of fixed probe
 *  inputs, recorded every few training steps into one file (Voita et al.
 *  2019, §6, watch heads take their roles this way). A recorder keeps the
 *  probe and every snapshot in memory; at_snapshots_save() writes them all
 *  (docs/snapshots.md gives the tensors). A snapshot's pass runs on a
 *  handle of its own that shares the model's weights (at_model_share()):
 *  the model's last pass and its views, its training state (weights, Adam
 *  moments, step, dropout stream), taps and overrides are untouched, and
 *  training goes on bit for bit as without snapshots. The model's head
 *  gates are copied to that handle, so the probe sees the heads the model
 *  trains with; its taps and overrides do not apply.
 *  @{ */

/** A recorder of snapshots (opaque); free it with at_snapshots_free(). */
typedef struct at_snapshots at_snapshots;

/** The head-role templates of every snapshot, in the order of the
 *  `roles.{kind}.{i}` tensors' last axis (the library `attn heads` labels
 *  with): diagonal, prev, next, prev2 (offset −2), next2 (offset +2), first,
 *  eos, broad, monotonic (cross-attention only). */
#define AT_SNAPSHOT_ROLES AT_HEAD_ROLES

/**
 * @brief The name of a role column: "diagonal", "prev", "next", "prev2",
 *        "next2", "first", "eos", "broad", "monotonic".
 * @param index 0 .. ::AT_SNAPSHOT_ROLES − 1.
 * @return a static string, or NULL outside that range.
 */
AT_API const char *at_snapshot_role_name(int index);

/**
 * @brief A recorder for a probe on a model: the probe is checked against
 *        the model and copied; no pass is run yet.
 * @param m the model the snapshots will be taken of (its shapes are kept:
 *          at_snapshots_take() accepts only a model of the same layers and
 *          heads).
 * @param src source ids (batch, src_len), each below AT_P_SRC_VOCAB.
 * @param tgt decoder input ids (batch, tgt_len), each below AT_P_TGT_VOCAB;
 *            or NULL with @p tgt_len 0 to record the encoder only.
 * @param batch B ≥ 1.
 * @param src_len S, 1 .. AT_P_MAX_LEN.
 * @param tgt_len T, 0 .. AT_P_MAX_LEN (0 exactly when @p tgt is NULL).
 * @param pad the padding id of the probe's masks.
 * @param every the caller's interval K in steps, ≥ 1: kept in the file's
 *              metadata (`every`) and used by at_snapshots_due().
 * @param[out] out receives the recorder.
 * @return ::AT_OK; ::AT_E_ARG (NULL, @p tgt NULL with @p tgt_len > 0 or the
 *         other way round, a size < 1); ::AT_E_RANGE (an id outside its
 *         vocabulary — the message gives the position —, a length beyond
 *         AT_P_MAX_LEN, @p every < 1); ::AT_E_NOMEM. The message is
 *         at_errmsg(@p m) (at_errmsg(NULL) when @p m is NULL).
 */
AT_API at_status at_snapshots_create(at_model *m, const int32_t *src, const int32_t *tgt,
                                     int batch, int src_len, int tgt_len, int32_t pad,
                                     int every, at_snapshots **out);

/**
 * @brief Whether a snapshot is due at @p step: step mod every = 0.
 * @param s the recorder (NULL: never).
 * @param step a training step, ≥ 0.
 * @return 1 or 0.
 */
AT_API int at_snapshots_due(const at_snapshots *s, int64_t step);

/**
 * @brief One snapshot: a forward pass of the probe in evaluation mode (no
 *        dropout) on a handle sharing @p m's weights, keeping every
 *        attention tensor, at_attention_stats() of every head (top-3 mass)
 *        and its score on every role template (at_head_pattern_scores(),
 *        NaN where a template does not apply).
 * @param s the recorder.
 * @param m the model (the same shapes as at at_snapshots_create()); nothing
 *          of it that a caller can observe changes, but the message of a
 *          failure.
 * @param step the training step to file the snapshot under, ≥ 0 and
 *             greater than the last snapshot's (normally at_model_steps()).
 * @return ::AT_OK; ::AT_E_ARG (NULL); ::AT_E_SHAPE (@p m has other layers,
 *         heads or vocabularies than the recorder's model); ::AT_E_RANGE
 *         (@p step negative or not after the last one); ::AT_E_NOMEM; or a
 *         status of at_forward(). The message is at_errmsg(@p m).
 */
AT_API at_status at_snapshots_take(at_snapshots *s, at_model *m, int64_t step);

/**
 * @brief The number of snapshots taken.
 * @param s the recorder (NULL: 0).
 * @return the count.
 */
AT_API int at_snapshots_count(const at_snapshots *s);

/**
 * @brief A metadata entry of the file (the host's own, e.g. `probe`, the
 *        probe's file name); the library's keys (format, libat_version,
 *        every, stats, roles) cannot be set.
 * @param s the recorder.
 * @param key a UTF-8 key.
 * @param value a UTF-8 value; replaces an earlier one of the same key.
 * @return ::AT_OK, ::AT_E_ARG (NULL, a reserved key, more than 32 keys),
 *         ::AT_E_NOMEM. The message is at_errmsg(NULL).
 */
AT_API at_status at_snapshots_set_meta(at_snapshots *s, const char *key, const char *value);

/**
 * @brief Write every snapshot to a safetensors file, atomically (a
 *        temporary file renamed over @p path): `steps` (n) I64,
 *        `attn.{kind}.{i}` (n, B, h, Lq, Lk) F32, `stats.{kind}.{i}`
 *        (n, h, 7) F64, `roles.{kind}.{i}` (n, h, ::AT_SNAPSHOT_ROLES) F64,
 *        `src` (B, S) and `tgt` (B, T) I32 (kinds enc_self, dec_self, cross;
 *        only enc_self without a target). Call it after each snapshot to
 *        keep what a run that stops recorded.
 * @param s the recorder.
 * @param path where to write.
 * @return ::AT_OK; ::AT_E_ARG (NULL); ::AT_E_STATE (no snapshot yet);
 *         ::AT_E_IO (the message names the path); ::AT_E_NOMEM. The message
 *         is at_errmsg(NULL).
 */
AT_API at_status at_snapshots_save(const at_snapshots *s, const char *path);

/**
 * @brief Free a recorder.
 * @param s the recorder, or NULL.
 */
AT_API void at_snapshots_free(at_snapshots *s);

/** @} */

/* ---- section: pruning ---- */

/** @defgroup pruning Pruning curves
 *  Michel et al. 2019's experiment ("Are Sixteen Heads Really Better than
 *  One?", §4): attention heads removed (their gate ξ set to 0,
 *  at_gate_set()) one after another in some order, and a task metric of
 *  the host's measured as they go (docs/pruning.md).
 *
 *  A head is named by one index over every kind, layer and head, the
 *  layout of at_gate_gradients()'s gradients: head (kind, layer, j) is
 *  i = (kind · N + layer) · h + j, kinds in ::at_attn_kind order, N =
 *  AT_P_LAYERS, h = AT_P_HEADS, so 0 ≤ i < 3 · N · h (at_head_count()).
 *  An order is an array of distinct such indices.
 *  @{ */

/**
 * @brief A task metric of the host's, measured on @p m with its gates as
 *        they are when it is called.
 *
 * It may run any pass on @p m (decoding, at_forward(), ...): the views it
 * leaves are ended by the next step. Gates it changes are put back before
 * the next measurement.
 * @param m the model being pruned.
 * @param user the pointer given with the metric.
 * @param[out] value the metric (larger or smaller better, as the host
 *                   likes; it is stored as it is).
 * @return ::AT_OK, or any other status to stop: the pruning call then
 *         returns ::AT_E_CALLBACK and says which status in at_errmsg().
 */
typedef at_status (*at_metric_fn)(at_model *m, void *user, double *value);

/**
 * @brief The number of heads of every kind: 3 · AT_P_LAYERS · AT_P_HEADS.
 * @param m the model.
 * @param[out] out the count.
 * @return ::AT_OK, ::AT_E_ARG (NULL).
 */
AT_API at_status at_head_count(const at_model *m, int *out);

/**
 * @brief The order of every head by ascending score: the least important
 *        first (Michel et al. prune by |∂L/∂ξ| at ξ = 1, at_gate_gradients()).
 *
 * Equal scores keep the index order (kind, layer, head), so the order is
 * the same on every machine. The scores are taken as they are (pass
 * |∂L/∂ξ|, not ∂L/∂ξ, for Michel et al.'s order).
 * @param m the model (its head count).
 * @param scores 3 · N · h values by head index.
 * @param[out] order 3 · N · h head indices.
 * @return ::AT_OK, ::AT_E_ARG (NULL), ::AT_E_NUMERIC (a score is NaN: the
 *         message names the head).
 */
AT_API at_status at_prune_order(at_model *m, const float *scores, int32_t *order);

/**
 * @brief Shuffle an order in place: a random order of its heads,
 *        reproducible anywhere.
 *
 * Fisher–Yates: for i = @p count − 1 down to 1, entry i is swapped with
 * entry j = x mod (i + 1), x the successive outputs of splitmix64 (state
 * += 0x9E3779B97F4A7C15; z = state; z = (z ⊕ z ≫ 30) · 0xBF58476D1CE4E5B9;
 * z = (z ⊕ z ≫ 27) · 0x94D049BB133111EB; x = z ⊕ z ≫ 31, all mod 2⁶⁴)
 * started at state @p seed ⊕ 0x70726E65. `attn prune` shuffles its
 * importance order with seeds S, S + 1, ...
 * @param m the model (its head count).
 * @param[in,out] order @p count distinct head indices.
 * @param count 1 .. 3 · N · h.
 * @param seed the seed.
 * @return ::AT_OK, ::AT_E_ARG (NULL, @p count out of range, an index out
 *         of range or repeated).
 */
AT_API at_status at_prune_shuffle(at_model *m, int32_t *order, int count, uint64_t seed);

/**
 * @brief The metric with some heads removed: their gates set to 0, every
 *        other gate as the caller has it; then every gate is put back.
 * @param m the model.
 * @param heads @p count distinct head indices (NULL when @p count is 0).
 * @param count 0 .. 3 · N · h; 0 measures the model as it is.
 * @param metric the metric.
 * @param user passed to @p metric.
 * @param[out] value what @p metric gave.
 * @return ::AT_OK, ::AT_E_ARG (NULL, @p count out of range, an index out
 *         of range or repeated), ::AT_E_CALLBACK (the metric failed: the
 *         message gives its status and the message it left, if any).
 *         The gates are the caller's again whatever is returned.
 */
AT_API at_status at_prune_metric(at_model *m, const int32_t *heads, int count,
                                 at_metric_fn metric, void *user, double *value);

/**
 * @brief A pruning curve: the metric as the heads of an order are removed
 *        cumulatively, in @p steps equal steps.
 *
 * Point k = 0 .. @p steps is the metric with the first r_k heads of
 * @p order removed (at_prune_metric()), r_k = round(k · count / steps)
 * with halves rounded up, ⌊(2·k·count + steps) / (2·steps)⌋: with
 * @p steps 10 and @p count every head, 0 %, 10 %, …, 100 % of the heads.
 * Point 0 is the model as the caller has it. Each point starts from the
 * caller's gates, which are restored at the end, on failure too.
 * @param m the model.
 * @param order @p count distinct head indices, the first removed first.
 * @param count 1 .. 3 · N · h.
 * @param steps 1 .. 10,000.
 * @param metric the metric.
 * @param user passed to @p metric.
 * @param[out] curve @p steps + 1 values.
 * @return as at_prune_metric(); ::AT_E_ARG also for @p steps out of range.
 *         On ::AT_E_CALLBACK the points before the failing one are set.
 */
AT_API at_status at_prune_curve(at_model *m, const int32_t *order, int count, int steps,
                                at_metric_fn metric, void *user, double *curve);

/**
 * @brief A pruning curve with the importance re-estimated after each step:
 *        the heads removed at step k are the least important of those left,
 *        by |∂L/∂ξ| at the gates of step k − 1.
 *
 * Over every head (count 3 · N · h), with r_k as at_prune_curve(): before
 * point k (k ≥ 1, when r_k > r_{k−1}) one at_gate_gradients() pass on the
 * batch with the first r_{k−1} heads of @p order removed gives |∂L/∂ξ| of
 * every head; the r_k − r_{k−1} smallest among the heads not yet removed
 * (equal ones by index) are appended to @p order. So the first r_1 heads
 * are those of at_prune_order() at the caller's gates, and point k measures
 * the metric with the first r_k of @p order removed. Gradient passes:
 * at most @p steps. The caller's gates are restored at the end.
 * @param m the model.
 * @param src source ids (batch, src_len), for the gradients.
 * @param tgt full target ids (batch, tgt_len), tgt_len ≥ 2.
 * @param batch B ≥ 1.
 * @param src_len S ≥ 1.
 * @param tgt_len T + 1 ≥ 2.
 * @param pad the pad id, inside the target vocabulary.
 * @param steps 1 .. 10,000.
 * @param metric the metric.
 * @param user passed to @p metric.
 * @param[out] order 3 · N · h head indices, in the order they were removed.
 * @param[out] curve @p steps + 1 values.
 * @return as at_prune_curve(), and at_gate_gradients()'s statuses (sizes,
 *         ids, a capture policy that drops attention); ::AT_E_NUMERIC for a
 *         gradient that is NaN.
 */
AT_API at_status at_prune_curve_reestimated(at_model *m, const int32_t *src, const int32_t *tgt,
                                            int batch, int src_len, int tgt_len, int32_t pad,
                                            int steps, at_metric_fn metric, void *user,
                                            int32_t *order, double *curve);

/** The rows the copy metric decodes and the copies it expects; fixed
 *  (a later version adds a new struct rather than change this one). */
typedef struct at_copy_task {
    const int32_t *src;  /**< source ids (batch, src_len) */
    const int32_t *tgt;  /**< the expected target (batch, tgt_len): tgt[0][0] is the
                              start id of every row, tgt[:, 1:] the labels */
    int32_t batch;       /**< B ≥ 1 */
    int32_t src_len;     /**< S ≥ 1 */
    int32_t tgt_len;     /**< T + 1 ≥ 2 */
    int32_t pad;         /**< the pad id of src and of the labels */
} at_copy_task;

/**
 * @brief The copy task's metric: the share of rows that greedy decoding
 *        reproduces exactly.
 *
 * at_greedy_decode() of src (start id tgt[0][0], max_len T + 1, no end
 * id, @c pad as its pad); a row counts when every label tgt[b][t]
 * (t ≥ 1) that is not @c pad equals the decoded id at t, as
 * `attn train --task copy` counts its held-out copies. An ::at_metric_fn.
 * @param m the model.
 * @param user a const ::at_copy_task *.
 * @param[out] value the share, in [0, 1].
 * @return ::AT_OK, ::AT_E_ARG (NULL, sizes), ::AT_E_NOMEM, or
 *         at_greedy_decode()'s status.
 */
AT_API at_status at_metric_copy(at_model *m, void *user, double *value);

/** @} */

#ifdef __cplusplus
}
#endif

#endif
