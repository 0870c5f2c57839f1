// Projection of 2D Gaussians (unit-square mean, scales, rotation) to pixel space: raw-pointer kernels.
// Shapes are given per argument; every array is contiguous, row-major.
#pragma once

#include <cstdint>

namespace lgi {

// Forward. means [N,2], scales [N,2], rotations [N] (radians) -> xys [N,2], radii [N], conics [N,3],
// tiles [N] (number of tile x tile tiles touched; 0 and radius 0 when culled).
template <typename T>
void project_forward_cpu(int64_t n, const T* means, const T* scales, const T* rotations, int height, int width,
                         int tile, T* xys, int32_t* radii, T* conics, int32_t* tiles, int nthreads);

// Backward. grad_xys [N,2] and grad_conics [N,3] (either may be null: zero) -> grad_means [N,2],
// grad_scales [N,2], grad_rotations [N]. Gaussians with a zero or non-finite inverse scale get zero
// scale/rotation gradients.
template <typename T>
void project_backward_cpu(int64_t n, const T* scales, const T* rotations, int height, int width,
                          const T* grad_xys, const T* grad_conics, T* grad_means, T* grad_scales,
                          T* grad_rotations, int nthreads);

#if defined(LGI_WITH_CUDA)
// CUDA versions: float32 device pointers, launched on `stream` (a cudaStream_t).
void project_forward_cuda(int64_t n, const float* means, const float* scales, const float* rotations,
                          int height, int width, int tile, float* xys, int32_t* radii, float* conics,
                          int32_t* tiles, void* stream);
void project_backward_cuda(int64_t n, const float* scales, const float* rotations, int height, int width,
                           const float* grad_xys, const float* grad_conics, float* grad_means,
                           float* grad_scales, float* grad_rotations, void* stream);
#endif

}  // namespace lgi
