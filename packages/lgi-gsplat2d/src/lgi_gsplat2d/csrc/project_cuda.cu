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
  const Projected<float> p = project_one<float>(means[2 * g], means[2 * g + 1], scales[2 * g], scales[2 * g + 1],
                                                rotations[g], height, width, tile);
  xys[2 * g] = p.px;
  xys[2 * g + 1] = p.py;
  conics[3 * g] = p.a;
  conics[3 * g + 1] = p.b;
  conics[3 * g + 2] = p.c;
  radii[g] = p.radius;
  tiles[g] = p.tiles;
}

__global__ void project_backward_kernel(int64_t n, const float* scales, const float* rotations, int height,
                                        int width, const float* grad_xys, const float* grad_conics,
                                        float* grad_means, float* grad_scales, float* grad_rotations) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= n) return;
  const float gx = grad_xys ? grad_xys[2 * g] : 0.0f, gy = grad_xys ? grad_xys[2 * g + 1] : 0.0f;
  const float s1 = scales[2 * g], s2 = scales[2 * g + 1];
  const float i1 = 1.0f / (s1 * s1), i2 = 1.0f / (s2 * s2);
  float ga = 0.0f, gb = 0.0f, gc = 0.0f;
  if (grad_conics && s1 != 0.0f && s2 != 0.0f && finite_t(i1) && finite_t(i2)) {
    ga = grad_conics[3 * g];
    gb = grad_conics[3 * g + 1];
    gc = grad_conics[3 * g + 2];
  }
  project_one_backward<float>(s1, s2, rotations[g], height, width, gx, gy, ga, gb, gc, grad_means + 2 * g,
                              grad_scales + 2 * g, grad_rotations + g);
  if (ga == 0.0f && gb == 0.0f && gc == 0.0f) {
    grad_scales[2 * g] = 0.0f;
    grad_scales[2 * g + 1] = 0.0f;
    grad_rotations[g] = 0.0f;
  }
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
