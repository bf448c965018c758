/* The LSTM's element-wise step, forward and backward, one pass over memory each.
 *
 * Written by hand because it is the core of the explicit engine: as torch ops
 * the step is about eight kernels forward and nine backward, each reading and
 * writing (B, 4H) or (B, H) floats (rnnkit/gates.py, LSTMGates, which this
 * matches and which stays the reference). Compiled on first use by
 * rnnkit/native/__init__.py with -O3 -march=native: the loops vectorise, and
 * expf becomes glibc's vector exp. OpenMP splits the batch rows between
 * torch's own threads (the same libgomp, already loaded by torch).
 *
 * Layout: gates and act (B, 4H) in torch's gate order [i | f | g | o];
 * c, c_new, h, tanh_c, dh, dc_new, dc_prev (B, H). Inputs may have any row
 * stride (ld_*), in elements; each row is contiguous. Outputs are contiguous.
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

void rnnkit_lstm_forward(const float *gates, int64_t ld_gates, const float *c, int64_t ld_c,
                         float *act, float *c_new, float *h, float *tanh_c, int64_t B, int64_t H) {
#pragma omp parallel for schedule(static) if (B * H >= 16384)
  for (int64_t b = 0; b < B; b++) {
    const float *a = gates + b * ld_gates, *c_b = c + b * ld_c;
    float *s = act + b * 4 * H, *cn = c_new + b * H, *hb = h + b * H, *tc = tanh_c + b * H;
#pragma omp simd
    for (int64_t j = 0; j < H; j++) {
      float i = sigmoid(a[j]), f = sigmoid(a[H + j]);
      float g = tanh_by_sigmoid(a[2 * H + j]), o = sigmoid(a[3 * H + j]);
      float cc = f * c_b[j] + i * g, t = tanh_by_sigmoid(cc);
      s[j] = i; s[H + j] = f; s[2 * H + j] = g; s[3 * H + j] = o;
      cn[j] = cc; tc[j] = t; hb[j] = o * t;
    }
  }
}

void rnnkit_lstm_backward(const float *act, const float *c, int64_t ld_c, const float *tanh_c,
                          const float *dh, int64_t ld_dh, const float *dc_new, int64_t ld_dc_new,
                          float *dgates, float *dc_prev, int64_t B, int64_t H) {
#pragma omp parallel for schedule(static) if (B * H >= 16384)
  for (int64_t b = 0; b < B; b++) {
    const float *s = act + b * 4 * H, *c_b = c + b * ld_c, *tc = tanh_c + b * H;
    const float *dh_b = dh + b * ld_dh, *dcn = dc_new + b * ld_dc_new;
    float *d = dgates + b * 4 * H, *dcp = dc_prev + b * H;
#pragma omp simd
    for (int64_t j = 0; j < H; j++) {
      float i = s[j], f = s[H + j], g = s[2 * H + j], o = s[3 * H + j], t = tc[j];
      float dc = dcn[j] + dh_b[j] * o * (1.0f - t * t);
      d[j] = dc * g * i * (1.0f - i);
      d[H + j] = dc * c_b[j] * f * (1.0f - f);
      d[2 * H + j] = dc * i * (1.0f - g * g);
      d[3 * H + j] = dh_b[j] * t * o * (1.0f - o);
      dcp[j] = dc * f;
    }
  }
}
