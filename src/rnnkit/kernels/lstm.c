/* The LSTM's element-wise step, forward and backward, one pass over memory each.
 *
 * Written by hand because it is the core of the explicit engine: as torch ops
 * the step is about eight kernels forward and nine backward, each reading and
 * writing (B, 4H) or (B, H) floats (rnnkit/kernels/lstm.py: LSTMGates, which
 * these match and which stays the reference). The layer loop (_LSTMLayer in
 * lstm.py) passes xp, the output's gradient and time-major copies for the
 * products; a single step (LSTMGates) passes its own h and gate gradients as
 * the copies, zeros as the gradient from the product, and no xp.
 */
#include "kernels.h"

/* ---- The LSTM ----
 *
 * Layout: hp, xp, act and the gate gradients (B, 4H) in torch's gate order
 * [i | f | g | o]; c, c_new, h, tanh_c, dh, dc_new, dc_prev (B, H).
 *
 * Forward:  i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g);  a = hp + xp
 *           c' = f c + i g;  h = o tanh(c')
 * Backward, from dh = dout + dh_more and dc':
 *           dc = dc' + dh o (1 - tanh²(c'))
 *           da = [dc g i(1-i) | dc c f(1-f) | dc i (1-g²) | dh tanh(c') o(1-o)]
 *           dc_prev = dc f
 */

/* One batch row. has_xp and bf16 are constants at each call site below, so
 * the compiler emits a loop without the branches for each combination. */
static inline __attribute__((always_inline)) void lstm_forward_row(
    const void *hp, const void *xp, const float *c, float *act, float *c_new, float *h, void *h_copy,
    float *tanh_c, int64_t H, const int has_xp, const int bf16) {
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    float ai = load(hp, j, bf16), af = load(hp, H + j, bf16);
    float ag = load(hp, 2 * H + j, bf16), ao = load(hp, 3 * H + j, bf16);
    if (has_xp) {
      ai += load(xp, j, bf16); af += load(xp, H + j, bf16);
      ag += load(xp, 2 * H + j, bf16); ao += load(xp, 3 * H + j, bf16);
    }
    float i = sigmoid(ai), f = sigmoid(af), g = tanh_by_sigmoid(ag), o = sigmoid(ao);
    float cc = f * c[j] + i * g, t = tanh_by_sigmoid(cc);
    act[j] = i; act[H + j] = f; act[2 * H + j] = g; act[3 * H + j] = o;
    c_new[j] = cc; tanh_c[j] = t; h[j] = o * t;
    store(h_copy, j, o * t, bf16);
  }
}

/* hp contiguous; xp (NULL: none; required with bf16), c and h with any row stride. */
void rnnkit_lstm_forward(const void *hp, const void *xp, int64_t ld_xp, const float *c, int64_t ld_c,
                         float *act, float *c_new, float *h, int64_t ld_h, void *h_copy, float *tanh_c,
                         int64_t B, int64_t H, int64_t bf16) {
#pragma omp parallel for schedule(static) if (B * H >= 16384)
  for (int64_t b = 0; b < B; b++) {
    const void *hp_b = row(hp, b, 4 * H, bf16), *xp_b = xp ? row(xp, b, ld_xp, bf16) : 0;
    void *hc = (void *)row(h_copy, b, H, bf16);
    const float *c_b = c + b * ld_c;
    float *s = act + b * 4 * H, *cn = c_new + b * H, *hb = h + b * ld_h, *tc = tanh_c + b * H;
    if (bf16) lstm_forward_row(hp_b, xp_b, c_b, s, cn, hb, hc, tc, H, 1, 1);
    else if (xp) lstm_forward_row(hp_b, xp_b, c_b, s, cn, hb, hc, tc, H, 1, 0);
    else lstm_forward_row(hp_b, xp_b, c_b, s, cn, hb, hc, tc, H, 0, 0);
  }
}

static inline __attribute__((always_inline)) void lstm_backward_row(
    const float *act, const float *c, const float *tanh_c, const float *dh, const void *dh_more,
    const float *dc_new, void *dgates, void *dgates_copy, float *dc_prev, int64_t H, const int bf16) {
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    float i = act[j], f = act[H + j], g = act[2 * H + j], o = act[3 * H + j], t = tanh_c[j];
    float dhj = dh[j] + load(dh_more, j, bf16);
    float dc = dc_new[j] + dhj * o * (1.0f - t * t);
    float di = dc * g * i * (1.0f - i), df = dc * c[j] * f * (1.0f - f);
    float dg = dc * i * (1.0f - g * g), d_o = dhj * t * o * (1.0f - o);
    store(dgates, j, di, bf16); store(dgates, H + j, df, bf16);
    store(dgates, 2 * H + j, dg, bf16); store(dgates, 3 * H + j, d_o, bf16);
    store(dgates_copy, j, di, bf16); store(dgates_copy, H + j, df, bf16);
    store(dgates_copy, 2 * H + j, dg, bf16); store(dgates_copy, 3 * H + j, d_o, bf16);
    dc_prev[j] = dc * f;
  }
}

/* c, dh, dc_new and dgates with any row stride; dgates_copy contiguous. */
void rnnkit_lstm_backward(const float *act, const float *c, int64_t ld_c, const float *tanh_c,
                          const float *dh, int64_t ld_dh, const void *dh_more,
                          const float *dc_new, int64_t ld_dc_new, void *dgates, int64_t ld_dgates,
                          void *dgates_copy, float *dc_prev, int64_t B, int64_t H, int64_t bf16) {
#pragma omp parallel for schedule(static) if (B * H >= 16384)
  for (int64_t b = 0; b < B; b++) {
    const float *s = act + b * 4 * H, *c_b = c + b * ld_c, *tc = tanh_c + b * H;
    const float *dh_b = dh + b * ld_dh, *dcn = dc_new + b * ld_dc_new;
    const void *more = row(dh_more, b, H, bf16);
    void *d = (void *)row(dgates, b, ld_dgates, bf16), *dd = (void *)row(dgates_copy, b, 4 * H, bf16);
    float *dcp = dc_prev + b * H;
    if (bf16) lstm_backward_row(s, c_b, tc, dh_b, more, dcn, d, dd, dcp, H, 1);
    else lstm_backward_row(s, c_b, tc, dh_b, more, dcn, d, dd, dcp, H, 0);
  }
}
