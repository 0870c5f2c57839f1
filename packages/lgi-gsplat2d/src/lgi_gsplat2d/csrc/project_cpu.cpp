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
    project_gaussian<T>(g, means, scales, rotations, height, width, tile, xys, radii, conics, tiles);
  }
}

template <typename T>
void project_backward_cpu(int64_t n, const T* scales, const T* rotations, int height, int width,
                          const T* grad_xys, const T* grad_conics, T* grad_means, T* grad_scales,
                          T* grad_rotations, int nthreads) {
#pragma omp parallel for num_threads(nthreads) schedule(static) if (n >= kParallelMin)
  for (int64_t g = 0; g < n; ++g) {
    project_gaussian_backward<T>(g, scales, rotations, height, width, grad_xys, grad_conics, grad_means,
                                 grad_scales, grad_rotations);
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
