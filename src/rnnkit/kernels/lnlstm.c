/* The layer-normalised LSTM's step, forward and backward, one call per step
 * each way (rnnkit/kernels/lnlstm.py: LNLSTMCell's torch ops are the
 * reference, _LNLSTMLayer the layer loop that calls these). Written by hand
 * for the reason lstm.c is: as torch ops the step is about seventy small
 * kernels and autograd nodes, each a pass over (B, 4H) or (B, H) floats.
 *
 * Layout: hp, xp, act, hhat, da (B, 4H) in torch's gate order [i | f | g | o];
 * rstd_h (B, 4); c, c_new, chat, tanh_y, h, dy, dc_new, dc_prev (B, H);
 * rstd_c (B). The products' side is hp, h_copy, dhp and dh_more (fp32 or
 * bf16: the flag bf16); xp, da and everything else are fp32. gain_h, bias_h
 * (4H) and gain_c, bias_c (H) are the norms' γ and β (a NULL β: none).
 *
 * LN(v) = γ (v - μ) / sqrt(σ² + ε) + β over one block's H entries (layernorm.h).
 *
 * Forward:  hhat_k = (hp_k - μ_k) rstd_k for each gate block k (rstd = 1/sqrt(σ² + ε))
 *           a = xp + γ_h hhat + β_h;  i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
 *           c' = f c + i g;  chat = (c' - μ) rstd_c;  y = γ_c chat + β_c;  h = o tanh(y)
 * Backward, from dh = dout + dh_more and dc' (the next step's):
 *           dy = dh o (1 - tanh²(y));  da_o = dh tanh(y) o(1-o)
 *           dc = dc' + rstd_c (γ_c dy - mean(γ_c dy) - chat mean(γ_c dy chat))
 *           da_i, da_f, da_g = dc g i(1-i), dc c f(1-f), dc i (1-g²);  dc_prev = dc f
 *           dxp = da;  dhp_k = rstd_k (γ_h da_k - mean(γ_h da_k) - hhat_k mean(γ_h da_k hhat_k))
 * The gains' and biases' gradients are sums over steps and rows of dy chat,
 * dy, da hhat and da; the layer loop forms them from dy and da at the end.
 */
#include "layernorm.h"

static inline __attribute__((always_inline)) void lnlstm_forward_row(
    const void *hp, const float *xp, const float *c, const float *gain_h, const float *bias_h,
    const float *gain_c, const float *bias_c, float *act, float *hhat, float *rstd_h, float *c_new,
    float *chat, float *rstd_c, float *tanh_y, float *h, void *h_copy, int64_t H, const int bf16) {
  normalise_blocks(hp, hhat, rstd_h, 4, H, bf16);
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    float a[4];
    for (int k = 0; k < 4; k++)
      a[k] = xp[k * H + j] + gain_h[k * H + j] * hhat[k * H + j] + (bias_h ? bias_h[k * H + j] : 0.0f);
    float i = sigmoid(a[0]), f = sigmoid(a[1]), g = tanh_by_sigmoid(a[2]), o = sigmoid(a[3]);
    act[j] = i; act[H + j] = f; act[2 * H + j] = g; act[3 * H + j] = o;
    c_new[j] = f * c[j] + i * g;
  }
  float mean, rstd = inverse_deviation(c_new, H, &mean);
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    float n = (c_new[j] - mean) * rstd, t = tanh_by_sigmoid(gain_c[j] * n + (bias_c ? bias_c[j] : 0.0f));
    float out = act[3 * H + j] * t;
    chat[j] = n; tanh_y[j] = t; h[j] = out;
    store(h_copy, j, out, bf16);
  }
  *rstd_c = rstd;
}

/* hp contiguous; xp, c and h with any row stride; the rest contiguous. */
void rnnkit_lnlstm_forward(const void *hp, const float *xp, int64_t ld_xp, const float *c, int64_t ld_c,
                           const float *gain_h, const float *bias_h, const float *gain_c, const float *bias_c,
                           float *act, float *hhat, float *rstd_h, float *c_new, float *chat, float *rstd_c,
                           float *tanh_y, float *h, int64_t ld_h, void *h_copy, int64_t B, int64_t H,
                           int64_t bf16) {
#pragma omp parallel for schedule(static) if (LN_ROWS_IN_PARALLEL(B, H))
  for (int64_t b = 0; b < B; b++) {
    const void *hp_b = row(hp, b, 4 * H, bf16);
    void *hc = (void *)row(h_copy, b, H, bf16);
    float *a = act + b * 4 * H, *hh = hhat + b * 4 * H, *cn = c_new + b * H, *ch = chat + b * H;
    float *ty = tanh_y + b * H, *hb = h + b * ld_h;
    if (bf16)
      lnlstm_forward_row(hp_b, xp + b * ld_xp, c + b * ld_c, gain_h, bias_h, gain_c, bias_c, a, hh, rstd_h + b * 4,
                         cn, ch, rstd_c + b, ty, hb, hc, H, 1);
    else
      lnlstm_forward_row(hp_b, xp + b * ld_xp, c + b * ld_c, gain_h, bias_h, gain_c, bias_c, a, hh, rstd_h + b * 4,
                         cn, ch, rstd_c + b, ty, hb, hc, H, 0);
  }
}

static inline __attribute__((always_inline)) void lnlstm_backward_row(
    const float *act, const float *hhat, const float *rstd_h, const float *c, const float *chat, float rstd_c,
    const float *tanh_y, const float *gain_h, const float *gain_c, const float *dh, const void *dh_more,
    const float *dc_new, float *dy, float *da, void *dhp, float *dc_prev, int64_t H, const int bf16) {
  const float *o = act + 3 * H;
  float sum = 0.0f, dot = 0.0f;
#pragma omp simd reduction(+ : sum, dot)
  for (int64_t j = 0; j < H; j++) {
    float dhj = dh[j] + load(dh_more, j, bf16), t = tanh_y[j];
    float d = dhj * o[j] * (1.0f - t * t);
    dy[j] = d;
    da[3 * H + j] = dhj * t * o[j] * (1.0f - o[j]);
    sum += d * gain_c[j];
    dot += d * gain_c[j] * chat[j];
  }
  float m1 = sum / (float)H, m2 = dot / (float)H;
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    float i = act[j], f = act[H + j], g = act[2 * H + j];
    float dc = dc_new[j] + rstd_c * (dy[j] * gain_c[j] - m1 - chat[j] * m2);
    da[j] = dc * g * i * (1.0f - i);
    da[H + j] = dc * c[j] * f * (1.0f - f);
    da[2 * H + j] = dc * i * (1.0f - g * g);
    dc_prev[j] = dc * f;
  }
  for (int64_t k = 0; k < 4; k++)
    norm_backward(da + k * H, gain_h + k * H, hhat + k * H, rstd_h[k], (void *)row(dhp, k, H, bf16), H, bf16);
}

/* dh, dc_new and da with any row stride; the rest contiguous. */
void rnnkit_lnlstm_backward(const float *act, const float *hhat, const float *rstd_h, const float *c, int64_t ld_c,
                            const float *chat, const float *rstd_c, const float *tanh_y, const float *gain_h,
                            const float *gain_c, const float *dh, int64_t ld_dh, const void *dh_more,
                            const float *dc_new, int64_t ld_dc_new, float *dy, float *da, int64_t ld_da,
                            void *dhp, float *dc_prev, int64_t B, int64_t H, int64_t bf16) {
#pragma omp parallel for schedule(static) if (LN_ROWS_IN_PARALLEL(B, H))
  for (int64_t b = 0; b < B; b++) {
    const float *a = act + b * 4 * H, *hh = hhat + b * 4 * H, *ch = chat + b * H, *ty = tanh_y + b * H;
    const void *more = row(dh_more, b, H, bf16);
    void *dhp_b = (void *)row(dhp, b, 4 * H, bf16);
    float *dy_b = dy + b * H, *da_b = da + b * ld_da, *dcp = dc_prev + b * H;
    const float *c_b = c + b * ld_c, *dh_b = dh + b * ld_dh, *dcn = dc_new + b * ld_dc_new;
    if (bf16)
      lnlstm_backward_row(a, hh, rstd_h + b * 4, c_b, ch, rstd_c[b], ty, gain_h, gain_c, dh_b, more, dcn, dy_b,
                          da_b, dhp_b, dcp, H, 1);
    else
      lnlstm_backward_row(a, hh, rstd_h + b * 4, c_b, ch, rstd_c[b], ty, gain_h, gain_c, dh_b, more, dcn, dy_b,
                          da_b, dhp_b, dcp, H, 0);
  }
}
