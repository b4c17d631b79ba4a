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

/** @} */

/* ---- section: rollout, flow, value norms ---- */

/* ---- section: head roles and patterns ---- */

#ifdef __cplusplus
}
#endif

#endif
