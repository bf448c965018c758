/* What every cell's C kernels share: the activations, and fp32/bf16 rows.
 *
 * Compiled on first use by rnnkit/kernels/native.py with -O3 -march=native,
 * so the loops vectorise and expf becomes glibc's vector exp. OpenMP splits
 * the batch rows between torch's own threads (the same libgomp, already
 * loaded by torch).
 *
 * Tensors with an ld_* argument may have any row stride, in elements (rows of
 * a (B, T, .) tensor at one step); each row is contiguous, and so is every
 * other tensor. The products' side of a step (its inputs, the copy of h that
 * the next product reads, the gradients that go back through a product) is
 * fp32 or bf16 (the flag bf16, rounded to nearest even as torch rounds); the
 * gate arithmetic and every other tensor are fp32.
 */
#ifndef RNNKIT_KERNELS_H
#define RNNKIT_KERNELS_H
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

#endif
