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
 * Layout: gates and act (B, 4H) in torch's gate order [i | f | g | o];
 * c, c_new, h, tanh_c, dh, dc_new, dc_prev (B, H). Tensors with an ld_*
 * argument may have any row stride, in elements (rows of a (B, T, .) tensor
 * at one step); each row is contiguous, and so is every other tensor. The
 * optional arguments (NULL when absent) serve a whole layer's loop
 * (rnnkit/layers/native_loop.py): the input projection added to the gates,
 * the gradient from the output added to the one from the next step, and
 * second copies that keep h and the gate gradients time-major for the
 * products.
 *
 * Forward:  i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
 *           c' = f c + i g;  h = o tanh(c')
 * Backward: dc = dc' + dh o (1 - tanh²(c'))
 *           da = [dc g i(1-i) | dc c f(1-f) | dc i (1-g²) | dh tanh(c') o(1-o)]
 *           dc_prev = dc f
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

/* One batch row. has_addend and has_copy are constants at each call site below,
 * so the compiler emits a loop without the branches for each combination. */
static inline __attribute__((always_inline)) void forward_row(
    const float *a, const float *x, const float *c, float *act, float *c_new, float *h, float *h_copy,
    float *tanh_c, int64_t H, const int has_addend, const int has_copy) {
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    float ai = a[j], af = a[H + j], ag = a[2 * H + j], ao = a[3 * H + j];
    if (has_addend) { ai += x[j]; af += x[H + j]; ag += x[2 * H + j]; ao += x[3 * H + j]; }
    float i = sigmoid(ai), f = sigmoid(af), g = tanh_by_sigmoid(ag), o = sigmoid(ao);
    float cc = f * c[j] + i * g, t = tanh_by_sigmoid(cc);
    act[j] = i; act[H + j] = f; act[2 * H + j] = g; act[3 * H + j] = o;
    c_new[j] = cc; tanh_c[j] = t; h[j] = o * t;
    if (has_copy) h_copy[j] = o * t;
  }
}

/* gates (+ addend, where not NULL) -> act, c_new, tanh_c (contiguous), h (row
 * stride ld_h) and h_copy (contiguous, where not NULL). */
void rnnkit_lstm_forward(const float *gates, int64_t ld_gates, const float *addend, int64_t ld_addend,
                         const float *c, int64_t ld_c, float *act, float *c_new, float *h, int64_t ld_h,
                         float *h_copy, float *tanh_c, int64_t B, int64_t H) {
#pragma omp parallel for schedule(static) if (B * H >= 16384)
  for (int64_t b = 0; b < B; b++) {
    const float *a = gates + b * ld_gates, *x = addend ? addend + b * ld_addend : 0;
    float *hc = h_copy ? h_copy + b * H : 0;
    float *s = act + b * 4 * H, *cn = c_new + b * H, *hb = h + b * ld_h, *tc = tanh_c + b * H;
    const float *c_b = c + b * ld_c;
    if (x && hc) forward_row(a, x, c_b, s, cn, hb, hc, tc, H, 1, 1);
    else if (x) forward_row(a, x, c_b, s, cn, hb, hc, tc, H, 1, 0);
    else if (hc) forward_row(a, x, c_b, s, cn, hb, hc, tc, H, 0, 1);
    else forward_row(a, x, c_b, s, cn, hb, hc, tc, H, 0, 0);
  }
}

static inline __attribute__((always_inline)) void backward_row(
    const float *act, const float *c, const float *tanh_c, const float *dh, const float *dh_more,
    const float *dc_new, float *dgates, float *dgates_copy, float *dc_prev, int64_t H,
    const int has_more, const int has_copy) {
#pragma omp simd
  for (int64_t j = 0; j < H; j++) {
    float i = act[j], f = act[H + j], g = act[2 * H + j], o = act[3 * H + j], t = tanh_c[j];
    float dhj = has_more ? dh[j] + dh_more[j] : dh[j];
    float dc = dc_new[j] + dhj * o * (1.0f - t * t);
    float di = dc * g * i * (1.0f - i), df = dc * c[j] * f * (1.0f - f);
    float dg = dc * i * (1.0f - g * g), d_o = dhj * t * o * (1.0f - o);
    dgates[j] = di; dgates[H + j] = df; dgates[2 * H + j] = dg; dgates[3 * H + j] = d_o;
    if (has_copy) { dgates_copy[j] = di; dgates_copy[H + j] = df; dgates_copy[2 * H + j] = dg; dgates_copy[3 * H + j] = d_o; }
    dc_prev[j] = dc * f;
  }
}

/* (dh + dh_more, where not NULL), dc_new -> dgates (row stride ld_dgates),
 * dgates_copy (contiguous, where not NULL) and dc_prev (contiguous). */
void rnnkit_lstm_backward(const float *act, const float *c, int64_t ld_c, const float *tanh_c,
                          const float *dh, int64_t ld_dh, const float *dh_more,
                          const float *dc_new, int64_t ld_dc_new,
                          float *dgates, int64_t ld_dgates, float *dgates_copy, float *dc_prev,
                          int64_t B, int64_t H) {
#pragma omp parallel for schedule(static) if (B * H >= 16384)
  for (int64_t b = 0; b < B; b++) {
    const float *s = act + b * 4 * H, *c_b = c + b * ld_c, *tc = tanh_c + b * H;
    const float *dh_b = dh + b * ld_dh, *dm = dh_more ? dh_more + b * H : 0, *dcn = dc_new + b * ld_dc_new;
    float *d = dgates + b * ld_dgates, *dd = dgates_copy ? dgates_copy + b * 4 * H : 0, *dcp = dc_prev + b * H;
    if (dm && dd) backward_row(s, c_b, tc, dh_b, dm, dcn, d, dd, dcp, H, 1, 1);
    else if (dm) backward_row(s, c_b, tc, dh_b, dm, dcn, d, dd, dcp, H, 1, 0);
    else if (dd) backward_row(s, c_b, tc, dh_b, dm, dcn, d, dd, dcp, H, 0, 1);
    else backward_row(s, c_b, tc, dh_b, dm, dcn, d, dd, dcp, H, 0, 0);
  }
}

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

/* The layer loop's step under bf16 autocast: the products' side in bf16 (hp, xp,
 * h_copy for the next product, dgates and its copy for dh = dgates W and for
 * the weight gradient, dh_more from that product), the gate arithmetic, c and
 * h in fp32, as in the fp32 functions above. Every pointer is required. */
void rnnkit_lstm_forward_bf16(const uint16_t *hp, const uint16_t *xp, int64_t ld_xp,
                              const float *c, int64_t ld_c, float *act, float *c_new, float *h, int64_t ld_h,
                              uint16_t *h_copy, float *tanh_c, int64_t B, int64_t H) {
#pragma omp parallel for schedule(static) if (B * H >= 16384)
  for (int64_t b = 0; b < B; b++) {
    const uint16_t *a = hp + b * 4 * H, *x = xp + b * ld_xp;
    const float *c_b = c + b * ld_c;
    float *s = act + b * 4 * H, *cn = c_new + b * H, *hb = h + b * ld_h, *tc = tanh_c + b * H;
    uint16_t *hc = h_copy + b * H;
#pragma omp simd
    for (int64_t j = 0; j < H; j++) {
      float i = sigmoid(from_bf16(a[j]) + from_bf16(x[j]));
      float f = sigmoid(from_bf16(a[H + j]) + from_bf16(x[H + j]));
      float g = tanh_by_sigmoid(from_bf16(a[2 * H + j]) + from_bf16(x[2 * H + j]));
      float o = sigmoid(from_bf16(a[3 * H + j]) + from_bf16(x[3 * H + j]));
      float cc = f * c_b[j] + i * g, t = tanh_by_sigmoid(cc);
      s[j] = i; s[H + j] = f; s[2 * H + j] = g; s[3 * H + j] = o;
      cn[j] = cc; tc[j] = t; hb[j] = o * t; hc[j] = to_bf16(o * t);
    }
  }
}

void rnnkit_lstm_backward_bf16(const float *act, const float *c, int64_t ld_c, const float *tanh_c,
                               const float *dh, int64_t ld_dh, const uint16_t *dh_more,
                               const float *dc_new, int64_t ld_dc_new,
                               uint16_t *dgates, int64_t ld_dgates, uint16_t *dgates_copy, float *dc_prev,
                               int64_t B, int64_t H) {
#pragma omp parallel for schedule(static) if (B * H >= 16384)
  for (int64_t b = 0; b < B; b++) {
    const float *s = act + b * 4 * H, *c_b = c + b * ld_c, *tc = tanh_c + b * H;
    const float *dh_b = dh + b * ld_dh, *dcn = dc_new + b * ld_dc_new;
    const uint16_t *dm = dh_more + b * H;
    uint16_t *d = dgates + b * ld_dgates, *dd = dgates_copy + b * 4 * H;
    float *dcp = dc_prev + b * H;
#pragma omp simd
    for (int64_t j = 0; j < H; j++) {
      float i = s[j], f = s[H + j], g = s[2 * H + j], o = s[3 * H + j], t = tc[j];
      float dhj = dh_b[j] + from_bf16(dm[j]);
      float dc = dcn[j] + dhj * o * (1.0f - t * t);
      uint16_t di = to_bf16(dc * g * i * (1.0f - i)), df = to_bf16(dc * c_b[j] * f * (1.0f - f));
      uint16_t dg = to_bf16(dc * i * (1.0f - g * g)), d_o = to_bf16(dhj * t * o * (1.0f - o));
      d[j] = di; d[H + j] = df; d[2 * H + j] = dg; d[3 * H + j] = d_o;
      dd[j] = di; dd[H + j] = df; dd[2 * H + j] = dg; dd[3 * H + j] = d_o;
      dcp[j] = dc * f;
    }
  }
}

/* ---- The GRU ----
 *
 * Layout: xp and hp (B, 3H) as [r | z | n], hp = h W_hh^T + b_hh; rz (B, 2H);
 * n, hn (= hp's n block), hmn (= h - n), h, dh_direct (B, H). The products'
 * side (hp, xp, h_copy, dxp, dhp, dh_more) is fp32 or bf16 (the flag bf16);
 * everything else is fp32.
 *
 * Forward:  r = σ(x_r + h_r);  z = σ(x_z + h_z);  n = tanh(x_n + r h_n);  h' = n + z (h - n)
 * Backward, from dh' = dout + dh_direct + dh_more (the output's gradient, and
 * the next step's direct and product parts):
 *           da_n = dh' (1 - z)(1 - n²);  da_r = da_n h_n r(1-r);  da_z = dh' (h - n) z(1-z)
 *           dxp = [da_r | da_z | da_n];  dhp = [da_r | da_z | da_n r];  dh_direct = dh' z
 */

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
