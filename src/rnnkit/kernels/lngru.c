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
 *           [h_r | h_z | h_n] = γ_h hhat + β_h
 *           r = σ(x_r + h_r);  z = σ(x_z + h_z);  n = tanh(x_n + r h_n);  h' = n + z (h - n)
 * Backward, from dh' = dout + dh_direct + dh_more:
 *           da_n = dh' (1 - z)(1 - n²);  da_r = da_n h_n r(1-r);  da_z = dh' (h - n) z(1-z)
 *           dxp = [da_r | da_z | da_n];  dhn = [da_r | da_z | da_n r];  dh_direct = dh' z
 *           dhp_k = rstd_k (γ_h dhn_k - mean(γ_h dhn_k) - hhat_k mean(γ_h dhn_k hhat_k))
 * The layer loop forms dγ_h = sum dhn hhat and dβ_h = sum dhn over steps and rows.
 */
#include "layernorm.h"

static inline __attribute__((always_inline)) void lngru_forward_row(
    const void *hp, const float *xp, const float *h, const float *gain_h, const float *bias_h, float *hhat,
    float *rstd_h, float *rz, float *n, float *hn, float *hmn, float *out, void *h_copy, int64_t H, const int bf16) {
  normalise_blocks(hp, hhat, rstd_h, 3, H, bf16);
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    float hr = gain_h[j] * hhat[j] + (bias_h ? bias_h[j] : 0.0f);
    float hz = gain_h[H + j] * hhat[H + j] + (bias_h ? bias_h[H + j] : 0.0f);
    float h_n = gain_h[2 * H + j] * hhat[2 * H + j] + (bias_h ? bias_h[2 * H + j] : 0.0f);
    float r = sigmoid(xp[j] + hr), z = sigmoid(xp[H + j] + hz);
    float nj = tanh_by_sigmoid(xp[2 * H + j] + r * h_n);
    float h_new = nj + z * (h[j] - nj);
    rz[j] = r; rz[H + j] = z; n[j] = nj; hn[j] = h_n; hmn[j] = h[j] - nj;
    out[j] = h_new;
    store(h_copy, j, h_new, bf16);
  }
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

static inline __attribute__((always_inline)) void lngru_backward_row(
    const float *rz, const float *n, const float *hn, const float *hmn, const float *hhat, const float *rstd_h,
    const float *gain_h, const float *dout, const float *dh_direct, const void *dh_more, float *dxp, float *dhn,
    void *dhp, float *dh_direct_out, int64_t H, const int bf16) {
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    float r = rz[j], z = rz[H + j], nj = n[j];
    float dh = dout[j] + dh_direct[j] + load(dh_more, j, bf16);
    float da_n = dh * (1.0f - z) * (1.0f - nj * nj);
    float da_r = da_n * hn[j] * r * (1.0f - r);
    float da_z = dh * hmn[j] * z * (1.0f - z);
    dxp[j] = da_r; dxp[H + j] = da_z; dxp[2 * H + j] = da_n;
    dhn[j] = da_r; dhn[H + j] = da_z; dhn[2 * H + j] = da_n * r;
    dh_direct_out[j] = dh * z;
  }
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
