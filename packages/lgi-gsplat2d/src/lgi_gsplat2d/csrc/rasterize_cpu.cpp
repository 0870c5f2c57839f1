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
#include <vector>

#include "common.h"
#include "rasterize.h"

namespace lgi {
namespace {

constexpr int kStats = 6;  // S_x, S_y, S_xx, S_xy, S_yy, S_0

// exp(x) for x <= 0, relative error below 4e-7: exp(x) = 2^n * 2^f, n = round(x log2 e), |f| <= 1/2,
// 2^f by its Taylor series to degree 6. Branch-free so the 16-wide loops vectorise; NaN and x < -87
// return exp(-87) (such lanes are always masked by the caller).
inline float exp_neg(float x) {
  x = x > -87.0f ? x : -87.0f;
  const float t = x * 1.44269504088896341f;
  const float n = (t + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23 trick)
  const float f = (t - n) * 0.693147180559945309f;  // 2^(t-n) = e^f, |f| <= 0.347
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

// Row of 16 lanes starting at column j0: weights w[l] (0 outside [la, lb] or beyond the cutoff); also q.
template <typename T>
inline void row_weights(const Gauss<T>& G, const T* px, T dy, int la, int lb, T* q, T* w) {
  const T b2dy = G.b2 * dy, cdy2 = G.c * dy * dy;
  for (int l = 0; l < kTile; ++l) {
    const T dx = px[l] - G.x;
    q[l] = q_form(G.a, dx, b2dy, cdy2);
    const bool in = (l >= la) & (l <= lb) & (q[l] <= T(kCutoff));
    const T ex = exp_neg(T(-0.5) * q[l]);
    w[l] = in ? ex : T(0);
  }
}

template <typename T>
inline void row_q(const Gauss<T>& G, const T* px, T dy, T* q) {
  const T b2dy = G.b2 * dy, cdy2 = G.c * dy * dy;
  for (int l = 0; l < kTile; ++l) {
    const T dx = px[l] - G.x;
    q[l] = q_form(G.a, dx, b2dy, cdy2);
  }
}

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

// Turn a Gaussian's summed moments into gradients (see the file comment). S has kStats + C entries.
template <typename T>
inline void finish_gaussian(const RasterArgs<T>& a, int64_t g, const T* S, T* grad_xys, T* grad_conics,
                            T* grad_colors, T* grad_opacities) {
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
void forward_tile_sum(const RasterArgs<T>& a, const TileGeom& tg, const PixBox* boxes, const int32_t* gid,
                      int32_t e0, int32_t e1, T* acc, T* col, T* out) {
  const int C = a.channels;
  std::fill(acc, acc + static_cast<size_t>(C) * kTilePixels, T(0));
  T px[kTile], q[kTile], w[kTile];
  for (int l = 0; l < kTile; ++l) px[l] = T(tg.j0 + l) + T(0.5);
  for (int32_t e = e0; e < e1; ++e) {
    const int64_t g = gid[e];
    const Gauss<T> G(a, g);
    const PixBox& bx = boxes[g];
    const int ra = std::max(bx.i0, tg.i0), rb = std::min(bx.i1, tg.i0 + tg.ht - 1);
    const int la = std::max(bx.j0, tg.j0) - tg.j0, lb = std::min(bx.j1, tg.j0 + tg.wt - 1) - tg.j0;
    const T o = a.opacities ? a.opacities[g] : T(1);
    for (int ch = 0; ch < C; ++ch) col[ch] = a.colors[g * C + ch] * o;
    for (int i = ra; i <= rb; ++i) {
      row_weights(G, px, (T(i) + T(0.5)) - G.y, la, lb, q, w);
      T* row = acc + (i - tg.i0) * kTile;
      for (int ch = 0; ch < C; ++ch) {
        const T cv = col[ch];
        T* r = row + ch * kTilePixels;
        for (int l = 0; l < kTile; ++l) r[l] += cv * w[l];
      }
    }
  }
  for (int r = 0; r < tg.ht; ++r) {
    for (int l = 0; l < tg.wt; ++l) {
      T* o = out + ((static_cast<int64_t>(tg.i0) + r) * a.width + tg.j0 + l) * C;
      for (int ch = 0; ch < C; ++ch) o[ch] = acc[ch * kTilePixels + r * kTile + l];
    }
  }
}

template <typename T>
void forward_tile_topk(const RasterArgs<T>& a, const TileGeom& tg, const PixBox* boxes, const int32_t* gid,
                       int32_t e0, int32_t e1, T* qbest, int32_t* ebest, T* col, T* out, int32_t* sel,
                       T* wsum) {
  const int C = a.channels, K = a.k;
  int cnt[kTilePixels];
  T lim[kTilePixels];
  const T l9 = lim9<T>();
  for (int p = 0; p < kTilePixels; ++p) {
    cnt[p] = 0;
    lim[p] = l9;
  }
  T px[kTile], q[kTile];
  for (int l = 0; l < kTile; ++l) px[l] = T(tg.j0 + l) + T(0.5);
  for (int32_t e = e0; e < e1; ++e) {
    const int64_t g = gid[e];
    const Gauss<T> G(a, g);
    const PixBox& bx = boxes[g];
    const int ra = std::max(bx.i0, tg.i0), rb = std::min(bx.i1, tg.i0 + tg.ht - 1);
    const int la = std::max(bx.j0, tg.j0) - tg.j0, lb = std::min(bx.j1, tg.j0 + tg.wt - 1) - tg.j0;
    for (int i = ra; i <= rb; ++i) {
      row_q(G, px, (T(i) + T(0.5)) - G.y, q);
      const int base = (i - tg.i0) * kTile;
      for (int l = la; l <= lb; ++l) {
        const int p = base + l;
        if (q[l] < lim[p]) topk_insert(qbest + p * K, ebest + p * K, cnt[p], lim[p], K, q[l], e);
      }
    }
  }
  for (int r = 0; r < tg.ht; ++r) {
    for (int l = 0; l < tg.wt; ++l) {
      const int p = r * kTile + l;
      const int64_t P = (static_cast<int64_t>(tg.i0) + r) * a.width + tg.j0 + l;
      for (int ch = 0; ch < C; ++ch) col[ch] = T(0);
      T wt = T(0);
      for (int kk = 0; kk < cnt[p]; ++kk) {
        const int64_t g = gid[ebest[p * K + kk]];
        const T w = exp_neg(T(-0.5) * qbest[p * K + kk]);
        wt += w;
        for (int ch = 0; ch < C; ++ch) col[ch] += w * a.colors[g * C + ch];
        sel[P * K + kk] = ebest[p * K + kk];
      }
      for (int kk = cnt[p]; kk < K; ++kk) sel[P * K + kk] = -1;
      const T denom = wt + T(kTopkEps);
      for (int ch = 0; ch < C; ++ch) out[P * C + ch] = col[ch] / denom;
      wsum[P] = wt;
    }
  }
}

// ----------------------------------------------------------------------------------------------- backward

// Sum mode: one Gaussian-outer pass over the tile, lane accumulators, one partial row per entry.
template <typename T>
void backward_tile_sum(const RasterArgs<T>& a, const TileGeom& tg, const PixBox* boxes, const int32_t* gid,
                       const int32_t* slot, int32_t e0, int32_t e1, const T* grad_out, bool need_geom,
                       bool need_col, T* gt, T* lanes, T* partials) {
  const int C = a.channels, G = kStats + C;
  std::fill(gt, gt + static_cast<size_t>(C) * kTilePixels, T(0));
  for (int r = 0; r < tg.ht; ++r) {
    for (int l = 0; l < tg.wt; ++l) {
      const T* go = grad_out + ((static_cast<int64_t>(tg.i0) + r) * a.width + tg.j0 + l) * C;
      for (int ch = 0; ch < C; ++ch) gt[ch * kTilePixels + r * kTile + l] = go[ch];
    }
  }
  T px[kTile], q[kTile], w[kTile], gc[kTile];
  for (int l = 0; l < kTile; ++l) px[l] = T(tg.j0 + l) + T(0.5);
  for (int32_t e = e0; e < e1; ++e) {
    const int64_t g = gid[e];
    const Gauss<T> Gs(a, g);
    const PixBox& bx = boxes[g];
    const int ra = std::max(bx.i0, tg.i0), rb = std::min(bx.i1, tg.i0 + tg.ht - 1);
    const int la = std::max(bx.j0, tg.j0) - tg.j0, lb = std::min(bx.j1, tg.j0 + tg.wt - 1) - tg.j0;
    std::fill(lanes, lanes + static_cast<size_t>(G) * kTile, T(0));
    T* sx = lanes;
    T* sy = lanes + kTile;
    T* sxx = lanes + 2 * kTile;
    T* sxy = lanes + 3 * kTile;
    T* syy = lanes + 4 * kTile;
    T* s0 = lanes + 5 * kTile;
    const T* colg = a.colors + g * C;
    for (int i = ra; i <= rb; ++i) {
      const T dy = (T(i) + T(0.5)) - Gs.y;
      row_weights(Gs, px, dy, la, lb, q, w);
      const T* grow = gt + (i - tg.i0) * kTile;
      if (need_geom || a.opacities) {
        for (int l = 0; l < kTile; ++l) gc[l] = T(0);
        for (int ch = 0; ch < C; ++ch) {
          const T cv = colg[ch];
          const T* gr = grow + ch * kTilePixels;
          for (int l = 0; l < kTile; ++l) gc[l] += cv * gr[l];
        }
        for (int l = 0; l < kTile; ++l) {
          const T dx = px[l] - Gs.x;
          const T t = w[l] * gc[l];
          s0[l] += t;
          sx[l] += t * dx;
          sy[l] += t * dy;
          sxx[l] += t * dx * dx;
          sxy[l] += t * dx * dy;
          syy[l] += t * dy * dy;
        }
      }
      if (need_col) {
        for (int ch = 0; ch < C; ++ch) {
          T* sc = lanes + (kStats + ch) * kTile;
          const T* gr = grow + ch * kTilePixels;
          for (int l = 0; l < kTile; ++l) sc[l] += gr[l] * w[l];
        }
      }
    }
    T* dst = partials + static_cast<int64_t>(slot[e]) * G;
    for (int s = 0; s < G; ++s) {
      T acc = T(0);
      for (int l = 0; l < kTile; ++l) acc += lanes[s * kTile + l];
      dst[s] = acc;
    }
  }
}

// Top-K mode: pixel-outer over the saved selections; per-entry accumulators local to the tile.
template <typename T>
void backward_tile_topk(const RasterArgs<T>& a, const TileGeom& tg, const int32_t* gid, const int32_t* slot,
                        int32_t e0, int32_t e1, const T* grad_out, const T* out, const int32_t* sel,
                        const T* wsum, bool need_geom, bool need_col, T* acc, T* partials) {
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
        const Gauss<T> Gs(a, g);
        const T dx = (T(j) + T(0.5)) - Gs.x, dy = dy0 - Gs.y;
        const T w = exp_neg(T(-0.5) * q_form(Gs.a, dx, Gs.b2 * dy, Gs.c * dy * dy));
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
                           T* out, int32_t* sel, T* wsum) {
  const int TX = tiles_x(a.width), NT = TX * tiles_y(a.height);
  const std::vector<PixBox> boxes = boxes_of(a);
#pragma omp parallel num_threads(a.nthreads)
  {
    std::vector<T> acc(static_cast<size_t>(a.channels) * kTilePixels), col(a.channels);
    std::vector<T> qbest(a.mode == kModeTopk ? static_cast<size_t>(kTilePixels) * a.k : 0);
    std::vector<int32_t> ebest(qbest.size());
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < NT; ++t) {
      const TileGeom tg(t, TX, a.height, a.width);
      if (a.mode == kModeTopk) {
        forward_tile_topk(a, tg, boxes.data(), list_gid, tile_offsets[t], tile_offsets[t + 1], qbest.data(),
                          ebest.data(), col.data(), out, sel, wsum);
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
                            const T* grad_out, const T* out, const int32_t* sel, const T* wsum, T* grad_xys,
                            T* grad_conics, T* grad_colors, T* grad_opacities) {
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
    std::vector<T> scratch(a.mode == kModeTopk ? static_cast<size_t>(max_entries) * G
                                               : static_cast<size_t>(C) * kTilePixels);
    std::vector<T> lanes(static_cast<size_t>(G) * kTile);
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < NT; ++t) {
      const int32_t e0 = tile_offsets[t], e1 = tile_offsets[t + 1];
      if (e0 == e1) continue;
      const TileGeom tg(t, TX, a.height, a.width);
      if (a.mode == kModeTopk) {
        backward_tile_topk(a, tg, list_gid, list_slot, e0, e1, grad_out, out, sel, wsum, need_geom, need_col,
                           scratch.data(), partials.data());
      } else {
        backward_tile_sum(a, tg, boxes.data(), list_gid, list_slot, e0, e1, grad_out, need_geom, need_col,
                          scratch.data(), lanes.data(), partials.data());
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
void rasterize_no_tiles_forward_cpu(const RasterArgs<T>& a, T* out, int32_t* sel, T* wsum) {
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
          }
          for (int kk = cnt; kk < K; ++kk) sel[P * K + kk] = -1;
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
                                     const T* wsum, T* grad_xys, T* grad_conics, T* grad_colors,
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
          T t, wc;  // t = w dL/dw (per unit opacity in sum mode), wc = the colour gradient factor
          const T w = exp_neg(T(-0.5) * q);
          if (a.mode == kModeTopk) {
            bool found = false;
            for (int kk = 0; kk < K && sel[P * K + kk] >= 0; ++kk) found |= sel[P * K + kk] == g;
            if (!found) continue;
            const T denom = wsum[P] + T(kTopkEps);
            T dldw = T(0);
            for (int ch = 0; ch < C; ++ch) dldw += gp[ch] * (colg[ch] - out[P * C + ch]);
            t = w * (dldw / denom);
            wc = w / denom;
          } else {
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
                                         T*);                                                                \
  template void rasterize_backward_cpu<T>(const RasterArgs<T>&, int64_t, const int32_t*, const int32_t*,     \
                                          const int32_t*, const int32_t*, const T*, const T*, const int32_t*, \
                                          const T*, T*, T*, T*, T*);                                         \
  template void rasterize_no_tiles_forward_cpu<T>(const RasterArgs<T>&, T*, int32_t*, T*);                   \
  template void rasterize_no_tiles_backward_cpu<T>(const RasterArgs<T>&, const T*, const T*, const int32_t*, \
                                                   const T*, T*, T*, T*, T*);
LGI_INSTANTIATE(float)
LGI_INSTANTIATE(double)
#undef LGI_INSTANTIATE

}  // namespace lgi
