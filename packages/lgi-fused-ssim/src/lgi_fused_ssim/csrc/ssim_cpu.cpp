// Fused SSIM on the CPU: one pass per output row computes the five Gaussian moments separably
// (vertical sums of the input rows, then an 11-tap horizontal filter), the SSIM value and, when
// training, the three partial derivatives. The backward pass filters the three products
// dL/dmap * partial the same way. Rows are independent tasks over OpenMP threads; every value is
// computed in a fixed order and the mean is reduced row by row in row order, so results are bitwise
// identical whatever the thread count.
#include "ssim.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <omp.h>

#include <vector>

namespace lgi_fused_ssim {
namespace {

constexpr float kGauss[kWindow] = LGI_SSIM_GAUSS_TAPS;

// Each row kernel is compiled twice, for x86-64-v3 (AVX2 + FMA) and the baseline, and picked at
// load time, so one cached build runs on any x86-64 machine and runs wide where it can.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define LGI_ROW_KERNEL __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define LGI_ROW_KERNEL
#endif

// out[j] = sum_a kGauss[a] * in[j + a] for j in [0, n): `in` holds n + kWindow - 1 values.
__attribute__((always_inline)) inline void filter_row(const float* __restrict__ in, float* __restrict__ out,
                                                      int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    float s = 0.f;
#pragma GCC unroll 11
    for (int a = 0; a < kWindow; ++a) s += kGauss[a] * in[j + a];
    out[j] = s;
  }
}

// Per-thread scratch of the forward pass; the padded rows keep zero borders for their lifetime.
struct ForwardScratch {
  explicit ForwardScratch(int64_t wo)
      : padded(static_cast<size_t>(5 * (wo + kWindow - 1)), 0.f), filtered(static_cast<size_t>(5 * wo)) {}
  std::vector<float> padded;    // 5 x [Wo + 10]: vertical sums of x, y, xx, yy, xy, zero-padded
  std::vector<float> filtered;  // 5 x [Wo]: the five moments of one output row
};

// One output row of one image plane. x, y: [H, W] planes; row0 = first input row of the window
// (may be negative: rows outside [0, H) are zero). Writes map[Wo] and, when d_* are not null, the
// partials; returns the row sum of the map in double.
LGI_ROW_KERNEL
double forward_row(const float* __restrict__ x, const float* __restrict__ y, int64_t H, int64_t W,
                   int64_t Wo, int64_t pad, int64_t row0, float* __restrict__ padded,
                   float* __restrict__ filtered, float* __restrict__ map, float* __restrict__ d_mu1,
                   float* __restrict__ d_sxx, float* __restrict__ d_sxy) {
  const int64_t stride = Wo + kWindow - 1;
  // Input column c sits at padded index c + pad.
  float* __restrict__ vx = padded + pad;
  float* __restrict__ vy = vx + stride;
  float* __restrict__ vxx = vy + stride;
  float* __restrict__ vyy = vxx + stride;
  float* __restrict__ vxy = vyy + stride;
  for (int64_t j = 0; j < W; ++j) vx[j] = vy[j] = vxx[j] = vyy[j] = vxy[j] = 0.f;
  for (int a = 0; a < kWindow; ++a) {
    const int64_t r = row0 + a;
    if (r < 0 || r >= H) continue;
    const float w = kGauss[a];
    const float* __restrict__ xr = x + r * W;
    const float* __restrict__ yr = y + r * W;
    for (int64_t j = 0; j < W; ++j) {
      const float wx = w * xr[j];
      const float wy = w * yr[j];
      vx[j] += wx;
      vy[j] += wy;
      vxx[j] += wx * xr[j];
      vyy[j] += wy * yr[j];
      vxy[j] += wx * yr[j];
    }
  }
  for (int m = 0; m < 5; ++m) filter_row(padded + m * stride, filtered + m * Wo, Wo);

  const float* __restrict__ mu1 = filtered;
  const float* __restrict__ mu2 = filtered + Wo;
  const float* __restrict__ sxx = filtered + 2 * Wo;
  const float* __restrict__ syy = filtered + 3 * Wo;
  const float* __restrict__ sxy = filtered + 4 * Wo;
  for (int64_t j = 0; j < Wo; ++j) {
    const float m1 = mu1[j], m2 = mu2[j];
    const float a = 2.f * m1 * m2 + kC1;
    const float b = 2.f * (sxy[j] - m1 * m2) + kC2;
    const float c = m1 * m1 + m2 * m2 + kC1;
    const float d = (sxx[j] - m1 * m1) + (syy[j] - m2 * m2) + kC2;
    map[j] = (a * b) / (c * d);
  }
  if (d_mu1 != nullptr) {
    for (int64_t j = 0; j < Wo; ++j) {
      const float m1 = mu1[j], m2 = mu2[j];
      const float a = 2.f * m1 * m2 + kC1;
      const float b = 2.f * (sxy[j] - m1 * m2) + kC2;
      const float c = m1 * m1 + m2 * m2 + kC1;
      const float d = (sxx[j] - m1 * m1) + (syy[j] - m2 * m2) + kC2;
      const float s = map[j];
      const float inv_cd = 1.f / (c * d);
      d_mu1[j] = 2.f * m2 * (b - a) * inv_cd + 2.f * m1 * s * (1.f / d - 1.f / c);
      d_sxx[j] = -s / d;
      d_sxy[j] = 2.f * a * inv_cd;
    }
  }
  // Sequential on purpose: a fixed summation order, not vectorised (no -ffast-math).
  double sum = 0.0;
  for (int64_t j = 0; j < Wo; ++j) sum += map[j];
  return sum;
}

// One row r of dL/dx for one plane. grad: rows of dL/dmap, row i at grad + i * grad_row_stride
// (stride 0: one shared row); d_*: [Ho, Wo] partials; off = pad - kRadius * 2 maps row r / column c
// of the image to the first map row / column of its window. padded: 3 x [W + 10] zero-bordered.
LGI_ROW_KERNEL
void backward_row(const float* __restrict__ x, const float* __restrict__ y, int64_t W, int64_t Ho,
                  int64_t Wo, int64_t off, int64_t r, const float* __restrict__ grad,
                  int64_t grad_row_stride, const float* __restrict__ d_mu1, const float* __restrict__ d_sxx,
                  const float* __restrict__ d_sxy, float* __restrict__ padded, float* __restrict__ filtered,
                  float* __restrict__ out) {
  const int64_t stride = W + kWindow - 1;
  // Map column j sits at padded index j - off.
  float* __restrict__ v1 = padded - off;
  float* __restrict__ v2 = v1 + stride;
  float* __restrict__ v3 = v2 + stride;
  for (int64_t j = 0; j < Wo; ++j) v1[j] = v2[j] = v3[j] = 0.f;
  for (int a = 0; a < kWindow; ++a) {
    const int64_t i = r + off + a;
    if (i < 0 || i >= Ho) continue;
    const float w = kGauss[a];
    const float* __restrict__ g = grad + i * grad_row_stride;
    const float* __restrict__ p1 = d_mu1 + i * Wo;
    const float* __restrict__ p2 = d_sxx + i * Wo;
    const float* __restrict__ p3 = d_sxy + i * Wo;
    for (int64_t j = 0; j < Wo; ++j) {
      const float wg = w * g[j];
      v1[j] += wg * p1[j];
      v2[j] += wg * p2[j];
      v3[j] += wg * p3[j];
    }
  }
  for (int k = 0; k < 3; ++k) filter_row(padded + k * stride, filtered + k * W, W);
  const float* __restrict__ f1 = filtered;
  const float* __restrict__ f2 = filtered + W;
  const float* __restrict__ f3 = filtered + 2 * W;
  const float* __restrict__ xr = x + r * W;
  const float* __restrict__ yr = y + r * W;
  for (int64_t c = 0; c < W; ++c) out[c] = f1[c] + 2.f * xr[c] * f2[c] + yr[c] * f3[c];
}

void check_image(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.scalar_type() == at::kFloat, name, " must be float32");
  TORCH_CHECK(t.dim() == 4, name, " must have 4 dimensions [B, C, H, W]");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

}  // namespace

std::vector<at::Tensor> ssim_forward_cpu(const at::Tensor& img1, const at::Tensor& img2, bool same,
                                         bool train) {
  check_image(img1, "img1");
  check_image(img2, "img2");
  TORCH_CHECK(img1.sizes() == img2.sizes(), "img1 and img2 must have the same shape");
  const int64_t B = img1.size(0), C = img1.size(1), H = img1.size(2), W = img1.size(3);
  TORCH_CHECK(H >= kWindow && W >= kWindow, "images must be at least 11x11");
  const int64_t pad = same ? kRadius : 0;
  const int64_t Ho = H + 2 * pad - (kWindow - 1), Wo = W + 2 * pad - (kWindow - 1);
  const int64_t planes = B * C;

  auto opts = img1.options();
  at::Tensor map = at::empty({B, C, Ho, Wo}, opts);
  at::Tensor d_mu1, d_sxx, d_sxy;
  if (train) {
    d_mu1 = at::empty({B, C, Ho, Wo}, opts);
    d_sxx = at::empty({B, C, Ho, Wo}, opts);
    d_sxy = at::empty({B, C, Ho, Wo}, opts);
  } else {
    d_mu1 = d_sxx = d_sxy = at::empty({0}, opts);
  }
  std::vector<double> row_sums(static_cast<size_t>(planes * Ho));

  const float* x = img1.data_ptr<float>();
  const float* y = img2.data_ptr<float>();
  float* m = map.data_ptr<float>();
  float* p1 = train ? d_mu1.data_ptr<float>() : nullptr;
  float* p2 = train ? d_sxx.data_ptr<float>() : nullptr;
  float* p3 = train ? d_sxy.data_ptr<float>() : nullptr;
  const int64_t tasks = planes * Ho;

#pragma omp parallel num_threads(at::get_num_threads())
  {
    ForwardScratch scratch(Wo);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t plane = t / Ho, i = t % Ho;
      const int64_t in_off = plane * H * W, out_off = plane * Ho * Wo + i * Wo;
      row_sums[static_cast<size_t>(t)] = forward_row(
          x + in_off, y + in_off, H, W, Wo, pad, i - pad, scratch.padded.data(), scratch.filtered.data(),
          m + out_off, train ? p1 + out_off : nullptr, train ? p2 + out_off : nullptr,
          train ? p3 + out_off : nullptr);
    }
  }
  double total = 0.0;
  for (double s : row_sums) total += s;
  at::Tensor mean = at::full({}, static_cast<float>(total / static_cast<double>(tasks * Wo)), opts);
  return {map, mean, d_mu1, d_sxx, d_sxy};
}

at::Tensor ssim_backward_cpu(const at::Tensor& img1, const at::Tensor& img2, const at::Tensor& dl_dmap,
                             const at::Tensor& dm_dmu1, const at::Tensor& dm_dsxx,
                             const at::Tensor& dm_dsxy, bool same) {
  check_image(img1, "img1");
  check_image(img2, "img2");
  check_image(dm_dmu1, "dm_dmu1");
  check_image(dm_dsxx, "dm_dsxx");
  check_image(dm_dsxy, "dm_dsxy");
  TORCH_CHECK(img1.sizes() == img2.sizes(), "img1 and img2 must have the same shape");
  const int64_t B = img1.size(0), C = img1.size(1), H = img1.size(2), W = img1.size(3);
  const int64_t pad = same ? kRadius : 0;
  const int64_t Ho = H + 2 * pad - (kWindow - 1), Wo = W + 2 * pad - (kWindow - 1);
  const at::IntArrayRef map_shape = dm_dmu1.sizes();
  TORCH_CHECK(map_shape == at::IntArrayRef({B, C, Ho, Wo}), "partials must be [B, C, Ho, Wo]");
  TORCH_CHECK(dm_dsxx.sizes() == map_shape && dm_dsxy.sizes() == map_shape, "partials must match");
  TORCH_CHECK(dl_dmap.device().is_cpu() && dl_dmap.scalar_type() == at::kFloat, "dl_dmap must be CPU float32");
  const bool shared = dl_dmap.numel() == 1;
  TORCH_CHECK(shared || (dl_dmap.sizes() == map_shape && dl_dmap.is_contiguous()),
              "dl_dmap must be [B, C, Ho, Wo] contiguous or a single element");

  at::Tensor grad = at::empty_like(img1);
  const float* x = img1.data_ptr<float>();
  const float* y = img2.data_ptr<float>();
  const float* g = dl_dmap.data_ptr<float>();
  const float* p1 = dm_dmu1.data_ptr<float>();
  const float* p2 = dm_dsxx.data_ptr<float>();
  const float* p3 = dm_dsxy.data_ptr<float>();
  float* out = grad.data_ptr<float>();
  const float shared_value = shared ? g[0] : 0.f;
  const int64_t off = pad - 2 * kRadius;
  const int64_t tasks = B * C * H;

#pragma omp parallel num_threads(at::get_num_threads())
  {
    std::vector<float> padded(static_cast<size_t>(3 * (W + kWindow - 1)), 0.f);
    std::vector<float> filtered(static_cast<size_t>(3 * W));
    std::vector<float> shared_row(shared ? static_cast<size_t>(Wo) : 0, shared_value);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t plane = t / H, r = t % H;
      const int64_t map_off = plane * Ho * Wo;
      const float* grows = shared ? shared_row.data() : g + map_off;
      backward_row(x + plane * H * W, y + plane * H * W, W, Ho, Wo, off, r, grows, shared ? 0 : Wo,
                   p1 + map_off, p2 + map_off, p3 + map_off, padded.data(), filtered.data(),
                   out + plane * H * W + r * W);
    }
  }
  return grad;
}

}  // namespace lgi_fused_ssim
