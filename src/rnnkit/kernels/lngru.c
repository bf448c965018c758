/* The layer-normalised GRU's step, forward and backward, one call per step
 * each way (rnnkit/kernels/lngru.py: LNGRUCell's torch ops are the
 * reference, _LNGRULayer the layer loop that calls these; see lnlstm.c).
 *
 * Layout: hp, xp, hhat, dxp, dhn, dhp (B, 3H) as [r | z | n]; rstd_h (B, 3);
 * rz (B, 2H); n, hn (the normalised hp's n block), hmn (= h - n), h, out,
 * dh_direct (B, H). The products' side is hp, h_copy, dhp and dh_more (fp32
 * or bf16: the flag bf16); the rest is fp32. gain_h, bias_h (3H) are LN's γ_h
 * and β_h (a NULL β: none).
 *
 * Forward:  hhat_k = (hp_k - μ_k) rstd_k for each gate block k (layernorm.h)
 *           the GRU's step (gru.h) on LN(hp) = γ_h hhat + β_h = [h_r | h_z | h_n]
 * Backward: the GRU's, into dxp and dhn (the gradient reaching LN(hp)), then
 *           dhp_k = rstd_k (γ_h dhn_k - mean(γ_h dhn_k) - hhat_k mean(γ_h dhn_k hhat_k))
 * The layer loop forms dγ_h = sum dhn hhat and dβ_h = sum dhn over steps and rows.
 */
#include "gru.h"
#include "layernorm.h"

/* hp normalised (hhat, then γ_h hhat + β_h in fp32), then gru.h's step on it */
static inline __attribute__((always_inline)) void lngru_forward_row(
    const void *hp, const float *xp, const float *h, const float *gain_h, const float *bias_h, float *hhat,
    float *rstd_h, float *rz, float *n, float *hn, float *hmn, float *out, void *h_copy, int64_t H, const int bf16) {
  normalise_blocks(hp, hhat, rstd_h, 3, H, bf16);
  float normed[3 * H];  /* (3H): LN(hp) */
#pragma omp simd
  for (int64_t j = 0; j < 3 * H; j++) normed[j] = gain_h[j] * hhat[j] + (bias_h ? bias_h[j] : 0.0f);
  gru_forward_row(normed, xp, h, rz, n, hn, hmn, out, h_copy, H, 0, bf16);
}

/* hp contiguous; xp, h and out with any row stride; the rest contiguous. */
void rnnkit_lngru_forward(const void *hp, const float *xp, int64_t ld_xp, const float *h, int64_t ld_h,
                          const float *gain_h, const float *bias_h, float *hhat, float *rstd_h, float *rz, float *n,
                          float *hn, float *hmn, float *out, int64_t ld_out, void *h_copy, int64_t B, int64_t H,
                          int64_t bf16) {
#pragma omp parallel for schedule(static) if (LN_ROWS_IN_PARALLEL(B, H))
  for (int64_t b = 0; b < B; b++) {
    const void *hp_b = row(hp, b, 3 * H, bf16);
    void *hc = (void *)row(h_copy, b, H, bf16);
    if (bf16)
      lngru_forward_row(hp_b, xp + b * ld_xp, h + b * ld_h, gain_h, bias_h, hhat + b * 3 * H, rstd_h + b * 3,
                        rz + b * 2 * H, n + b * H, hn + b * H, hmn + b * H, out + b * ld_out, hc, H, 1);
    else
      lngru_forward_row(hp_b, xp + b * ld_xp, h + b * ld_h, gain_h, bias_h, hhat + b * 3 * H, rstd_h + b * 3,
                        rz + b * 2 * H, n + b * H, hn + b * H, hmn + b * H, out + b * ld_out, hc, H, 0);
  }
}

/* gru.h's backward into dxp and dhn (the normalised hp's gradient, fp32), then LN's */
static inline __attribute__((always_inline)) void lngru_backward_row(
    const float *rz, const float *n, const float *hn, const float *hmn, const float *hhat, const float *rstd_h,
    const float *gain_h, const float *dout, const float *dh_direct, const void *dh_more, float *dxp, float *dhn,
    void *dhp, float *dh_direct_out, int64_t H, const int bf16) {
  gru_backward_row(rz, n, hn, hmn, dout, dh_direct, dh_more, dxp, dhn, dh_direct_out, H, bf16, 0);
  for (int64_t k = 0; k < 3; k++)
    norm_backward(dhn + k * H, gain_h + k * H, hhat + k * H, rstd_h[k], (void *)row(dhp, k, H, bf16), H, bf16);
}

/* dout and dxp with any row stride; the rest contiguous; dh_direct and
 * dh_direct_out are different buffers. */
void rnnkit_lngru_backward(const float *rz, const float *n, const float *hn, const float *hmn, const float *hhat,
                           const float *rstd_h, const float *gain_h, const float *dout, int64_t ld_dout,
                           const float *dh_direct, const void *dh_more, float *dxp, int64_t ld_dxp, float *dhn,
                           void *dhp, float *dh_direct_out, int64_t B, int64_t H, int64_t bf16) {
#pragma omp parallel for schedule(static) if (LN_ROWS_IN_PARALLEL(B, H))
  for (int64_t b = 0; b < B; b++) {
    const void *more = row(dh_more, b, H, bf16);
    void *dhp_b = (void *)row(dhp, b, 3 * H, bf16);
    if (bf16)
      lngru_backward_row(rz + b * 2 * H, n + b * H, hn + b * H, hmn + b * H, hhat + b * 3 * H, rstd_h + b * 3,
                         gain_h, dout + b * ld_dout, dh_direct + b * H, more, dxp + b * ld_dxp, dhn + b * 3 * H,
                         dhp_b, dh_direct_out + b * H, H, 1);
    else
      lngru_backward_row(rz + b * 2 * H, n + b * H, hn + b * H, hmn + b * H, hhat + b * 3 * H, rstd_h + b * 3,
                         gain_h, dout + b * ld_dout, dh_direct + b * H, more, dxp + b * ld_dxp, dhn + b * 3 * H,
                         dhp_b, dh_direct_out + b * H, H, 0);
  }
}
