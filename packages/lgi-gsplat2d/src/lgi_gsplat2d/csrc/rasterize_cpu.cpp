// CPU (OpenMP) tile rasterizer, forward and backward, float32 and float64.
//
// Work is split by tile (16x16 pixels). Inside a tile the loop runs over the tile's Gaussians in index
// order and, for each, over the rows of its pixel box, evaluating all 16 columns of a row at once (a
// fixed-width loop the compiler vectorises; columns outside the box are masked). Sum mode accumulates
// weighted colours per pixel; top-K mode keeps, per pixel, the K smallest q in a sorted array (ties keep
// the lower Gaussian index) and evaluates exp() only for the selected ones.
//
// The backward pass writes, for every (tile, Gaussian) intersection, the moments
//   [S_x, S_y, S_xx, S_xy, S_yy, S_0, S_c0 .. S_c(C-1)]     (partials of width kStats + C)
// with S_x = sum t dx, S_xy = sum t dx dy, ..., t = w * dL/dw, into that intersection's own slot, then
// reduces each Gaussian's slots in order (finish_gaussian). Thread count never changes a result.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "common.h"
#include "rasterize.h"

namespace lgi {
namespace {

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

// exp(x) for x <= 0, relative error below 4e-7: exp(x) = 2^n e^f, n = round(x log2 e), |f| <= ln2 / 2,
// e^f by its Taylor series to degree 6. NaN and x < -87 give exp(-87) (such lanes are masked by the
// callers). The scalar and vector forms perform the same IEEE operations, so they agree bit for bit.
inline float exp_neg(float x) {
  x = x > -87.0f ? x : -87.0f;
  const float t = x * 1.44269504088896341f;
  const float n = (t + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23 trick)
  const float f = (t - n) * 0.693147180559945309f;
  float p = 1.0f / 720.0f;
  p = p * f + 1.0f / 120.0f;
  p = p * f + 1.0f / 24.0f;
  p = p * f + 1.0f / 6.0f;
  p = p * f + 0.5f;
  p = p * f + 1.0f;
  p = p * f + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

inline double exp_neg(double x) { return std::exp(x); }

LGI_INLINE VecT<float> exp_neg(VecT<float> x) {
  using V = VecT<float>;
  using M = MaskT<float>;
  x = x > -87.0f ? x : splat(-87.0f);
  const V t = x * 1.44269504088896341f;
  const V n = (t + 12582912.0f) - 12582912.0f;
  const V f = (t - n) * 0.693147180559945309f;
  V p = splat(1.0f / 720.0f);
  p = p * f + 1.0f / 120.0f;
  p = p * f + 1.0f / 24.0f;
  p = p * f + 1.0f / 6.0f;
  p = p * f + 0.5f;
  p = p * f + 1.0f;
  p = p * f + 1.0f;
  const M bits = (__builtin_convertvector(n, M) + 127) << 23;
  return p * (V)bits;  // GCC vector cast: reinterpret the bits
}

LGI_INLINE VecT<double> exp_neg(VecT<double> x) {
  for (int l = 0; l < kTile; ++l) x[l] = std::exp(x[l]);
  return x;
}

// q <= 9  <=>  q < lim9 (one comparison serves both the cutoff and, once full, the K-th best).
template <typename T>
T lim9() {
  return std::nextafter(T(kCutoff), std::numeric_limits<T>::infinity());
}

template <typename T>
std::vector<PixBox> boxes_of(const RasterArgs<T>& a) {
  std::vector<PixBox> boxes(static_cast<size_t>(a.n));
#pragma omp parallel for num_threads(a.nthreads) schedule(static)
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

// Insert (q, id) into the ascending list of pixel p (caller checked q < lim[p]). Equal q keep the earlier
// (lower-index) entry first, and a full list rejects a q equal to its K-th, so ties favour lower indices.
template <typename T>
inline void topk_insert(T* qs, int32_t* ids, int& cnt, T& lim, int k, T q, int32_t id) {
  int pos;
  if (cnt < k) {
    pos = cnt++;
  } else {
    pos = k - 1;
  }
  while (pos > 0 && qs[pos - 1] > q) {
    qs[pos] = qs[pos - 1];
    ids[pos] = ids[pos - 1];
    --pos;
  }
  qs[pos] = q;
  ids[pos] = id;
  if (cnt == k) lim = qs[k - 1];
}

// Same for candidates arriving in any order: the list is kept sorted by (q, id), so the K kept are the K
// smallest q with ties to the lower id whatever the arrival order.
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

struct TileGeom {
  int i0, j0, ht, wt;
  TileGeom(int t, int tx_count, int height, int width) {
    i0 = (t / tx_count) * kTile;
    j0 = (t % tx_count) * kTile;
    ht = std::min(kTile, height - i0);
    wt = std::min(kTile, width - j0);
  }
};

// ------------------------------------------------------------------------------------------------ forward

template <typename T>
VecT<T> tile_px(const TileGeom& tg) {
  VecT<T> px;
  for (int l = 0; l < kTile; ++l) px[l] = T(tg.j0 + l) + T(0.5);
  return px;
}

// acc: C * kTile row vectors (channel-major).
template <typename T>
void forward_tile_sum(const RasterArgs<T>& a, const TileGeom& tg, const PixBox* boxes, const int32_t* gid,
                      int32_t e0, int32_t e1, VecT<T>* acc, T* col, T* out) {
  const int C = a.channels;
  std::fill(acc, acc + static_cast<size_t>(C) * kTile, VecT<T>{});
  const VecT<T> px = tile_px<T>(tg);
  const MaskT<T> lane = lane_index<T>();
  for (int32_t e = e0; e < e1; ++e) {
    const int64_t g = gid[e];
    const Gauss<T> G(a, g);
    const PixBox& bx = boxes[g];
    const int ra = std::max(bx.i0, tg.i0), rb = std::min(bx.i1, tg.i0 + tg.ht - 1);
    const int la = std::max(bx.j0, tg.j0) - tg.j0, lb = std::min(bx.j1, tg.j0 + tg.wt - 1) - tg.j0;
    const T o = a.opacities ? a.opacities[g] : T(1);
    for (int ch = 0; ch < C; ++ch) col[ch] = a.colors[g * C + ch] * o;
    for (int i = ra; i <= rb; ++i) {
      const T dy = (T(i) + T(0.5)) - G.y;
      VecT<T> dx;
      const VecT<T> w = row_weights<T>(row_q(G, px, dy, &dx), lane, la, lb);
      VecT<T>* row = acc + (i - tg.i0);
      for (int ch = 0; ch < C; ++ch) row[ch * kTile] += col[ch] * w;
    }
  }
  for (int r = 0; r < tg.ht; ++r) {
    for (int l = 0; l < tg.wt; ++l) {
      T* o = out + ((static_cast<int64_t>(tg.i0) + r) * a.width + tg.j0 + l) * C;
      for (int ch = 0; ch < C; ++ch) o[ch] = acc[ch * kTile + r][l];
    }
  }
}

// Stride of the per-pixel candidate lists of forward_tile_topk.
template <typename T>
int topk_stride(int k) {
#if defined(__AVX512F__)
  if (std::is_same<T, float>::value && k <= kSimdK) return kSimdK;
#endif
  return k;
}

// lim: kTile row vectors of per-pixel acceptance limits.
template <typename T>
void forward_tile_topk(const RasterArgs<T>& a, const TileGeom& tg, const PixBox* boxes, const int32_t* gid,
                       int32_t e0, int32_t e1, T* qbest, int32_t* ebest, VecT<T>* lim,
                       std::vector<std::pair<T, int32_t>>& order, T* col, T* out, int32_t* sel, T* wsel,
                       T* wsum) {
  const int C = a.channels, K = a.k;
  // List stride: 16 on the AVX-512 path (one register per list), else K.
#if defined(__AVX512F__)
  constexpr bool kFloat = std::is_same<T, float>::value;
  const bool simd = kFloat && K <= kSimdK;
#else
  constexpr bool simd = false;
#endif
  const int KS = topk_stride<T>(K);
  int cnt[kTilePixels];
  int32_t limid[kTilePixels];
  std::fill(cnt, cnt + kTilePixels, 0);
  std::fill(limid, limid + kTilePixels, std::numeric_limits<int32_t>::max());
  std::fill(lim, lim + kTile, splat(lim9<T>()));
  if (simd) std::fill(qbest, qbest + kTilePixels * KS, std::numeric_limits<T>::infinity());
  const VecT<T> px = tile_px<T>(tg);
  const MaskT<T> lane = lane_index<T>();
  // Visit the tile's Gaussians nearest-first (by q at the tile centre): the lists fill with strong
  // candidates early and most later ones fail the vector test below, which saves most insertions.
  // Lists are ordered by (q, entry), so the K kept do not depend on the visiting order.
  order.clear();
  const T cx = T(tg.j0) + T(0.5) * T(tg.wt), cy = T(tg.i0) + T(0.5) * T(tg.ht);
  for (int32_t e = e0; e < e1; ++e) {
    const Gauss<T> G(a, gid[e]);
    const T dx = cx - G.x, dy = cy - G.y;
    order.emplace_back(q_form(G.a, dx, G.b2 * dy, G.c * dy * dy), e);
  }
  std::sort(order.begin(), order.end());
  for (const auto& item : order) {
    const int32_t e = item.second;
    const int64_t g = gid[e];
    const Gauss<T> G(a, g);
    const PixBox& bx = boxes[g];
    const int ra = std::max(bx.i0, tg.i0), rb = std::min(bx.i1, tg.i0 + tg.ht - 1);
    const int la = std::max(bx.j0, tg.j0) - tg.j0, lb = std::min(bx.j1, tg.j0 + tg.wt - 1) - tg.j0;
    for (int i = ra; i <= rb; ++i) {
      const T dy = (T(i) + T(0.5)) - G.y;
      VecT<T> dx;
      const VecT<T> q = row_q(G, px, dy, &dx);
      const int r = i - tg.i0;
      uint32_t bits = lane_bits((lane >= la) & (lane <= lb) & (q <= lim[r]));
      while (bits) {
        const int l = __builtin_ctz(bits);
        bits &= bits - 1;
        const int p = r * kTile + l;
#if defined(__AVX512F__)
        if constexpr (kFloat) {
          if (simd) {
            lim[r][l] = topk_insert16(qbest + p * KS, ebest + p * KS, cnt[p], K, q[l], e, lim[r][l]);
            continue;
          }
        }
#endif
        const T ql = q[l], lp = lim[r][l];
        if (!(ql < lp || (ql == lp && e < limid[p]))) continue;
        topk_insert_lex(qbest + p * KS, ebest + p * KS, cnt[p], K, ql, e);
        if (cnt[p] == K) {
          lim[r][l] = qbest[p * KS + K - 1];
          limid[p] = ebest[p * KS + K - 1];
        }
      }
    }
  }
  // Weights of every kept q at once (slots past a pixel's count hold stale values and are ignored).
  for (int s = 0; s < kTilePixels * KS; s += kTile) {
    VecT<T> qv;
    std::memcpy(&qv, qbest + s, sizeof(qv));
    const VecT<T> wv = exp_neg(T(-0.5) * qv);
    std::memcpy(qbest + s, &wv, sizeof(wv));
  }
  for (int r = 0; r < tg.ht; ++r) {
    for (int l = 0; l < tg.wt; ++l) {
      const int p = r * kTile + l;
      const int64_t P = (static_cast<int64_t>(tg.i0) + r) * a.width + tg.j0 + l;
      for (int ch = 0; ch < C; ++ch) col[ch] = T(0);
      T wt = T(0);
      for (int kk = 0; kk < cnt[p]; ++kk) {
        const int64_t g = gid[ebest[p * KS + kk]];
        const T w = qbest[p * KS + kk];
        wt += w;
        for (int ch = 0; ch < C; ++ch) col[ch] += w * a.colors[g * C + ch];
        sel[P * K + kk] = ebest[p * KS + kk];
        wsel[P * K + kk] = w;
      }
      for (int kk = cnt[p]; kk < K; ++kk) {
        sel[P * K + kk] = -1;
        wsel[P * K + kk] = T(0);
      }
      const T denom = wt + T(kTopkEps);
      for (int ch = 0; ch < C; ++ch) out[P * C + ch] = col[ch] / denom;
      wsum[P] = wt;
    }
  }
}

// ----------------------------------------------------------------------------------------------- backward

// Sum mode: one Gaussian-outer pass over the tile with lane accumulators, one partial row per entry.
// gt: C * kTile row vectors of the output gradient; scol: C vectors.
template <typename T>
void backward_tile_sum(const RasterArgs<T>& a, const TileGeom& tg, const PixBox* boxes, const int32_t* gid,
                       const int32_t* slot, int32_t e0, int32_t e1, const T* grad_out, bool need_geom,
                       bool need_col, VecT<T>* gt, VecT<T>* scol, T* partials) {
  const int C = a.channels, G = kStats + C;
  std::fill(gt, gt + static_cast<size_t>(C) * kTile, VecT<T>{});
  for (int r = 0; r < tg.ht; ++r) {
    for (int l = 0; l < tg.wt; ++l) {
      const T* go = grad_out + ((static_cast<int64_t>(tg.i0) + r) * a.width + tg.j0 + l) * C;
      for (int ch = 0; ch < C; ++ch) gt[ch * kTile + r][l] = go[ch];
    }
  }
  const VecT<T> px = tile_px<T>(tg);
  const MaskT<T> lane = lane_index<T>();
  const bool need_moments = need_geom || a.opacities != nullptr;
  for (int32_t e = e0; e < e1; ++e) {
    const int64_t g = gid[e];
    const Gauss<T> Gs(a, g);
    const PixBox& bx = boxes[g];
    const int ra = std::max(bx.i0, tg.i0), rb = std::min(bx.i1, tg.i0 + tg.ht - 1);
    const int la = std::max(bx.j0, tg.j0) - tg.j0, lb = std::min(bx.j1, tg.j0 + tg.wt - 1) - tg.j0;
    VecT<T> sx{}, sy{}, sxx{}, sxy{}, syy{}, s0{};
    std::fill(scol, scol + C, VecT<T>{});
    const T* colg = a.colors + g * C;
    const RowTest<T> rt(Gs, px, la, lb);
    for (int i = ra; i <= rb; ++i) {
      const T dy = (T(i) + T(0.5)) - Gs.y;
      if (rt.skip(dy)) continue;
      VecT<T> dx;
      const VecT<T> w = row_weights<T>(row_q(Gs, px, dy, &dx), lane, la, lb);
      const VecT<T>* grow = gt + (i - tg.i0);
      if (need_moments) {
        VecT<T> gc{};
        for (int ch = 0; ch < C; ++ch) gc += colg[ch] * grow[ch * kTile];
        const VecT<T> t = w * gc, tdx = t * dx, tdy = t * dy;
        s0 += t;
        sx += tdx;
        sy += tdy;
        sxx += tdx * dx;
        sxy += tdx * dy;
        syy += tdy * dy;
      }
      if (need_col) {
        for (int ch = 0; ch < C; ++ch) scol[ch] += grow[ch * kTile] * w;
      }
    }
    T* dst = partials + static_cast<int64_t>(slot[e]) * G;
    dst[0] = hsum<T>(sx);
    dst[1] = hsum<T>(sy);
    dst[2] = hsum<T>(sxx);
    dst[3] = hsum<T>(sxy);
    dst[4] = hsum<T>(syy);
    dst[5] = hsum<T>(s0);
    for (int ch = 0; ch < C; ++ch) dst[kStats + ch] = hsum<T>(scol[ch]);
  }
}

// Top-K mode: pixel-outer over the saved selections; per-entry accumulators local to the tile.
template <typename T>
void backward_tile_topk(const RasterArgs<T>& a, const TileGeom& tg, const int32_t* gid, const int32_t* slot,
                        int32_t e0, int32_t e1, const T* grad_out, const T* out, const int32_t* sel,
                        const T* wsel, const T* wsum, bool need_geom, bool need_col, T* acc, T* partials) {
  const int C = a.channels, K = a.k, G = kStats + C;
  std::fill(acc, acc + static_cast<size_t>(e1 - e0) * G, T(0));
  for (int r = 0; r < tg.ht; ++r) {
    const int i = tg.i0 + r;
    const T dy0 = T(i) + T(0.5);
    for (int l = 0; l < tg.wt; ++l) {
      const int j = tg.j0 + l;
      const int64_t P = static_cast<int64_t>(i) * a.width + j;
      const int32_t* sp = sel + P * K;
      if (sp[0] < 0) continue;
      const T* gp = grad_out + P * C;
      const T* op = out + P * C;
      const T denom = wsum[P] + T(kTopkEps);
      for (int kk = 0; kk < K && sp[kk] >= 0; ++kk) {
        const int32_t e = sp[kk];
        const int64_t g = gid[e];
        const T dx = (T(j) + T(0.5)) - a.xys[2 * g], dy = dy0 - a.xys[2 * g + 1];
        const T w = wsel[P * K + kk];
        T* A = acc + static_cast<int64_t>(e - e0) * G;
        const T* colg = a.colors + g * C;
        if (need_geom) {
          T dldw = T(0);
          for (int ch = 0; ch < C; ++ch) dldw += gp[ch] * (colg[ch] - op[ch]);
          const T t = w * (dldw / denom);
          A[0] += t * dx;
          A[1] += t * dy;
          A[2] += t * dx * dx;
          A[3] += t * dx * dy;
          A[4] += t * dy * dy;
        }
        if (need_col) {
          const T wd = w / denom;
          for (int ch = 0; ch < C; ++ch) A[kStats + ch] += gp[ch] * wd;
        }
      }
    }
  }
  for (int32_t e = e0; e < e1; ++e) {
    std::memcpy(partials + static_cast<int64_t>(slot[e]) * G, acc + static_cast<int64_t>(e - e0) * G,
                sizeof(T) * G);
  }
}

}  // namespace

// ------------------------------------------------------------------------------------------------ binning

template <typename T>
int64_t bin_count_cpu(const RasterArgs<T>& a, const int32_t* num_tiles_hit, int32_t* gauss_offsets,
                      int32_t* tile_offsets) {
  const int TX = tiles_x(a.width), TY = tiles_y(a.height);
  const std::vector<PixBox> boxes = boxes_of(a);
  int64_t total = 0;
  gauss_offsets[0] = 0;
  for (int64_t g = 0; g < a.n; ++g) {
    const int cnt = box_tiles(boxes[g]);
    if (cnt != num_tiles_hit[g]) return -(g + 1);
    total += cnt;
    if (total > std::numeric_limits<int32_t>::max()) {
      throw std::length_error("more than 2^31 tile intersections; render at a lower resolution");
    }
    gauss_offsets[g + 1] = static_cast<int32_t>(total);
  }
  std::vector<int32_t> counts(static_cast<size_t>(TX) * TY, 0);
#pragma omp parallel for num_threads(a.nthreads) schedule(dynamic, 1)
  for (int ty = 0; ty < TY; ++ty) {
    int32_t* row = counts.data() + static_cast<int64_t>(ty) * TX;
    for (int64_t g = 0; g < a.n; ++g) {
      const PixBox& b = boxes[g];
      if (b.empty() || ty < b.i0 / kTile || ty > b.i1 / kTile) continue;
      for (int tx = b.j0 / kTile; tx <= b.j1 / kTile; ++tx) ++row[tx];
    }
  }
  tile_offsets[0] = 0;
  for (int64_t t = 0; t < static_cast<int64_t>(TX) * TY; ++t) tile_offsets[t + 1] = tile_offsets[t] + counts[t];
  return total;
}

template <typename T>
void bin_fill_cpu(const RasterArgs<T>& a, const int32_t* gauss_offsets, const int32_t* tile_offsets,
                  int32_t* list_gid, int32_t* list_slot) {
  const int TX = tiles_x(a.width), TY = tiles_y(a.height);
  const std::vector<PixBox> boxes = boxes_of(a);
#pragma omp parallel for num_threads(a.nthreads) schedule(dynamic, 1)
  for (int ty = 0; ty < TY; ++ty) {
    std::vector<int32_t> pos(tile_offsets + static_cast<int64_t>(ty) * TX,
                             tile_offsets + static_cast<int64_t>(ty) * TX + TX);
    for (int64_t g = 0; g < a.n; ++g) {
      const PixBox& b = boxes[g];
      const int ty0 = b.i0 / kTile;
      if (b.empty() || ty < ty0 || ty > b.i1 / kTile) continue;
      const int tx0 = b.j0 / kTile, tx1 = b.j1 / kTile;
      const int32_t base = gauss_offsets[g] + (ty - ty0) * (tx1 - tx0 + 1) - tx0;
      for (int tx = tx0; tx <= tx1; ++tx) {
        const int32_t e = pos[tx]++;
        list_gid[e] = static_cast<int32_t>(g);
        list_slot[e] = base + tx;
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------- passes

template <typename T>
void rasterize_forward_cpu(const RasterArgs<T>& a, const int32_t* tile_offsets, const int32_t* list_gid,
                           T* out, int32_t* sel, T* wsel, T* wsum) {
  const int TX = tiles_x(a.width), NT = TX * tiles_y(a.height);
  const std::vector<PixBox> boxes = boxes_of(a);
#pragma omp parallel num_threads(a.nthreads)
  {
    std::vector<VecT<T>> acc(static_cast<size_t>(a.channels) * kTile), lim(kTile);
    std::vector<T> col(a.channels);
    std::vector<T> qbest(a.mode == kModeTopk ? static_cast<size_t>(kTilePixels) * topk_stride<T>(a.k) : 0);
    std::vector<int32_t> ebest(qbest.size());
    std::vector<std::pair<T, int32_t>> order;
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < NT; ++t) {
      const TileGeom tg(t, TX, a.height, a.width);
      if (a.mode == kModeTopk) {
        forward_tile_topk(a, tg, boxes.data(), list_gid, tile_offsets[t], tile_offsets[t + 1], qbest.data(),
                          ebest.data(), lim.data(), order, col.data(), out, sel, wsel, wsum);
      } else {
        forward_tile_sum(a, tg, boxes.data(), list_gid, tile_offsets[t], tile_offsets[t + 1], acc.data(),
                         col.data(), out);
      }
    }
  }
}

template <typename T>
void rasterize_backward_cpu(const RasterArgs<T>& a, int64_t m, const int32_t* gauss_offsets,
                            const int32_t* tile_offsets, const int32_t* list_gid, const int32_t* list_slot,
                            const T* grad_out, const T* out, const int32_t* sel, const T* wsel, const T* wsum,
                            T* grad_xys, T* grad_conics, T* grad_colors, T* grad_opacities) {
  const int C = a.channels, G = kStats + C;
  const int TX = tiles_x(a.width), NT = TX * tiles_y(a.height);
  const bool need_geom = grad_xys != nullptr, need_col = grad_colors != nullptr;
  std::vector<T> partials(static_cast<size_t>(m) * G);
  std::vector<PixBox> boxes;
  if (a.mode == kModeSum) boxes = boxes_of(a);
  int32_t max_entries = 0;
  for (int t = 0; t < NT; ++t) max_entries = std::max(max_entries, tile_offsets[t + 1] - tile_offsets[t]);
#pragma omp parallel num_threads(a.nthreads)
  {
    std::vector<T> acc(a.mode == kModeTopk ? static_cast<size_t>(max_entries) * G : 0);
    std::vector<VecT<T>> gt(a.mode == kModeSum ? static_cast<size_t>(C) * kTile : 0), scol(C);
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < NT; ++t) {
      const int32_t e0 = tile_offsets[t], e1 = tile_offsets[t + 1];
      if (e0 == e1) continue;
      const TileGeom tg(t, TX, a.height, a.width);
      if (a.mode == kModeTopk) {
        backward_tile_topk(a, tg, list_gid, list_slot, e0, e1, grad_out, out, sel, wsel, wsum, need_geom,
                           need_col, acc.data(), partials.data());
      } else {
        backward_tile_sum(a, tg, boxes.data(), list_gid, list_slot, e0, e1, grad_out, need_geom, need_col,
                          gt.data(), scol.data(), partials.data());
      }
    }
  }
#pragma omp parallel num_threads(a.nthreads)
  {
    std::vector<T> S(G);
#pragma omp for schedule(static)
    for (int64_t g = 0; g < a.n; ++g) {
      std::fill(S.begin(), S.end(), T(0));
      for (int32_t s = gauss_offsets[g]; s < gauss_offsets[g + 1]; ++s) {
        const T* row = partials.data() + static_cast<int64_t>(s) * G;
        for (int k = 0; k < G; ++k) S[k] += row[k];
      }
      finish_gaussian(a, g, S.data(), grad_xys, grad_conics, grad_colors, grad_opacities);
    }
  }
}

// -------------------------------------------------------------------------------------------- no tiles

template <typename T>
void rasterize_no_tiles_forward_cpu(const RasterArgs<T>& a, T* out, int32_t* sel, T* wsel, T* wsum) {
  const int C = a.channels, K = a.k;
  const std::vector<PixBox> boxes = boxes_of(a);
  const T l9 = lim9<T>();
#pragma omp parallel num_threads(a.nthreads)
  {
    std::vector<T> acc(C), qs(K);
    std::vector<int32_t> ids(K);
#pragma omp for schedule(dynamic, 1)
    for (int i = 0; i < a.height; ++i) {
      const T dy0 = T(i) + T(0.5);
      for (int j = 0; j < a.width; ++j) {
        const int64_t P = static_cast<int64_t>(i) * a.width + j;
        std::fill(acc.begin(), acc.end(), T(0));
        int cnt = 0;
        T lim = l9;
        for (int64_t g = 0; g < a.n; ++g) {
          const PixBox& b = boxes[g];
          if (j < b.j0 || j > b.j1 || i < b.i0 || i > b.i1) continue;
          const Gauss<T> Gs(a, g);
          const T dx = (T(j) + T(0.5)) - Gs.x, dy = dy0 - Gs.y;
          const T q = q_form(Gs.a, dx, Gs.b2 * dy, Gs.c * dy * dy);
          if (a.mode == kModeTopk) {
            if (q < lim) topk_insert(qs.data(), ids.data(), cnt, lim, K, q, static_cast<int32_t>(g));
          } else if (q <= T(kCutoff)) {
            const T w = exp_neg(T(-0.5) * q) * (a.opacities ? a.opacities[g] : T(1));
            for (int ch = 0; ch < C; ++ch) acc[ch] += w * a.colors[g * C + ch];
          }
        }
        if (a.mode == kModeTopk) {
          T wt = T(0);
          for (int kk = 0; kk < cnt; ++kk) {
            const T w = exp_neg(T(-0.5) * qs[kk]);
            wt += w;
            for (int ch = 0; ch < C; ++ch) acc[ch] += w * a.colors[ids[kk] * C + ch];
            sel[P * K + kk] = ids[kk];
            wsel[P * K + kk] = w;
          }
          for (int kk = cnt; kk < K; ++kk) {
            sel[P * K + kk] = -1;
            wsel[P * K + kk] = T(0);
          }
          for (int ch = 0; ch < C; ++ch) acc[ch] /= wt + T(kTopkEps);
          wsum[P] = wt;
        }
        for (int ch = 0; ch < C; ++ch) out[P * C + ch] = acc[ch];
      }
    }
  }
}

template <typename T>
void rasterize_no_tiles_backward_cpu(const RasterArgs<T>& a, const T* grad_out, const T* out, const int32_t* sel,
                                     const T* wsel, const T* wsum, T* grad_xys, T* grad_conics, T* grad_colors,
                                     T* grad_opacities) {
  const int C = a.channels, K = a.k, G = kStats + C;
  const std::vector<PixBox> boxes = boxes_of(a);
#pragma omp parallel num_threads(a.nthreads)
  {
    std::vector<T> S(G);
#pragma omp for schedule(dynamic, 16)
    for (int64_t g = 0; g < a.n; ++g) {
      std::fill(S.begin(), S.end(), T(0));
      const PixBox& b = boxes[g];
      const Gauss<T> Gs(a, g);
      const T* colg = a.colors + g * C;
      for (int i = b.i0; i <= b.i1; ++i) {
        const T dy = (T(i) + T(0.5)) - Gs.y;
        for (int j = b.j0; j <= b.j1; ++j) {
          const int64_t P = static_cast<int64_t>(i) * a.width + j;
          const T dx = (T(j) + T(0.5)) - Gs.x;
          const T q = q_form(Gs.a, dx, Gs.b2 * dy, Gs.c * dy * dy);
          if (!(q <= T(kCutoff))) continue;
          const T* gp = grad_out + P * C;
          T t, wc, w;  // t = w dL/dw (per unit opacity in sum mode), wc = the colour gradient factor
          if (a.mode == kModeTopk) {
            int found = -1;
            for (int kk = 0; kk < K && sel[P * K + kk] >= 0; ++kk) {
              if (sel[P * K + kk] == g) found = kk;
            }
            if (found < 0) continue;
            w = wsel[P * K + found];
            const T denom = wsum[P] + T(kTopkEps);
            T dldw = T(0);
            for (int ch = 0; ch < C; ++ch) dldw += gp[ch] * (colg[ch] - out[P * C + ch]);
            t = w * (dldw / denom);
            wc = w / denom;
          } else {
            w = exp_neg(T(-0.5) * q);
            T gc = T(0);
            for (int ch = 0; ch < C; ++ch) gc += colg[ch] * gp[ch];
            t = w * gc;
            wc = w;
          }
          S[0] += t * dx;
          S[1] += t * dy;
          S[2] += t * dx * dx;
          S[3] += t * dx * dy;
          S[4] += t * dy * dy;
          S[5] += t;
          for (int ch = 0; ch < C; ++ch) S[kStats + ch] += gp[ch] * wc;
        }
      }
      finish_gaussian(a, g, S.data(), grad_xys, grad_conics, grad_colors, grad_opacities);
    }
  }
}

#define LGI_INSTANTIATE(T)                                                                                   \
  template int64_t bin_count_cpu<T>(const RasterArgs<T>&, const int32_t*, int32_t*, int32_t*);               \
  template void bin_fill_cpu<T>(const RasterArgs<T>&, const int32_t*, const int32_t*, int32_t*, int32_t*);   \
  template void rasterize_forward_cpu<T>(const RasterArgs<T>&, const int32_t*, const int32_t*, T*, int32_t*, \
                                         T*, T*);                                                            \
  template void rasterize_backward_cpu<T>(const RasterArgs<T>&, int64_t, const int32_t*, const int32_t*,     \
                                          const int32_t*, const int32_t*, const T*, const T*, const int32_t*, \
                                          const T*, const T*, T*, T*, T*, T*);                               \
  template void rasterize_no_tiles_forward_cpu<T>(const RasterArgs<T>&, T*, int32_t*, T*, T*);               \
  template void rasterize_no_tiles_backward_cpu<T>(const RasterArgs<T>&, const T*, const T*, const int32_t*, \
                                                   const T*, const T*, T*, T*, T*, T*);
LGI_INSTANTIATE(float)
LGI_INSTANTIATE(double)
#undef LGI_INSTANTIATE

}  // namespace lgi
