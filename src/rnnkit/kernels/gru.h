/* The GRU's step for one batch row, forward and backward: gru.c runs it on
 * hp = h W_hh^T + b_hh, lngru.c on the layer-normalised hp.
 *
 * Layout: xp and hp (3H) as [r | z | n]; rz (2H); n, hn (= hp's n block),
 * hmn (= h - n), h, dh_direct (H). bf16_in: hp, xp and dh_more are bf16 (else
 * fp32); bf16_out: h_copy, dxp and dhp are (the products' side, see kernels.h).
 *
 * Forward:  r = σ(x_r + h_r);  z = σ(x_z + h_z);  n = tanh(x_n + r h_n);  h' = n + z (h - n)
 * Backward, from dh' = dout + dh_direct + dh_more (the output's gradient, and
 * the next step's direct and product parts):
 *           da_n = dh' (1 - z)(1 - n²);  da_r = da_n h_n r(1-r);  da_z = dh' (h - n) z(1-z)
 *           dxp = [da_r | da_z | da_n];  dhp = [da_r | da_z | da_n r];  dh_direct = dh' z
 */

#ifndef RNNKIT_GRU_H
#define RNNKIT_GRU_H
#include "kernels.h"

static inline __attribute__((always_inline)) void gru_forward_row(
    const void *hp, const void *xp, const float *h, float *rz, float *n, float *hn, float *hmn,
    float *out, void *h_copy, int64_t H, const int bf16_in, const int bf16_out) {
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    float r = sigmoid(load(xp, j, bf16_in) + load(hp, j, bf16_in));
    float z = sigmoid(load(xp, H + j, bf16_in) + load(hp, H + j, bf16_in));
    float h_n = load(hp, 2 * H + j, bf16_in);
    float nj = tanh_by_sigmoid(load(xp, 2 * H + j, bf16_in) + r * h_n);
    float h_new = nj + z * (h[j] - nj);
    rz[j] = r; rz[H + j] = z; n[j] = nj; hn[j] = h_n; hmn[j] = h[j] - nj;
    out[j] = h_new;
    store(h_copy, j, h_new, bf16_out);
  }
}

static inline __attribute__((always_inline)) void gru_backward_row(
    const float *rz, const float *n, const float *hn, const float *hmn, const float *dout,
    const float *dh_direct, const void *dh_more, void *dxp, void *dhp, float *dh_direct_out,
    int64_t H, const int bf16_in, const int bf16_out) {
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    float r = rz[j], z = rz[H + j], nj = n[j];
    float dh = dout[j] + dh_direct[j] + load(dh_more, j, bf16_in);
    float da_n = dh * (1.0f - z) * (1.0f - nj * nj);
    float da_r = da_n * hn[j] * r * (1.0f - r);
    float da_z = dh * hmn[j] * z * (1.0f - z);
    store(dxp, j, da_r, bf16_out); store(dxp, H + j, da_z, bf16_out); store(dxp, 2 * H + j, da_n, bf16_out);
    store(dhp, j, da_r, bf16_out); store(dhp, H + j, da_z, bf16_out); store(dhp, 2 * H + j, da_n * r, bf16_out);
    dh_direct_out[j] = dh * z;
  }
}

#endif
