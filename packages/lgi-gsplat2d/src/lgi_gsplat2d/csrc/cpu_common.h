// Helpers shared by the CPU rasterizer translation units (rasterize_cpu.cpp, rasterize_no_tiles_cpu.cpp):
// 16-lane row vectors, the fast exp, the q of a row, top-K list insertion in any order, the gradient finish.
// Private to the CPU build; includes no torch header.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "common.h"
#include "rasterize.h"

namespace lgi {
namespace cpu {

constexpr int kStats = 6;  // S_x, S_y, S_xx, S_xy, S_yy, S_0

// The 16-lane vectors below must stay in registers: an out-of-line call passes them through memory
// (4x slower where the vector unit is narrower than 16 floats, e.g. AVX2).
#define LGI_INLINE inline __attribute__((always_inline))

// A tile row as one GCC vector of kTile lanes; the compiler lowers it to the machine's vector width
// (AVX2 / AVX-512 / SSE). Explicit vectors rather than auto-vectorisation: the exp below only vectorises
// reliably this way. Lanes are reduced in lane order, so results never depend on the vector width.
template <typename T>
struct Lanes;
template <>
struct Lanes<float> {
  typedef float V __attribute__((vector_size(kTile * sizeof(float))));
  typedef int32_t M __attribute__((vector_size(kTile * sizeof(int32_t))));
};
template <>
struct Lanes<double> {
  typedef double V __attribute__((vector_size(kTile * sizeof(double))));
  typedef int64_t M __attribute__((vector_size(kTile * sizeof(int64_t))));
};
template <typename T>
using VecT = typename Lanes<T>::V;
template <typename T>
using MaskT = typename Lanes<T>::M;

template <typename T>
LGI_INLINE VecT<T> splat(T x) {
  return VecT<T>{} + x;
}

template <typename T>
LGI_INLINE MaskT<T> lane_index() {
  MaskT<T> m;
  for (int l = 0; l < kTile; ++l) m[l] = l;
  return m;
}

template <typename T>
LGI_INLINE T hsum(VecT<T> v) {
  T s = T(0);
  for (int l = 0; l < kTile; ++l) s += v[l];
  return s;
}

// exp(x) for x <= 0, relative error below 5e-7 (max 4.5e-7 over every float q in [0, 9], x = -q/2, checked
// exhaustively against double exp): exp(x) = 2^n e^f, n = round(x log2 e), |f| <= ln2 / 2,
// e^f by its Taylor series to degree 6. NaN and x < -87 give exp(-87) (such lanes are masked by the
// callers); x > 0 gives exp(0) = 1, so a weight exp(-q/2) never exceeds 1 (a negative q: common.h, q_form).
// The scalar and vector forms perform the same IEEE operations (exp_neg_taylor, V = float or VecT<float>,
// x already clamped: returns e^f and sets n), so they agree bit for bit.
template <typename V>
LGI_INLINE V exp_neg_taylor(V x, V& n) {
  const V t = x * 1.44269504088896341f;
  n = (t + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23 trick)
  const V f = (t - n) * 0.693147180559945309f;
  V p = f * (1.0f / 720.0f) + 1.0f / 120.0f;
  p = p * f + 1.0f / 24.0f;
  p = p * f + 1.0f / 6.0f;
  p = p * f + 0.5f;
  p = p * f + 1.0f;
  return p * f + 1.0f;
}

inline float exp_neg(float x) {
  float n;
  const float p = exp_neg_taylor(x > -87.0f ? (x < 0.0f ? x : 0.0f) : -87.0f, n);
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

inline double exp_neg(double x) { return std::exp(x > 0.0 ? 0.0 : x); }

LGI_INLINE VecT<float> exp_neg(VecT<float> x) {
  using V = VecT<float>;
  using M = MaskT<float>;
  V n;
  const V p = exp_neg_taylor<V>(x > -87.0f ? (x < 0.0f ? x : V{}) : splat(-87.0f), n);
  const M bits = (__builtin_convertvector(n, M) + 127) << 23;
  return p * (V)bits;  // GCC vector cast: reinterpret the bits
}

LGI_INLINE VecT<double> exp_neg(VecT<double> x) {
  for (int l = 0; l < kTile; ++l) x[l] = exp_neg(x[l]);
  return x;
}

// q <= 9  <=>  q < lim9 (one comparison serves both the cutoff and, once full, the K-th best).
template <typename T>
T lim9() {
  return std::nextafter(T(kCutoff), std::numeric_limits<T>::infinity());
}

// Pixel boxes of all Gaussians (sequential: about 20 ns each, cheaper than a parallel region's sync).
template <typename T>
std::vector<PixBox> boxes_of(const RasterArgs<T>& a) {
  std::vector<PixBox> boxes(static_cast<size_t>(a.n));
  for (int64_t g = 0; g < a.n; ++g) {
    boxes[g] = pixel_box(double(a.xys[2 * g]), double(a.xys[2 * g + 1]), a.radii[g], a.height, a.width);
  }
  return boxes;
}

// Per-Gaussian constants read once per (tile, Gaussian).
template <typename T>
struct Gauss {
  T x, y, a, b2, c;
  Gauss(const RasterArgs<T>& r, int64_t g)
      : x(r.xys[2 * g]), y(r.xys[2 * g + 1]), a(r.conics[3 * g]), b2(T(2) * r.conics[3 * g + 1]),
        c(r.conics[3 * g + 2]) {}
};

// q of a row of 16 lanes (pixel centres px) at vertical offset dy; dx is returned too. Same operation
// order as q_form.
template <typename T>
LGI_INLINE VecT<T> row_q(const Gauss<T>& G, VecT<T> px, T dy, VecT<T>* dx) {
  const T b2dy = G.b2 * dy, cdy2 = G.c * dy * dy;
  const VecT<T> d = px - G.x;
  *dx = d;
  return (G.a * d * d + b2dy * d) + cdy2;
}

// Weights of a row: exp(-q/2) on lanes in [la, lb] with q <= 9, else 0.
template <typename T>
LGI_INLINE VecT<T> row_weights(VecT<T> q, MaskT<T> lane, int la, int lb) {
  const MaskT<T> in = (lane >= la) & (lane <= lb) & (q <= T(kCutoff));
  return in ? exp_neg(T(-0.5) * q) : VecT<T>{};
}

// Bit l set where lane l of the mask is set.
LGI_INLINE uint32_t lane_bits(MaskT<float> m) {
#if defined(__AVX512F__)
  __m512i v;
  std::memcpy(&v, &m, sizeof(v));
  return _mm512_cmpneq_epi32_mask(v, _mm512_setzero_si512());
#else
  uint32_t bits = 0;
  for (int l = 0; l < kTile; ++l) bits |= uint32_t(m[l] != 0) << l;
  return bits;
#endif
}

LGI_INLINE uint32_t lane_bits(MaskT<double> m) {
  uint32_t bits = 0;
  for (int l = 0; l < kTile; ++l) bits |= uint32_t(m[l] != 0) << l;
  return bits;
}

// Conservative row test of one (tile, Gaussian) pair: skip(dy) is true only when no lane in [la, lb] of
// that row can have q <= 9, judged from the continuous minimum of q over the row's dx range (in double,
// with a margin far above float rounding). Skipped rows would only add zeros, so skipping never changes a
// result; it saves the rows of the radius box that the ellipse does not reach. (Measured: worth it in the
// sum backward, whose rows are expensive; a net loss in the cheaper forward rows.)
template <typename T>
struct RowTest {
  double a, b, c, dxlo, dxhi, dxm;
  bool active;
  RowTest(const Gauss<T>& G, VecT<T> px, int la, int lb) {
    a = G.a;
    b = 0.5 * double(G.b2);
    c = G.c;
    dxlo = double(px[la] - G.x);  // the lanes' own dx values bound every lane's dx
    dxhi = double(px[lb] - G.x);
    dxm = std::max(std::fabs(dxlo), std::fabs(dxhi));
    active = a > 0.0 && std::isfinite(a) && std::isfinite(b) && std::isfinite(c) && std::isfinite(dxm);
  }
  bool skip(T dy_t) const {
    if (!active) return false;
    const double dy = dy_t;
    const double xc = std::min(std::max(-b * dy / a, dxlo), dxhi);
    const double qmin = (a * xc + 2.0 * b * dy) * xc + c * dy * dy;
    const double scale = a * dxm * dxm + 2.0 * std::fabs(b) * dxm * std::fabs(dy) + c * dy * dy;
    return qmin > kCutoff + 1e-3 + 1e-5 * scale;
  }
};

// topk_insert (common.h) for candidates arriving in any order: the list is kept sorted by (q, id), so the K
// kept are the K smallest q with ties to the lower id whatever the arrival order.
template <typename T>
inline void topk_insert_lex(T* qs, int32_t* ids, int& cnt, int k, T q, int32_t id) {
  int pos = cnt < k ? cnt++ : k - 1;
  while (pos > 0 && (qs[pos - 1] > q || (qs[pos - 1] == q && ids[pos - 1] > id))) {
    qs[pos] = qs[pos - 1];
    ids[pos] = ids[pos - 1];
    --pos;
  }
  qs[pos] = q;
  ids[pos] = id;
}

#if defined(__AVX512F__)
constexpr int kSimdK = 16;  // lists of up to 16 entries live in one AVX-512 register pair

// topk_insert_lex for K <= 16 on 16-entry lists padded with +inf, without branches: the entries before
// the new one are those smaller in (q, id); the rest shift one lane up (lane 15 drops off). Returns the
// pixel's new acceptance limit.
LGI_INLINE float topk_insert16(float* qs, int32_t* ids, int& cnt, int k, float q, int32_t id, float lim) {
  const __m512 vq = _mm512_loadu_ps(qs);
  const __m512i vi = _mm512_loadu_si512(ids);
  const __m512 nq = _mm512_set1_ps(q);
  const __m512i ni = _mm512_set1_epi32(id);
  const __mmask16 valid = static_cast<__mmask16>((1u << k) - 1u);
  const __mmask16 before = valid & (_mm512_cmp_ps_mask(vq, nq, _CMP_LT_OQ) |
                                    (_mm512_cmp_ps_mask(vq, nq, _CMP_EQ_OQ) & _mm512_cmplt_epi32_mask(vi, ni)));
  const int pos = __builtin_popcount(before);
  if (pos >= k) return lim;  // a tie with a lower id already in a full list
  const __m512i up = _mm512_set_epi32(14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0);
  const __mmask16 after = static_cast<__mmask16>(0xFFFFu << pos);
  const __mmask16 here = static_cast<__mmask16>(1u << pos);
  __m512 q2 = _mm512_mask_permutexvar_ps(vq, after, up, vq);
  __m512i i2 = _mm512_mask_permutexvar_epi32(vi, after, up, vi);
  q2 = _mm512_mask_mov_ps(q2, here, nq);
  i2 = _mm512_mask_mov_epi32(i2, here, ni);
  _mm512_storeu_ps(qs, q2);
  _mm512_storeu_si512(ids, i2);
  if (cnt < k) ++cnt;
  return cnt == k ? qs[k - 1] : lim;
}
#endif

// Turn a Gaussian's summed moments into gradients (see the file comment). S has kStats + C entries.
template <typename T>
inline void finish_gaussian(const RasterArgs<T>& a, int64_t g, const T* S, T* grad_xys, T* grad_conics,
                            T* grad_colors, T* grad_opacities) {
  if (a.radii[g] <= 0) {  // culled: no pixel, zero gradients (and its conic may be infinite)
    if (grad_xys) {
      std::fill(grad_xys + 2 * g, grad_xys + 2 * g + 2, T(0));
      std::fill(grad_conics + 3 * g, grad_conics + 3 * g + 3, T(0));
    }
    if (grad_colors) std::fill(grad_colors + g * a.channels, grad_colors + (g + 1) * a.channels, T(0));
    if (grad_opacities) grad_opacities[g] = T(0);
    return;
  }
  const T o = a.opacities ? a.opacities[g] : T(1);
  if (grad_xys) {
    const T ca = a.conics[3 * g], cb = a.conics[3 * g + 1], cc = a.conics[3 * g + 2];
    grad_xys[2 * g] = o * (ca * S[0] + cb * S[1]);
    grad_xys[2 * g + 1] = o * (cb * S[0] + cc * S[1]);
    grad_conics[3 * g] = T(-0.5) * o * S[2];
    grad_conics[3 * g + 1] = -o * S[3];
    grad_conics[3 * g + 2] = T(-0.5) * o * S[4];
  }
  if (grad_colors) {
    for (int ch = 0; ch < a.channels; ++ch) grad_colors[g * a.channels + ch] = o * S[kStats + ch];
  }
  if (grad_opacities) grad_opacities[g] = S[5];
}

// The part of a pixel box inside a tile: image rows [ra, rb] and tile lanes (columns - j0) [la, lb].
struct BoxInTile {
  int ra, rb, la, lb;
};

struct TileGeom {
  int i0, j0, ht, wt;
  TileGeom(int t, int tx_count, int height, int width) {
    i0 = (t / tx_count) * kTile;
    j0 = (t % tx_count) * kTile;
    ht = std::min(kTile, height - i0);
    wt = std::min(kTile, width - j0);
  }
  BoxInTile clip(const PixBox& bx) const {
    return {std::max(bx.i0, i0), std::min(bx.i1, i0 + ht - 1), std::max(bx.j0, j0) - j0,
            std::min(bx.j1, j0 + wt - 1) - j0};
  }
};

}  // namespace cpu
}  // namespace lgi
