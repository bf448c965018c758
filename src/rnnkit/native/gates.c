/* The LSTM's and GRU's element-wise steps, forward and backward, one pass over
 * memory each.
 *
 * Written by hand because it is the core of the explicit engine: as torch ops
 * the LSTM's step is about eight kernels forward and nine backward, each
 * reading and writing (B, 4H) or (B, H) floats (rnnkit/gates.py: LSTMGates and
 * GRUGates, which these match and which stay the reference). Compiled on first use by
 * rnnkit/native/__init__.py with -O3 -march=native: the loops vectorise, and
 * expf becomes glibc's vector exp. OpenMP splits the batch rows between
 * torch's own threads (the same libgomp, already loaded by torch).
 *
 * Tensors with an ld_* argument may have any row stride, in elements (rows of
 * a (B, T, .) tensor at one step); each row is contiguous, and so is every
 * other tensor. The products' side of a step (its inputs hp and xp, the copy
 * of h that the next product reads, the gate gradients and the gradient that
 * comes back from the product) is fp32 or bf16 (the flag bf16, rounded to
 * nearest even as torch rounds); the gate arithmetic and every other tensor
 * are fp32. The layer loops (rnnkit/layers/native_loop.py) pass xp, the
 * output's gradient and time-major copies for the products; a single step
 * (rnnkit/gates.py) passes its own h and gate gradients as the copies, zeros
 * as the gradient from the product, and no xp.
 */
#include <math.h>
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
/* glibc's vector expf (libmvec), which math.h declares only under -ffast-math.
 * -ffast-math itself is not used: a shared library built with it sets the
 * flush-to-zero mode of the whole process when it is loaded (crtfastmath). */
__attribute__((simd("notinbranch"))) float expf(float);
#endif

static inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* tanh(x) = 2σ(2x) - 1: one exp, like the sigmoids, and exact at the extremes */
static inline float tanh_by_sigmoid(float x) { return 2.0f * sigmoid(2.0f * x) - 1.0f; }

/* bf16 as torch and oneDNN store it: the high 16 bits of an fp32, rounded to
 * nearest even (NaN stays NaN). */
static inline float from_bf16(uint16_t v) {
  union { uint32_t u; float f; } x = { (uint32_t)v << 16 };
  return x.f;
}

static inline uint16_t to_bf16(float f) {
  union { float f; uint32_t u; } x = { f };
  uint32_t rounded = (x.u + 0x7FFFu + ((x.u >> 16) & 1u)) >> 16;
  return f != f ? (uint16_t)0x7FC0 : (uint16_t)rounded;
}

/* element j of a row of fp32 or bf16 */
static inline float load(const void *p, int64_t j, const int bf16) {
  return bf16 ? from_bf16(((const uint16_t *)p)[j]) : ((const float *)p)[j];
}

static inline void store(void *p, int64_t j, float v, const int bf16) {
  if (bf16) ((uint16_t *)p)[j] = to_bf16(v);
  else ((float *)p)[j] = v;
}

/* row b of a (., ld) matrix of fp32 or bf16 */
static inline const void *row(const void *p, int64_t b, int64_t ld, const int bf16) {
  return (const char *)p + b * ld * (bf16 ? 2 : 4);
}

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
