// Fused SSIM on CUDA. One thread block computes a kTileH x kTileW tile of its output: it stages the
// tile plus its (kWindow - 1)-pixel halo in shared memory (zeros outside the image), filters rows,
// then columns, and finishes per pixel. The mean is reduced without atomics: one block per map row
// (a fixed tree in shared memory), then one block over the row sums, so it is bitwise reproducible.
#include "ssim.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>  // not ATen/cuda/CUDAContext.h: that needs cuSPARSE/cuBLAS headers

namespace lgi_fused_ssim {
namespace {

__constant__ float cGauss[kWindow] = LGI_SSIM_GAUSS_TAPS;

constexpr int kTileW = 32;                      // output columns per block: one warp per row
constexpr int kTileH = 16;                      // output rows per block
constexpr int kHaloW = kTileW + kWindow - 1;    // staged input columns per block
constexpr int kHaloH = kTileH + kWindow - 1;    // staged input rows per block
constexpr int kThreads = kTileW * kTileH;       // one thread per output pixel
constexpr int kReduceThreads = 256;             // threads of the row-sum and final-sum blocks
constexpr int kMaxPlanes = 65535;               // gridDim.z limit: B * C planes

// The column pass of a thread's output pixel: out[m] = sum_a cGauss[a] s_h[m][threadIdx.y + a][threadIdx.x]
// for the N row-filtered planes s_h[m], in tap order.
template <int N>
__device__ __forceinline__ void filter_column(const float (*s_h)[kHaloH][kTileW], float (&out)[N]) {
#pragma unroll
  for (int m = 0; m < N; ++m) out[m] = 0.f;
#pragma unroll
  for (int a = 0; a < kWindow; ++a) {
    const float w = cGauss[a];
#pragma unroll
    for (int m = 0; m < N; ++m) out[m] += w * s_h[m][threadIdx.y + a][threadIdx.x];
  }
}

// img1, img2: [planes, H, W]; map and (when d_mu1 != nullptr) the partials: [planes, Ho, Wo].
// pad = 5 ("same") or 0 ("valid"): output (i, j) covers input rows i - pad .. i - pad + 10.
__global__ void __launch_bounds__(kThreads)
ssim_forward_kernel(const float* __restrict__ img1, const float* __restrict__ img2, int H, int W, int Ho,
                    int Wo, int pad, float* __restrict__ map, float* __restrict__ d_mu1,
                    float* __restrict__ d_sxx, float* __restrict__ d_sxy) {
  __shared__ float s_x[kHaloH][kHaloW];
  __shared__ float s_y[kHaloH][kHaloW];
  __shared__ float s_h[5][kHaloH][kTileW];  // row-filtered x, y, xx, yy, xy

  const int64_t plane = blockIdx.z;
  const float* x = img1 + plane * H * W;
  const float* y = img2 + plane * H * W;
  const int ox0 = blockIdx.x * kTileW, oy0 = blockIdx.y * kTileH;
  const int ix0 = ox0 - pad, iy0 = oy0 - pad;
  const int tid = threadIdx.y * kTileW + threadIdx.x;

  for (int idx = tid; idx < kHaloH * kHaloW; idx += kThreads) {
    const int sy = idx / kHaloW, sx = idx % kHaloW;
    const int gy = iy0 + sy, gx = ix0 + sx;
    const bool inside = gy >= 0 && gy < H && gx >= 0 && gx < W;
    s_x[sy][sx] = inside ? x[gy * W + gx] : 0.f;
    s_y[sy][sx] = inside ? y[gy * W + gx] : 0.f;
  }
  __syncthreads();

  for (int idx = tid; idx < kHaloH * kTileW; idx += kThreads) {
    const int sy = idx / kTileW, sx = idx % kTileW;
    Moments h;
#pragma unroll
    for (int b = 0; b < kWindow; ++b) add_tap(h, cGauss[b], s_x[sy][sx + b], s_y[sy][sx + b]);
    s_h[0][sy][sx] = h.x;
    s_h[1][sy][sx] = h.y;
    s_h[2][sy][sx] = h.xx;
    s_h[3][sy][sx] = h.yy;
    s_h[4][sy][sx] = h.xy;
  }
  __syncthreads();

  const int i = oy0 + threadIdx.y, j = ox0 + threadIdx.x;
  if (i >= Ho || j >= Wo) return;
  float mo[5];  // mu1, mu2, Sxx, Syy, Sxy
  filter_column<5>(s_h, mo);
  const float mu1 = mo[0], mu2 = mo[1];
  const SsimTerms t = ssim_terms(mu1, mu2, mo[2], mo[3], mo[4]);
  const float s = (t.a * t.b) / (t.c * t.d);
  const int64_t o = plane * Ho * Wo + static_cast<int64_t>(i) * Wo + j;
  map[o] = s;
  if (d_mu1 != nullptr) {
    const float inv_cd = 1.f / (t.c * t.d);
    d_mu1[o] = 2.f * mu2 * (t.b - t.a) * inv_cd + 2.f * mu1 * s * (1.f / t.d - 1.f / t.c);
    d_sxx[o] = -s / t.d;
    d_sxy[o] = 2.f * t.a * inv_cd;
  }
}

// img1, img2, grad_out: [planes, H, W]; dl_dmap: [planes, Ho, Wo] or one shared value
// (shared_grad); partials: [planes, Ho, Wo]. off = pad - 10: image row r gathers map rows
// r + off .. r + off + 10.
__global__ void __launch_bounds__(kThreads)
ssim_backward_kernel(const float* __restrict__ img1, const float* __restrict__ img2,
                     const float* __restrict__ dl_dmap, bool shared_grad, const float* __restrict__ d_mu1,
                     const float* __restrict__ d_sxx, const float* __restrict__ d_sxy, int H, int W, int Ho,
                     int Wo, int off, float* __restrict__ grad_out) {
  __shared__ float s_p[3][kHaloH][kHaloW];  // dL/dmap times each partial, zero outside the map
  __shared__ float s_h[3][kHaloH][kTileW];  // the same, row-filtered

  const int64_t plane = blockIdx.z;
  const int64_t map_base = plane * Ho * Wo;
  const int ox0 = blockIdx.x * kTileW, oy0 = blockIdx.y * kTileH;
  const int mx0 = ox0 + off, my0 = oy0 + off;
  const int tid = threadIdx.y * kTileW + threadIdx.x;
  const float g_shared = shared_grad ? dl_dmap[0] : 0.f;

  for (int idx = tid; idx < kHaloH * kHaloW; idx += kThreads) {
    const int sy = idx / kHaloW, sx = idx % kHaloW;
    const int mi = my0 + sy, mj = mx0 + sx;
    float p1 = 0.f, p2 = 0.f, p3 = 0.f;
    if (mi >= 0 && mi < Ho && mj >= 0 && mj < Wo) {
      const int64_t o = map_base + static_cast<int64_t>(mi) * Wo + mj;
      const float g = shared_grad ? g_shared : dl_dmap[o];
      p1 = g * d_mu1[o];
      p2 = g * d_sxx[o];
      p3 = g * d_sxy[o];
    }
    s_p[0][sy][sx] = p1;
    s_p[1][sy][sx] = p2;
    s_p[2][sy][sx] = p3;
  }
  __syncthreads();

  for (int idx = tid; idx < kHaloH * kTileW; idx += kThreads) {
    const int sy = idx / kTileW, sx = idx % kTileW;
    float a1 = 0.f, a2 = 0.f, a3 = 0.f;
#pragma unroll
    for (int b = 0; b < kWindow; ++b) {
      a1 += cGauss[b] * s_p[0][sy][sx + b];
      a2 += cGauss[b] * s_p[1][sy][sx + b];
      a3 += cGauss[b] * s_p[2][sy][sx + b];
    }
    s_h[0][sy][sx] = a1;
    s_h[1][sy][sx] = a2;
    s_h[2][sy][sx] = a3;
  }
  __syncthreads();

  const int r = oy0 + threadIdx.y, c = ox0 + threadIdx.x;
  if (r >= H || c >= W) return;
  float f[3];
  filter_column<3>(s_h, f);
  const int64_t o = plane * H * W + static_cast<int64_t>(r) * W + c;
  grad_out[o] = f[0] + 2.f * img1[o] * f[1] + img2[o] * f[2];
}

// Tree sum of kReduceThreads doubles in shared memory, in a fixed order; the result is in s[0].
__device__ void block_sum(double* s) {
  for (int stride = kReduceThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) s[threadIdx.x] += s[threadIdx.x + stride];
    __syncthreads();
  }
}

// map: [rows, Wo] -> row_sums: [rows], one block per row.
__global__ void __launch_bounds__(kReduceThreads)
row_sum_kernel(const float* __restrict__ map, int64_t Wo, double* __restrict__ row_sums) {
  __shared__ double s[kReduceThreads];
  const float* row = map + static_cast<int64_t>(blockIdx.x) * Wo;
  double acc = 0.0;
  for (int64_t j = threadIdx.x; j < Wo; j += kReduceThreads) acc += row[j];
  s[threadIdx.x] = acc;
  __syncthreads();
  block_sum(s);
  if (threadIdx.x == 0) row_sums[blockIdx.x] = s[0];
}

// row_sums: [rows] -> mean: [] = sum / count, one block.
__global__ void __launch_bounds__(kReduceThreads)
mean_kernel(const double* __restrict__ row_sums, int64_t rows, double count, float* __restrict__ mean) {
  __shared__ double s[kReduceThreads];
  double acc = 0.0;
  for (int64_t k = threadIdx.x; k < rows; k += kReduceThreads) acc += row_sums[k];
  s[threadIdx.x] = acc;
  __syncthreads();
  block_sum(s);
  if (threadIdx.x == 0) mean[0] = static_cast<float>(s[0] / count);
}

dim3 tile_grid(int64_t rows, int64_t cols, int64_t planes) {
  TORCH_CHECK(planes <= kMaxPlanes, "B * C must be at most ", kMaxPlanes, " on CUDA, got ", planes);
  return dim3(static_cast<unsigned>((cols + kTileW - 1) / kTileW),
              static_cast<unsigned>((rows + kTileH - 1) / kTileH), static_cast<unsigned>(planes));
}

}  // namespace

std::vector<at::Tensor> ssim_forward_cuda(const at::Tensor& img1, const at::Tensor& img2, bool same,
                                          bool train) {
  const Geometry geo = forward_geometry(img1, img2, same, at::kCUDA);
  const c10::cuda::CUDAGuard guard(img1.device());
  const int64_t H = geo.H, W = geo.W, Ho = geo.Ho, Wo = geo.Wo;
  const int64_t planes = geo.B * geo.C;
  const auto opts = img1.options();
  const ForwardOutputs fo = forward_outputs(geo, opts, train);
  at::Tensor row_sums = at::empty({planes * Ho}, opts.dtype(at::kDouble));
  at::Tensor mean = at::empty({}, opts);

  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  ssim_forward_kernel<<<tile_grid(Ho, Wo, planes), dim3(kTileW, kTileH), 0, stream>>>(
      img1.data_ptr<float>(), img2.data_ptr<float>(), static_cast<int>(H), static_cast<int>(W),
      static_cast<int>(Ho), static_cast<int>(Wo), static_cast<int>(geo.pad), fo.map.data_ptr<float>(),
      train ? fo.d_mu1.data_ptr<float>() : nullptr, train ? fo.d_sxx.data_ptr<float>() : nullptr,
      train ? fo.d_sxy.data_ptr<float>() : nullptr);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  row_sum_kernel<<<static_cast<unsigned>(planes * Ho), kReduceThreads, 0, stream>>>(
      fo.map.data_ptr<float>(), Wo, row_sums.data_ptr<double>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  mean_kernel<<<1, kReduceThreads, 0, stream>>>(row_sums.data_ptr<double>(), planes * Ho,
                                                static_cast<double>(planes * Ho * Wo), mean.data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {fo.map, mean, fo.d_mu1, fo.d_sxx, fo.d_sxy};
}

at::Tensor ssim_backward_cuda(const at::Tensor& img1, const at::Tensor& img2, const at::Tensor& dl_dmap,
                              const at::Tensor& dm_dmu1, const at::Tensor& dm_dsxx,
                              const at::Tensor& dm_dsxy, bool same) {
  const Geometry geo = backward_geometry(img1, img2, dl_dmap, dm_dmu1, dm_dsxx, dm_dsxy, same, at::kCUDA);
  const c10::cuda::CUDAGuard guard(img1.device());
  const int64_t H = geo.H, W = geo.W;
  const bool shared = dl_dmap.numel() == 1;

  at::Tensor grad = at::empty_like(img1);
  cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  ssim_backward_kernel<<<tile_grid(H, W, geo.B * geo.C), dim3(kTileW, kTileH), 0, stream>>>(
      img1.data_ptr<float>(), img2.data_ptr<float>(), dl_dmap.data_ptr<float>(), shared,
      dm_dmu1.data_ptr<float>(), dm_dsxx.data_ptr<float>(), dm_dsxy.data_ptr<float>(), static_cast<int>(H),
      static_cast<int>(W), static_cast<int>(geo.Ho), static_cast<int>(geo.Wo),
      static_cast<int>(geo.pad - 2 * kRadius),
      grad.data_ptr<float>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grad;
}

}  // namespace lgi_fused_ssim
