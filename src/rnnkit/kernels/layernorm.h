/* What the layer-normalised cells' C kernels share (lnlstm.c, lngru.c; see
 * rnnkit/kernels/layernorm.py): layer normalisation over the H entries of one
 * gate block, forward and backward, with ε = 1e-5 as torch.nn.LayerNorm.
 *
 *   LN(v) = γ vhat + β,   vhat = (v - μ) rstd,   rstd = 1/sqrt(σ² + ε)
 *   backward: dv = rstd (dn - mean(dn) - vhat mean(dn vhat)),   dn = γ dLN
 */
#ifndef RNNKIT_LAYERNORM_H
#define RNNKIT_LAYERNORM_H
#include "kernels.h"

#define LN_EPS 1e-5f

/* The cells' rows are split between threads from B H = 4096 on, a quarter of lstm.c's
 * threshold: the norms make a row's work about twice the plain cell's, and
 * at 2 x 256, batch 32, bf16 the LN-LSTM trained faster with the split than
 * without; the LN-GRU's runs were level within the machine's noise
 * (benchmarks/cell_speed.py; NOTEBOOK.md, 2026-12-06, "Threads"). */
#define LN_ROWS_IN_PARALLEL(B, H) ((B) * (H) >= 4096)

/* rstd of the n floats v; their mean in *mean (two passes: the mean, then the squared deviations) */
static inline float inverse_deviation(const float *v, int64_t n, float *mean) {
  float sum = 0.0f, squares = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; j++) sum += v[j];
  float mu = sum / (float)n;
#pragma omp simd reduction(+ : squares)
  for (int64_t j = 0; j < n; j++) squares += (v[j] - mu) * (v[j] - mu);
  *mean = mu;
  return 1.0f / sqrtf(squares / (float)n + LN_EPS);
}

/* vhat of each of `blocks` blocks of H entries of v (fp32 or bf16) into vhat (fp32), rstd (blocks) */
static inline __attribute__((always_inline)) void normalise_blocks(
    const void *v, float *vhat, float *rstd, int64_t blocks, int64_t H, const int bf16) {
  for (int64_t k = 0; k < blocks; k++) {
    float *block = vhat + k * H, mean;
#pragma omp simd
    for (int64_t j = 0; j < H; j++) block[j] = load(v, k * H + j, bf16);
    float r = inverse_deviation(block, H, &mean);
#pragma omp simd
    for (int64_t j = 0; j < H; j++) block[j] = (block[j] - mean) * r;
    rstd[k] = r;
  }
}

/* The backward of one block's LN from the gradient reaching its output, dout (n),
 * into dv (n, fp32 or bf16) */
static inline __attribute__((always_inline)) void norm_backward(
    const float *dout, const float *gain, const float *vhat, float rstd, void *dv, int64_t n, const int bf16) {
  float sum = 0.0f, dot = 0.0f;
#pragma omp simd reduction(+ : sum, dot)
  for (int64_t j = 0; j < n; j++) {
    float dn = dout[j] * gain[j];
    sum += dn;
    dot += dn * vhat[j];
  }
  float m1 = sum / (float)n, m2 = dot / (float)n;
#pragma omp simd
  for (int64_t j = 0; j < n; j++) store(dv, j, rstd * (dout[j] * gain[j] - m1 - vhat[j] * m2), bf16);
}

#endif
