// CPU (OpenMP) projection: one Gaussian per iteration, no shared writes, so results do not depend on the
// number of threads.
#include "project.h"

#include "common.h"

namespace lgi {

// Below this many Gaussians the projection (tens of ns each) runs on one thread: cheaper than the
// synchronisation of a parallel region.
constexpr int64_t kParallelMin = 16384;

template <typename T>
void project_forward_cpu(int64_t n, const T* means, const T* scales, const T* rotations, int height, int width,
                         int tile, T* xys, int32_t* radii, T* conics, int32_t* tiles, int nthreads) {
#pragma omp parallel for num_threads(nthreads) schedule(static) if (n >= kParallelMin)
  for (int64_t g = 0; g < n; ++g) {
    const Projected<T> p = project_one<T>(means[2 * g], means[2 * g + 1], scales[2 * g], scales[2 * g + 1],
                                          rotations[g], height, width, tile);
    xys[2 * g] = p.px;
    xys[2 * g + 1] = p.py;
    conics[3 * g] = p.a;
    conics[3 * g + 1] = p.b;
    conics[3 * g + 2] = p.c;
    radii[g] = p.radius;
    tiles[g] = p.tiles;
  }
}

template <typename T>
void project_backward_cpu(int64_t n, const T* scales, const T* rotations, int height, int width,
                          const T* grad_xys, const T* grad_conics, T* grad_means, T* grad_scales,
                          T* grad_rotations, int nthreads) {
#pragma omp parallel for num_threads(nthreads) schedule(static) if (n >= kParallelMin)
  for (int64_t g = 0; g < n; ++g) {
    const T gx = grad_xys ? grad_xys[2 * g] : T(0), gy = grad_xys ? grad_xys[2 * g + 1] : T(0);
    T ga = T(0), gb = T(0), gc = T(0);
    const T s1 = scales[2 * g], s2 = scales[2 * g + 1];
    const T i1 = T(1) / (s1 * s1), i2 = T(1) / (s2 * s2);
    if (grad_conics && s1 != T(0) && s2 != T(0) && finite_t(i1) && finite_t(i2)) {
      ga = grad_conics[3 * g];
      gb = grad_conics[3 * g + 1];
      gc = grad_conics[3 * g + 2];
    }
    project_one_backward<T>(s1, s2, rotations[g], height, width, gx, gy, ga, gb, gc, grad_means + 2 * g,
                            grad_scales + 2 * g, grad_rotations + g);
    if (ga == T(0) && gb == T(0) && gc == T(0)) {
      // Degenerate scales: 0 * inf would give NaN; the exact gradient through a culled conic is 0.
      grad_scales[2 * g] = T(0);
      grad_scales[2 * g + 1] = T(0);
      grad_rotations[g] = T(0);
    }
  }
}

#define LGI_INSTANTIATE(T)                                                                                \
  template void project_forward_cpu<T>(int64_t, const T*, const T*, const T*, int, int, int, T*, int32_t*,  \
                                       T*, int32_t*, int);                                                 \
  template void project_backward_cpu<T>(int64_t, const T*, const T*, int, int, const T*, const T*, T*, T*,  \
                                        T*, int);
LGI_INSTANTIATE(float)
LGI_INSTANTIATE(double)
#undef LGI_INSTANTIATE

}  // namespace lgi
