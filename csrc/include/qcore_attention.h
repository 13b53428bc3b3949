/*
 * qcore float32 attention in one call: the scores softmax(scale * (Q K) + mask) for every
 * (batch, head) of a transformer's self-attention (qc_attention_scores_f32), or the scores
 * and their product with V (qc_attention_f32). Included by qcore.h.
 *
 * Q is batch x heads x rows x depth, K is batch x heads x depth x cols (K already
 * transposed, as exported graphs hold it), the mask is broadcast to batch x heads x rows x
 * cols; each is given by its first element and four element strides (b, h, row, col), so
 * the transposed and broadcast views of a graph are read in place (a stride may be 0).
 * For each (b, h, i, j), in float32, every operation rounded (no FMA, no reassociation):
 *
 *   a = +0;  a = a + Q[b,h,i,d] * K[b,h,d,j]  for d = 0, 1, ..., depth - 1 in turn;
 *   v = a * scale            (when scale is not NULL);
 *   v = v + mask[b,h,i,j]    (when mask is not NULL);
 *
 * then Y[b,h,i,:] = softmax of the row v[0..cols) exactly as qc_softmax_f32 defines it.
 * Y is batch x heads x rows x cols float32, contiguous, and must not overlap Q, K or the
 * mask. Results are bit-identical on every ISA and equal to
 * qcore.reference.attention.attention_scores.
 *
 * Keys masked at the end (padding: a mask the same for every row, at most -2^127 or -inf
 * there) are not multiplied when q and those keys are finite and small enough that the
 * scaled product cannot move the sum off the mask value (|a * scale| < 2^100): the score
 * is then the mask value exactly as the formula gives it, so the results do not change.
 *
 * live_keys (may be NULL) receives a count L <= cols such that every probability of
 * every (b, h, i) in columns L .. cols - 1 is exactly +0 (L = cols when that is not
 * shown): the padded keys whose mask values are all equal and whose probabilities came
 * out +0 in every row. A product with the probabilities may then stop at L (0 * v adds
 * nothing for finite v). With a dimension 0 it receives cols.
 *
 * Statuses: batch, heads, rows or cols 0: nothing to do (QC_OK; depth 0 is work: every
 * score is +0, and q and k may then be NULL); NULL pointers with work to do:
 * QC_E_NULL_POINTER; a non-finite scale: QC_E_INVALID_ARGUMENT; sizes overflowing size_t:
 * QC_E_OVERFLOW; scratch allocation failure: QC_E_NO_MEMORY.
 *
 * qc_attention_f32 goes on to the context: with P the probabilities above (never stored
 * whole: a block of rows at a time, in scratch) and V batch x heads x cols x vdepth, for
 * each (b, h, i, e), in float32, every operation rounded (no FMA, no reassociation):
 *
 *   c = +0;  c = c + P[b,h,i,j] * V[b,h,j,e]  for j = 0, 1, ..., cols - 1 in turn;
 *   Y[b,h,i,e] = c.
 *
 * Y is batch x heads x rows x vdepth, given by its first element and four element strides
 * (so a context stored as batch x rows x heads x vdepth, the layout the heads are joined
 * in, is written in place); its elements must be distinct and must not overlap Q, K, V or
 * the mask. Results are bit-identical on every ISA and equal to
 * qcore.reference.attention.attention. A term whose P is +0 and whose V is finite adds
 * nothing (c is never -0), so padded keys whose probabilities are +0 are skipped when
 * their values are finite. Statuses as qc_attention_scores_f32, except that cols = 0 is
 * work: Y is written +0 (a sum of no terms), so y and y_strides must not be NULL then;
 * batch, heads, rows or vdepth 0 is nothing to do (QC_OK).
 */
#ifndef QCORE_ATTENTION_H
#define QCORE_ATTENTION_H

/* cdef: begin */
qc_status qc_attention_scores_f32(size_t batch, size_t heads, size_t rows, size_t depth, size_t cols,
                                  const float *q, const int64_t *q_strides, const float *k,
                                  const int64_t *k_strides, const float *scale, const float *mask,
                                  const int64_t *mask_strides, float *y, size_t *live_keys,
                                  const qc_options *options);
qc_status qc_attention_f32(size_t batch, size_t heads, size_t rows, size_t depth, size_t cols, size_t vdepth,
                           const float *q, const int64_t *q_strides, const float *k, const int64_t *k_strides,
                           const float *scale, const float *mask, const int64_t *mask_strides, const float *v,
                           const int64_t *v_strides, float *y, const int64_t *y_strides, const qc_options *options);
/* cdef: end */

#endif /* QCORE_ATTENTION_H */
