/* The GRU's element-wise step, forward and backward, one pass over memory each
 * (see lstm.c; rnnkit/kernels/gru.py: GRUGates is the reference, _GRULayer the
 * layer loop that calls these).
 */
#include "kernels.h"

/* ---- The GRU ----
 *
 * Layout: xp and hp (B, 3H) as [r | z | n], hp = h W_hh^T + b_hh; rz (B, 2H);
 * n, hn (= hp's n block), hmn (= h - n), h, dh_direct (B, H). The products'
 * side is hp, xp, h_copy, dxp, dhp and dh_more.
 *
 * Forward:  r = σ(x_r + h_r);  z = σ(x_z + h_z);  n = tanh(x_n + r h_n);  h' = n + z (h - n)
 * Backward, from dh' = dout + dh_direct + dh_more (the output's gradient, and
 * the next step's direct and product parts):
 *           da_n = dh' (1 - z)(1 - n²);  da_r = da_n h_n r(1-r);  da_z = dh' (h - n) z(1-z)
 *           dxp = [da_r | da_z | da_n];  dhp = [da_r | da_z | da_n r];  dh_direct = dh' z
 */

static inline __attribute__((always_inline)) void gru_forward_row(
    const void *hp, const void *xp, const float *h, float *rz, float *n, float *hn, float *hmn,
    float *out, void *h_copy, int64_t H, const int bf16) {
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    float r = sigmoid(load(xp, j, bf16) + load(hp, j, bf16));
    float z = sigmoid(load(xp, H + j, bf16) + load(hp, H + j, bf16));
    float h_n = load(hp, 2 * H + j, bf16);
    float nj = tanh_by_sigmoid(load(xp, 2 * H + j, bf16) + r * h_n);
    float h_new = nj + z * (h[j] - nj);
    rz[j] = r; rz[H + j] = z; n[j] = nj; hn[j] = h_n; hmn[j] = h[j] - nj;
    out[j] = h_new;
    store(h_copy, j, h_new, bf16);
  }
}

/* hp contiguous; xp, h and out with any row stride; the rest contiguous. */
void rnnkit_gru_forward(const void *hp, const void *xp, int64_t ld_xp, const float *h, int64_t ld_h,
                        float *rz, float *n, float *hn, float *hmn, float *out, int64_t ld_out,
                        void *h_copy, int64_t B, int64_t H, int64_t bf16) {
#pragma omp parallel for schedule(static) if (B * H >= 16384)
  for (int64_t b = 0; b < B; b++) {
    const void *hp_b = row(hp, b, 3 * H, bf16), *xp_b = row(xp, b, ld_xp, bf16);
    void *hc = (void *)row(h_copy, b, H, bf16);
    if (bf16)
      gru_forward_row(hp_b, xp_b, h + b * ld_h, rz + b * 2 * H, n + b * H, hn + b * H, hmn + b * H,
                      out + b * ld_out, hc, H, 1);
    else
      gru_forward_row(hp_b, xp_b, h + b * ld_h, rz + b * 2 * H, n + b * H, hn + b * H, hmn + b * H,
                      out + b * ld_out, hc, H, 0);
  }
}

static inline __attribute__((always_inline)) void gru_backward_row(
    const float *rz, const float *n, const float *hn, const float *hmn, const float *dout,
    const float *dh_direct, const void *dh_more, void *dxp, void *dhp, float *dh_direct_out,
    int64_t H, const int bf16) {
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    float r = rz[j], z = rz[H + j], nj = n[j];
    float dh = dout[j] + dh_direct[j] + load(dh_more, j, bf16);
    float da_n = dh * (1.0f - z) * (1.0f - nj * nj);
    float da_r = da_n * hn[j] * r * (1.0f - r);
    float da_z = dh * hmn[j] * z * (1.0f - z);
    store(dxp, j, da_r, bf16); store(dxp, H + j, da_z, bf16); store(dxp, 2 * H + j, da_n, bf16);
    store(dhp, j, da_r, bf16); store(dhp, H + j, da_z, bf16); store(dhp, 2 * H + j, da_n * r, bf16);
    dh_direct_out[j] = dh * z;
  }
}

/* dout and dxp with any row stride; the rest contiguous; dh_direct and
 * dh_direct_out are different buffers. */
void rnnkit_gru_backward(const float *rz, const float *n, const float *hn, const float *hmn,
                         const float *dout, int64_t ld_dout, const float *dh_direct, const void *dh_more,
                         void *dxp, int64_t ld_dxp, void *dhp, float *dh_direct_out,
                         int64_t B, int64_t H, int64_t bf16) {
#pragma omp parallel for schedule(static) if (B * H >= 16384)
  for (int64_t b = 0; b < B; b++) {
    const void *more = row(dh_more, b, H, bf16);
    void *dxp_b = (void *)row(dxp, b, ld_dxp, bf16), *dhp_b = (void *)row(dhp, b, 3 * H, bf16);
    if (bf16)
      gru_backward_row(rz + b * 2 * H, n + b * H, hn + b * H, hmn + b * H, dout + b * ld_dout,
                       dh_direct + b * H, more, dxp_b, dhp_b, dh_direct_out + b * H, H, 1);
    else
      gru_backward_row(rz + b * 2 * H, n + b * H, hn + b * H, hmn + b * H, dout + b * ld_dout,
                       dh_direct + b * H, more, dxp_b, dhp_b, dh_direct_out + b * H, H, 0);
  }
}
