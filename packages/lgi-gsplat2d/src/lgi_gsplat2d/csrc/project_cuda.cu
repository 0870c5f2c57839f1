// CUDA projection: one thread per Gaussian, the same per-Gaussian math as the CPU (common.h).
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "common.h"
#include "project.h"

namespace lgi {
namespace {

constexpr int kThreads = 256;  // threads per block

__global__ void project_forward_kernel(int64_t n, const float* means, const float* scales, const float* rotations,
                                       int height, int width, int tile, float* xys, int32_t* radii,
                                       float* conics, int32_t* tiles) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= n) return;
  project_gaussian<float>(g, means, scales, rotations, height, width, tile, xys, radii, conics, tiles);
}

__global__ void project_backward_kernel(int64_t n, const float* scales, const float* rotations, int height,
                                        int width, const float* grad_xys, const float* grad_conics,
                                        float* grad_means, float* grad_scales, float* grad_rotations) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= n) return;
  project_gaussian_backward<float>(g, scales, rotations, height, width, grad_xys, grad_conics, grad_means,
                                   grad_scales, grad_rotations);
}

void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

}  // namespace

void project_forward_cuda(int64_t n, const float* means, const float* scales, const float* rotations,
                          int height, int width, int tile, float* xys, int32_t* radii, float* conics,
                          int32_t* tiles, void* stream) {
  if (n == 0) return;
  const unsigned blocks = static_cast<unsigned>((n + kThreads - 1) / kThreads);
  project_forward_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      n, means, scales, rotations, height, width, tile, xys, radii, conics, tiles);
  check_launch("project_forward_cuda");
}

void project_backward_cuda(int64_t n, const float* scales, const float* rotations, int height, int width,
                           const float* grad_xys, const float* grad_conics, float* grad_means,
                           float* grad_scales, float* grad_rotations, void* stream) {
  if (n == 0) return;
  const unsigned blocks = static_cast<unsigned>((n + kThreads - 1) / kThreads);
  project_backward_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      n, scales, rotations, height, width, grad_xys, grad_conics, grad_means, grad_scales, grad_rotations);
  check_launch("project_backward_cuda");
}

}  // namespace lgi
