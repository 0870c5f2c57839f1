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
#include <memory>
#include <stdexcept>

#include "cpu_common.h"

namespace lgi {
namespace {

using namespace cpu;  // NOLINT: the helpers of cpu_common.h

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
    const auto [ra, rb, la, lb] = tg.clip(boxes[g]);
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

// One pixel of the top-K blend: the weights of its cnt kept q (qb, already exp(-q/2)), their weighted
// colours summed into acc[0..C) and, when sel is given, the entries and weights the backward pass reads.
// Returns the weight sum. NC > 0 fixes the channel count at compile time so that acc stays in registers
// (summed through memory, every term waits for the previous store); the additions are the same either way.
template <int NC, typename T>
LGI_INLINE T blend_topk_pixel(const T* colors, int C, const int32_t* gid, const int32_t* eb, const T* qb, int cnt,
                              T floor, T* acc, int32_t* sel, T* wsel) {
  const int CC = NC > 0 ? NC : C;
  for (int ch = 0; ch < CC; ++ch) acc[ch] = T(0);
  T wt = T(0);
  for (int kk = 0; kk < cnt; ++kk) {
    const T w = topk_weight(qb[kk], floor);
    const T* cg = colors + static_cast<int64_t>(gid[eb[kk]]) * CC;
    wt += w;
    for (int ch = 0; ch < CC; ++ch) acc[ch] += w * cg[ch];
    if (sel) {
      sel[kk] = eb[kk];
      wsel[kk] = w;
    }
  }
  return wt;
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
  // Per pixel, the K-th entry of its full list as (lim, lid): its q and its entry (lim9 and the largest
  // entry until the list is full). The scalar insertion reads lid; the tie path below tests both in the
  // vector test. The AVX-512 insertion keeps its own tie order and updates lid only in the tie path.
  MaskT<T> lid[kTile];
  std::fill(cnt, cnt + kTilePixels, 0);
  std::fill(lid, lid + kTile, MaskT<T>{} + std::numeric_limits<int32_t>::max());
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
    const T key = q_form(G.a, dx, G.b2 * dy, G.c * dy * dy);
    order.emplace_back(key == key ? key : std::numeric_limits<T>::infinity(), e);  // NaN would break sort
  }
  std::sort(order.begin(), order.end());
  // The lane loop below admits ties with the K-th entry (q == lim) and lets the insertion reject those the
  // lists' order keeps out: a call per lane and candidate. Where Gaussians tie, they tie everywhere, and
  // such a tile (two equal keys: identical Gaussians, e.g. a forged file's canvas-covering copies) tests
  // the order in the vector test instead: (q, e) enters only below the K-th entry's (lim, lid), so
  // identical Gaussians past the K-th cost a row test each, about what a sum costs (3-4 times as much
  // before). The same entries are kept either way; other tiles keep the cheaper test.
  auto visit = [&](auto ties) {
    constexpr bool kTies = decltype(ties)::value;
    for (const auto& item : order) {
      const int32_t e = item.second;
      const int64_t g = gid[e];
      const Gauss<T> G(a, g);
      const auto [ra, rb, la, lb] = tg.clip(boxes[g]);
      for (int i = ra; i <= rb; ++i) {
        const T dy = (T(i) + T(0.5)) - G.y;
        VecT<T> dx;
        const VecT<T> q = row_q(G, px, dy, &dx);
        const int r = i - tg.i0;
        MaskT<T> admit;
        if constexpr (kTies) {
          admit = (q < lim[r]) | ((q == lim[r]) & (MaskT<T>{} + e < lid[r]));
        } else {
          admit = q <= lim[r];
        }
        uint32_t bits = lane_bits((lane >= la) & (lane <= lb) & admit);
        while (bits) {
          const int l = __builtin_ctz(bits);
          bits &= bits - 1;
          const int p = r * kTile + l;
#if defined(__AVX512F__)
          if constexpr (kFloat) {
            if (simd) {
              lim[r][l] = topk_insert16(qbest + p * KS, ebest + p * KS, cnt[p], K, q[l], e, lim[r][l]);
              if constexpr (kTies) {
                if (cnt[p] == K) lid[r][l] = ebest[p * KS + K - 1];
              }
              continue;
            }
          }
#endif
          const T ql = q[l], lp = lim[r][l];
          if (!kTies && !(ql < lp || (ql == lp && e < lid[r][l]))) continue;  // the tie path tested it
          topk_insert_lex(qbest + p * KS, ebest + p * KS, cnt[p], K, ql, e);
          if (cnt[p] == K) {
            lim[r][l] = qbest[p * KS + K - 1];
            lid[r][l] = ebest[p * KS + K - 1];
          }
        }
      }
    }
  };
  bool ties = false;
  for (size_t i = 1; i < order.size() && !ties; ++i) ties = order[i].first == order[i - 1].first;
  if (ties) {
    visit(std::true_type{});
  } else {
    visit(std::false_type{});
  }
  // Weights of every kept q at once (slots past a pixel's count hold stale values and are ignored).
  for (int s = 0; s < kTilePixels * KS; s += kTile) {
    VecT<T> qv;
    std::memcpy(&qv, qbest + s, sizeof(qv));
    const VecT<T> wv = exp_neg(T(-0.5) * qv);
    std::memcpy(qbest + s, &wv, sizeof(wv));
  }
  const T floor = topk_floor<T>(a.mode);
  const T eps = topk_eps<T>(a.mode);
  const bool save = sel != nullptr;  // the selections the backward pass reads (a plain render skips them)
  for (int r = 0; r < tg.ht; ++r) {
    for (int l = 0; l < tg.wt; ++l) {
      const int p = r * kTile + l;
      const int64_t P = (static_cast<int64_t>(tg.i0) + r) * a.width + tg.j0 + l;
      int32_t* sp = save ? sel + P * K : nullptr;
      T* wp = save ? wsel + P * K : nullptr;
      T wt;
      if (C == 3) {
        T acc[3];
        wt = blend_topk_pixel<3>(a.colors, 3, gid, ebest + p * KS, qbest + p * KS, cnt[p], floor, acc, sp, wp);
        for (int ch = 0; ch < 3; ++ch) out[P * 3 + ch] = acc[ch] / (wt + eps);
      } else {
        wt = blend_topk_pixel<0>(a.colors, C, gid, ebest + p * KS, qbest + p * KS, cnt[p], floor, col, sp, wp);
        for (int ch = 0; ch < C; ++ch) out[P * C + ch] = col[ch] / (wt + eps);
      }
      if (save) {
        for (int kk = cnt[p]; kk < K; ++kk) {
          sp[kk] = -1;
          wp[kk] = T(0);
        }
        wsum[P] = wt;
      }
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
    const auto [ra, rb, la, lb] = tg.clip(boxes[g]);
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

// A pixel of the tile with a top-K selection: column j, row centre dy0 = i + 0.5, its index P, its selection
// sp = sel + P K, its rows of grad_out and out, and the normalization denom = wsum + eps.
template <typename T>
struct SelectedPixel {
  int j;
  T dy0;
  int64_t P;
  const int32_t* sp;
  const T* gp;
  const T* op;
  T denom;
};

// Calls f(pixel) for each pixel of the tile that selected at least one entry, row by row.
template <typename T, typename F>
LGI_INLINE void for_each_selected_pixel(const RasterArgs<T>& a, const TileGeom& tg, const int32_t* sel,
                                        const T* grad_out, const T* out, const T* wsum, F&& f) {
  for (int r = 0; r < tg.ht; ++r) {
    const int i = tg.i0 + r;
    const T dy0 = T(i) + T(0.5);
    for (int l = 0; l < tg.wt; ++l) {
      const int j = tg.j0 + l;
      const int64_t P = static_cast<int64_t>(i) * a.width + j;
      const int32_t* sp = sel + P * a.k;
      if (sp[0] < 0) continue;
      f(SelectedPixel<T>{j, dy0, P, sp, grad_out + P * a.channels, out + P * a.channels,
                         wsum[P] + topk_eps<T>(a.mode)});
    }
  }
}

// Scalar form (any T, any C): each selected entry adds its terms to its kStats + C accumulators one by one.
template <typename T>
void backward_tile_topk_scalar(const RasterArgs<T>& a, const TileGeom& tg, const int32_t* gid, const int32_t* slot,
                               int32_t e0, int32_t e1, const T* grad_out, const T* out, const int32_t* sel,
                               const T* wsel, const T* wsum, bool need_geom, bool need_col, T* acc, T* partials) {
  const int C = a.channels, K = a.k, G = kStats + C;
  std::fill(acc, acc + static_cast<size_t>(e1 - e0) * G, T(0));
  const T floor = topk_floor<T>(a.mode);
  const auto add_entries = [&](const SelectedPixel<T>& px) __attribute__((always_inline)) {
    for (int kk = 0; kk < K && px.sp[kk] >= 0; ++kk) {
      const int32_t e = px.sp[kk];
      const int64_t g = gid[e];
      const T dx = (T(px.j) + T(0.5)) - a.xys[2 * g], dy = px.dy0 - a.xys[2 * g + 1];
      const T w = wsel[px.P * K + kk];
      T* A = acc + static_cast<int64_t>(e - e0) * G;
      const T* colg = a.colors + g * C;
      if (need_geom) {
        const T t = topk_t(px.gp, colg, px.op, C, w, floor, px.denom);
        A[0] += t * dx;
        A[1] += t * dy;
        A[2] += t * dx * dx;
        A[3] += t * dx * dy;
        A[4] += t * dy * dy;
      }
      if (need_col) {
        const T wd = w / px.denom;
        for (int ch = 0; ch < C; ++ch) A[kStats + ch] += px.gp[ch] * wd;
      }
    }
  };
  for_each_selected_pixel(a, tg, sel, grad_out, out, wsum, add_entries);
  for (int32_t e = e0; e < e1; ++e) {
    std::memcpy(partials + static_cast<int64_t>(slot[e]) * G, acc + static_cast<int64_t>(e - e0) * G,
                sizeof(T) * G);
  }
}

// Vector form (float, kStats + C <= 16): an entry's accumulators are one 16-lane vector
// [S_x, S_y, S_xx, S_xy, S_yy, S_0, S_c0 .. S_c(C-1), 0 ..], and each selected entry adds its terms with one
// vector multiply-add instead of kStats + C scalar read-modify-writes; the entries' centres and colours are
// gathered into tile-local arrays first. Every lane computes the same IEEE operations, in the same order, as
// the scalar form ((t dx) dx, gp_c (w / denom), ...), so both give bitwise the same gradients.
void backward_tile_topk_vec(const RasterArgs<float>& a, const TileGeom& tg, const int32_t* gid,
                            const int32_t* slot, int32_t e0, int32_t e1, const float* grad_out, const float* out,
                            const int32_t* sel, const float* wsel, const float* wsum, bool need_geom, bool need_col,
                            VecT<float>* acc, float* ex, float* colv, float* partials) {
  using V = VecT<float>;
  using M = MaskT<float>;
  const int C = a.channels, K = a.k, G = kStats + C;
  const int32_t ne = e1 - e0;
  std::fill(acc, acc + ne, V{});
  for (int32_t e = 0; e < ne; ++e) {
    const int64_t g = gid[e0 + e];
    ex[2 * e] = a.xys[2 * g];
    ex[2 * e + 1] = a.xys[2 * g + 1];
    for (int ch = 0; ch < C; ++ch) colv[static_cast<int64_t>(e) * C + ch] = a.colors[g * C + ch];
  }
  const M lane = lane_index<float>();
  // Left factors: lanes 0, 2, 3 take t dx, lanes 1, 4 t dy, colour lanes gp_c. Right factors: 1, 1, dx, dy, dy,
  // then w / denom on the colour lanes (lane 5, S_0, and the lanes past the colours stay 0).
  const M is_tdx = (lane == 0) | (lane == 2) | (lane == 3), is_tdy = (lane == 1) | (lane == 4);
  const M is_one = lane <= 1, is_dx = lane == 2, is_dy = (lane == 3) | (lane == 4);
  const M is_col = (lane >= kStats) & (lane < G);
  const V zero{}, one = splat(1.0f);
  const float floor = topk_floor<float>(a.mode);
  const auto add_entries = [&](const SelectedPixel<float>& px) __attribute__((always_inline)) {
    V gpv{};
    if (need_col) {
      for (int ch = 0; ch < C; ++ch) gpv[kStats + ch] = px.gp[ch];
    }
    for (int kk = 0; kk < K && px.sp[kk] >= 0; ++kk) {
      const int32_t e = px.sp[kk] - e0;
      const float dx = (float(px.j) + 0.5f) - ex[2 * e], dy = px.dy0 - ex[2 * e + 1];
      const float w = wsel[px.P * K + kk];
      float tdx = 0.0f, tdy = 0.0f;
      if (need_geom) {
        const float* colg = colv + static_cast<int64_t>(e) * C;
        const float t = topk_t(px.gp, colg, px.op, C, w, floor, px.denom);
        tdx = t * dx;
        tdy = t * dy;
      }
      const float wd = need_col ? w / px.denom : 0.0f;
      const V left = is_tdx ? splat(tdx) : (is_tdy ? splat(tdy) : gpv);
      const V right = is_one ? one : (is_dx ? splat(dx) : (is_dy ? splat(dy) : (is_col ? splat(wd) : zero)));
      acc[e] += left * right;
    }
  };
  for_each_selected_pixel(a, tg, sel, grad_out, out, wsum, add_entries);
  for (int32_t e = 0; e < ne; ++e) {
    float* dst = partials + static_cast<int64_t>(slot[e0 + e]) * G;
    for (int k = 0; k < G; ++k) dst[k] = acc[e][k];
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------- binning, passes

// Binning is one sequential counting sort over the intersections (a few ms at 50k Gaussians): cheaper
// than the synchronisation of parallel stages, which on a loaded 2-core machine can cost a scheduler
// quantum each. Each pass then has a single parallel region.
template <typename T>
int64_t rasterize_forward_cpu(const RasterArgs<T>& a, const int32_t* num_tiles_hit, int32_t* gauss_offsets,
                              int32_t* tile_offsets, int32_t* boxes_out, const ListAllocator& alloc, T* out,
                              int32_t* sel, T* wsel, T* wsum) {
  const int TX = tiles_x(a.width), NT = TX * tiles_y(a.height);
  PixBox* boxes = reinterpret_cast<PixBox*>(boxes_out);
  std::vector<int32_t> pos(static_cast<size_t>(NT), 0);  // tile counts, then write cursors
  int64_t total = 0;
  gauss_offsets[0] = 0;
  for (int64_t g = 0; g < a.n; ++g) {
    const PixBox b = pixel_box(double(a.xys[2 * g]), double(a.xys[2 * g + 1]), a.radii[g], a.height, a.width);
    boxes[g] = b;
    const int cnt = box_tiles(b);
    if (cnt != num_tiles_hit[g]) return g;
    total += cnt;
    if (total > std::numeric_limits<int32_t>::max()) {
      throw std::length_error("more than 2^31 tile intersections; render at a lower resolution");
    }
    gauss_offsets[g + 1] = static_cast<int32_t>(total);
    if (cnt == 0) continue;
    for (int ty = b.i0 / kTile; ty <= b.i1 / kTile; ++ty) {
      for (int tx = b.j0 / kTile; tx <= b.j1 / kTile; ++tx) ++pos[ty * TX + tx];
    }
  }
  tile_offsets[0] = 0;
  for (int t = 0; t < NT; ++t) {
    tile_offsets[t + 1] = tile_offsets[t] + pos[t];
    pos[t] = tile_offsets[t];
  }
  int32_t* list_gid = nullptr;
  int32_t* list_slot = nullptr;
  alloc(total, &list_gid, &list_slot);
  for (int64_t g = 0; g < a.n; ++g) {
    const PixBox& b = boxes[g];
    if (b.empty()) continue;
    int32_t s = gauss_offsets[g];  // slots in the Gaussian's row-major tile order
    for (int ty = b.i0 / kTile; ty <= b.i1 / kTile; ++ty) {
      for (int tx = b.j0 / kTile; tx <= b.j1 / kTile; ++tx) {
        const int32_t e = pos[ty * TX + tx]++;
        list_gid[e] = static_cast<int32_t>(g);
        list_slot[e] = s++;
      }
    }
  }
#pragma omp parallel num_threads(a.nthreads)
  {
    std::vector<VecT<T>> acc(static_cast<size_t>(a.channels) * kTile), lim(kTile);
    std::vector<T> col(a.channels);
    std::vector<T> qbest(is_topk(a.mode) ? static_cast<size_t>(kTilePixels) * topk_stride<T>(a.k) : 0);
    std::vector<int32_t> ebest(qbest.size());
    std::vector<std::pair<T, int32_t>> order;
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < NT; ++t) {
      const TileGeom tg(t, TX, a.height, a.width);
      if (is_topk(a.mode)) {
        forward_tile_topk(a, tg, boxes, list_gid, tile_offsets[t], tile_offsets[t + 1], qbest.data(),
                          ebest.data(), lim.data(), order, col.data(), out, sel, wsel, wsum);
      } else {
        forward_tile_sum(a, tg, boxes, list_gid, tile_offsets[t], tile_offsets[t + 1], acc.data(), col.data(),
                         out);
      }
    }
  }
  return -1;
}

template <typename T>
void rasterize_backward_cpu(const RasterArgs<T>& a, int64_t m, const int32_t* gauss_offsets,
                            const int32_t* tile_offsets, const int32_t* boxes_in, const int32_t* list_gid,
                            const int32_t* list_slot, const T* grad_out, const T* out, const int32_t* sel,
                            const T* wsel, const T* wsum, T* grad_xys, T* grad_conics, T* grad_colors,
                            T* grad_opacities) {
  const int C = a.channels, G = kStats + C;
  const int TX = tiles_x(a.width), NT = TX * tiles_y(a.height);
  const bool need_geom = grad_xys != nullptr, need_col = grad_colors != nullptr;
  const PixBox* boxes = reinterpret_cast<const PixBox*>(boxes_in);
  // Every slot is written by its tile, so no zero fill.
  std::unique_ptr<T[]> partials(new T[static_cast<size_t>(m) * G]);
  int32_t max_entries = 0;
  for (int t = 0; t < NT; ++t) max_entries = std::max(max_entries, tile_offsets[t + 1] - tile_offsets[t]);
#pragma omp parallel num_threads(a.nthreads)
  {
    const bool vec = std::is_same<T, float>::value && G <= kTile;  // backward_tile_topk_vec's condition
    std::vector<T> acc(is_topk(a.mode) && !vec ? static_cast<size_t>(max_entries) * G : 0), S(G);
    std::vector<VecT<float>> vacc(is_topk(a.mode) && vec ? static_cast<size_t>(max_entries) : 0);
    std::vector<float> ex(vacc.size() * 2), colv(vacc.size() * C);
    std::vector<VecT<T>> gt(a.mode == kModeSum ? static_cast<size_t>(C) * kTile : 0), scol(C);
#pragma omp for schedule(dynamic, 1)
    for (int t = 0; t < NT; ++t) {
      const int32_t e0 = tile_offsets[t], e1 = tile_offsets[t + 1];
      if (e0 == e1) continue;
      const TileGeom tg(t, TX, a.height, a.width);
      if (is_topk(a.mode)) {
        if constexpr (std::is_same<T, float>::value) {
          if (vec) {
            backward_tile_topk_vec(a, tg, list_gid, list_slot, e0, e1, grad_out, out, sel, wsel, wsum, need_geom,
                                   need_col, vacc.data(), ex.data(), colv.data(), partials.get());
            continue;
          }
        }
        backward_tile_topk_scalar(a, tg, list_gid, list_slot, e0, e1, grad_out, out, sel, wsel, wsum, need_geom,
                                  need_col, acc.data(), partials.get());
      } else {
        backward_tile_sum(a, tg, boxes, list_gid, list_slot, e0, e1, grad_out, need_geom, need_col, gt.data(),
                          scol.data(), partials.get());
      }
    }
    // (implicit barrier) then each Gaussian's slots, in slot order.
#pragma omp for schedule(static)
    for (int64_t g = 0; g < a.n; ++g) {
      std::fill(S.begin(), S.end(), T(0));
      for (int32_t s = gauss_offsets[g]; s < gauss_offsets[g + 1]; ++s) {
        const T* row = partials.get() + static_cast<int64_t>(s) * G;
        for (int k = 0; k < G; ++k) S[k] += row[k];
      }
      finish_gaussian(a, g, S.data(), grad_xys, grad_conics, grad_colors, grad_opacities);
    }
  }
}

#define LGI_INSTANTIATE(T)                                                                                   \
  template int64_t rasterize_forward_cpu<T>(const RasterArgs<T>&, const int32_t*, int32_t*, int32_t*,        \
                                            int32_t*, const ListAllocator&, T*, int32_t*, T*, T*);           \
  template void rasterize_backward_cpu<T>(const RasterArgs<T>&, int64_t, const int32_t*, const int32_t*,     \
                                          const int32_t*, const int32_t*, const int32_t*, const T*, const T*, \
                                          const int32_t*, const T*, const T*, T*, T*, T*, T*);
LGI_INSTANTIATE(float)
LGI_INSTANTIATE(double)
#undef LGI_INSTANTIATE

}  // namespace lgi
