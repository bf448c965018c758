/* The GRU's element-wise step, forward and backward, one pass over memory each
 * (see lstm.c; rnnkit/kernels/gru.py: GRUGates is the reference, _GRULayer the
 * layer loop that calls these). A row's arithmetic is gru.h's, which lngru.c
 * shares.
 */
#include "gru.h"

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
                      out + b * ld_out, hc, H, 1, 1);
    else
      gru_forward_row(hp_b, xp_b, h + b * ld_h, rz + b * 2 * H, n + b * H, hn + b * H, hmn + b * H,
                      out + b * ld_out, hc, H, 0, 0);
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
                       dh_direct + b * H, more, dxp_b, dhp_b, dh_direct_out + b * H, H, 1, 1);
    else
      gru_backward_row(rz + b * 2 * H, n + b * H, hn + b * H, hmn + b * H, dout + b * ld_dout,
                       dh_direct + b * H, more, dxp_b, dhp_b, dh_direct_out + b * H, H, 0, 0);
  }
}
