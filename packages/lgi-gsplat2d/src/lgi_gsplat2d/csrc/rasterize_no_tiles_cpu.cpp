// CPU (OpenMP) untiled rasterizer, for tests and comparison: every pixel visits every Gaussian (forward,
// parallel over rows); the backward runs one Gaussian per iteration over its pixel box, so each gradient
// is a sum in raster order, whatever the number of threads.
#include "cpu_common.h"

namespace lgi {

using namespace cpu;  // NOLINT: the helpers of cpu_common.h

// -------------------------------------------------------------------------------------------- no tiles

template <typename T>
void rasterize_no_tiles_forward_cpu(const RasterArgs<T>& a, T* out, int32_t* sel, T* wsel, T* wsum) {
  const int C = a.channels, K = a.k;
  const std::vector<PixBox> boxes = boxes_of(a);
  const T l9 = lim9<T>(), floor = topk_floor<T>(a.mode);
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
          if (is_topk(a.mode)) {
            if (q < lim) topk_insert(qs.data(), ids.data(), cnt, lim, K, q, static_cast<int32_t>(g));
          } else if (q <= T(kCutoff)) {
            const T w = exp_neg(T(-0.5) * q) * (a.opacities ? a.opacities[g] : T(1));
            for (int ch = 0; ch < C; ++ch) acc[ch] += w * a.colors[g * C + ch];
          }
        }
        if (is_topk(a.mode)) {
          T wt = T(0);
          for (int kk = 0; kk < cnt; ++kk) {
            const T w = topk_weight(exp_neg(T(-0.5) * qs[kk]), floor);
            wt += w;
            for (int ch = 0; ch < C; ++ch) acc[ch] += w * a.colors[ids[kk] * C + ch];
            sel[P * K + kk] = ids[kk];
            wsel[P * K + kk] = w;
          }
          for (int kk = cnt; kk < K; ++kk) {
            sel[P * K + kk] = -1;
            wsel[P * K + kk] = T(0);
          }
          for (int ch = 0; ch < C; ++ch) acc[ch] /= wt + topk_eps<T>(a.mode);
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
  const T floor = topk_floor<T>(a.mode);
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
          if (is_topk(a.mode)) {
            int found = -1;
            for (int kk = 0; kk < K && sel[P * K + kk] >= 0; ++kk) {
              if (sel[P * K + kk] == g) found = kk;
            }
            if (found < 0) continue;
            w = wsel[P * K + found];
            const T denom = wsum[P] + topk_eps<T>(a.mode);
            t = topk_t(gp, colg, out + P * C, C, w, floor, denom);
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
  template void rasterize_no_tiles_forward_cpu<T>(const RasterArgs<T>&, T*, int32_t*, T*, T*);               \
  template void rasterize_no_tiles_backward_cpu<T>(const RasterArgs<T>&, const T*, const T*, const int32_t*, \
                                                   const T*, const T*, T*, T*, T*, T*);
LGI_INSTANTIATE(float)
LGI_INSTANTIATE(double)
#undef LGI_INSTANTIATE

}  // namespace lgi
