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
// Rows handed to an OpenMP thread at a time. Dynamic scheduling keeps a busy (shared) machine from
// stalling the whole call on one descheduled thread; every row is computed the same way whichever
// thread takes it, so the results do not depend on the schedule.
constexpr int kRowsPerChunk = 4;
// Below this many output pixels a call runs on one thread: waking the OpenMP team costs more than
// the work (badly so on an oversubscribed machine, where a woken thread may wait a time slice).
constexpr int64_t kMinParallelPixels = 1 << 15;

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

// Per-thread scratch; the padded rows keep their zero borders for their whole lifetime.
struct Scratch {
  Scratch(int moments, int64_t padded_width, int64_t filtered_width, int64_t zero_width)
      : padded(static_cast<size_t>(moments * padded_width), 0.f),
        filtered(static_cast<size_t>(moments * filtered_width)),
        zeros(static_cast<size_t>(zero_width), 0.f) {}
  std::vector<float> padded;    // moments x [padded_width]: vertical sums, zero-padded for filter_row
  std::vector<float> filtered;  // moments x [filtered_width]: the filtered output row
  std::vector<float> zeros;     // stands in for rows outside the image, so every window has 11 rows
};

// One output row of one image plane. xr, yr: the kWindow input rows of the window (the zero row
// where the window leaves the image). Writes map[Wo] and, when d_mu1 is not null, the partials;
// returns the row sum of the map in double.
LGI_ROW_KERNEL
double forward_row(const float* const* xr, const float* const* yr, int64_t W, int64_t Wo, int64_t pad,
                   float* __restrict__ padded, float* __restrict__ filtered, float* __restrict__ map,
                   float* __restrict__ d_mu1, float* __restrict__ d_sxx, float* __restrict__ d_sxy) {
  const int64_t stride = Wo + kWindow - 1;
  // Input column c sits at padded index c + pad.
  float* __restrict__ vx = padded + pad;
  float* __restrict__ vy = vx + stride;
  float* __restrict__ vxx = vy + stride;
  float* __restrict__ vyy = vxx + stride;
  float* __restrict__ vxy = vyy + stride;
  const float* x[kWindow];
  const float* y[kWindow];
  for (int a = 0; a < kWindow; ++a) x[a] = xr[a], y[a] = yr[a];
  // Column-wise with the 11 taps unrolled: the five sums stay in registers.
  for (int64_t j = 0; j < W; ++j) {
    float sx = 0.f, sy = 0.f, sxx = 0.f, syy = 0.f, sxy = 0.f;
#pragma GCC unroll 11
    for (int a = 0; a < kWindow; ++a) {
      const float xv = x[a][j], yv = y[a][j];
      const float wx = kGauss[a] * xv, wy = kGauss[a] * yv;
      sx += wx;
      sy += wy;
      sxx += wx * xv;
      syy += wy * yv;
      sxy += wx * yv;
    }
    vx[j] = sx;
    vy[j] = sy;
    vxx[j] = sxx;
    vyy[j] = syy;
    vxy[j] = sxy;
  }
  for (int m = 0; m < 5; ++m) filter_row(padded + m * stride, filtered + m * Wo, Wo);

  const float* __restrict__ mu1 = filtered;
  const float* __restrict__ mu2 = filtered + Wo;
  const float* __restrict__ exx = filtered + 2 * Wo;
  const float* __restrict__ eyy = filtered + 3 * Wo;
  const float* __restrict__ exy = filtered + 4 * Wo;
  // Both loops evaluate ssim with the same expression, so the map does not depend on `train`.
  if (d_mu1 == nullptr) {
    for (int64_t j = 0; j < Wo; ++j) {
      const float m1 = mu1[j], m2 = mu2[j];
      const float a = 2.f * m1 * m2 + kC1;
      const float b = 2.f * (exy[j] - m1 * m2) + kC2;
      const float inv_c = 1.f / (m1 * m1 + m2 * m2 + kC1);
      const float inv_d = 1.f / ((exx[j] - m1 * m1) + (eyy[j] - m2 * m2) + kC2);
      map[j] = a * b * (inv_c * inv_d);
    }
  } else {
    for (int64_t j = 0; j < Wo; ++j) {
      const float m1 = mu1[j], m2 = mu2[j];
      const float a = 2.f * m1 * m2 + kC1;
      const float b = 2.f * (exy[j] - m1 * m2) + kC2;
      const float inv_c = 1.f / (m1 * m1 + m2 * m2 + kC1);
      const float inv_d = 1.f / ((exx[j] - m1 * m1) + (eyy[j] - m2 * m2) + kC2);
      const float inv_cd = inv_c * inv_d;
      const float s = a * b * inv_cd;
      map[j] = s;
      d_mu1[j] = 2.f * m2 * (b - a) * inv_cd + 2.f * m1 * s * (inv_d - inv_c);
      d_sxx[j] = -s * inv_d;
      d_sxy[j] = 2.f * a * inv_cd;
    }
  }
  // Sequential on purpose: a fixed summation order, not vectorised (no -ffast-math).
  double sum = 0.0;
  for (int64_t j = 0; j < Wo; ++j) sum += map[j];
  return sum;
}

// One row r of dL/dx for one plane. g, p1, p2, p3: the kWindow rows of dL/dmap and of the three
// partials whose windows contain row r (zero rows outside the map). off = pad - 2 * kRadius maps
// column c of the image to the first map column of its window. padded: 3 x [W + 10] zero-bordered.
LGI_ROW_KERNEL
void backward_row(const float* __restrict__ xr, const float* __restrict__ yr, int64_t W, int64_t Wo,
                  int64_t off, const float* const* g_rows, const float* const* p1_rows,
                  const float* const* p2_rows, const float* const* p3_rows, float* __restrict__ padded,
                  float* __restrict__ filtered, float* __restrict__ out) {
  const int64_t stride = W + kWindow - 1;
  // Map column j sits at padded index j - off.
  float* __restrict__ v1 = padded - off;
  float* __restrict__ v2 = v1 + stride;
  float* __restrict__ v3 = v2 + stride;
  const float* g[kWindow];
  const float* p1[kWindow];
  const float* p2[kWindow];
  const float* p3[kWindow];
  for (int a = 0; a < kWindow; ++a) g[a] = g_rows[a], p1[a] = p1_rows[a], p2[a] = p2_rows[a], p3[a] = p3_rows[a];
  for (int64_t j = 0; j < Wo; ++j) {
    float s1 = 0.f, s2 = 0.f, s3 = 0.f;
#pragma GCC unroll 11
    for (int a = 0; a < kWindow; ++a) {
      const float wg = kGauss[a] * g[a][j];
      s1 += wg * p1[a][j];
      s2 += wg * p2[a][j];
      s3 += wg * p3[a][j];
    }
    v1[j] = s1;
    v2[j] = s2;
    v3[j] = s3;
  }
  for (int k = 0; k < 3; ++k) filter_row(padded + k * stride, filtered + k * W, W);
  const float* __restrict__ f1 = filtered;
  const float* __restrict__ f2 = filtered + W;
  const float* __restrict__ f3 = filtered + 2 * W;
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

#pragma omp parallel num_threads(at::get_num_threads()) if (tasks * Wo >= kMinParallelPixels)
  {
    Scratch scratch(5, Wo + kWindow - 1, Wo, W);
    const float* xr[kWindow];
    const float* yr[kWindow];
#pragma omp for schedule(dynamic, kRowsPerChunk)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t plane = t / Ho, i = t % Ho;
      for (int a = 0; a < kWindow; ++a) {
        const int64_t r = i - pad + a;  // input row of tap a; zero outside the image
        const bool inside = r >= 0 && r < H;
        xr[a] = inside ? x + (plane * H + r) * W : scratch.zeros.data();
        yr[a] = inside ? y + (plane * H + r) * W : scratch.zeros.data();
      }
      const int64_t out_off = (plane * Ho + i) * Wo;
      row_sums[static_cast<size_t>(t)] =
          forward_row(xr, yr, W, Wo, pad, scratch.padded.data(), scratch.filtered.data(), m + out_off,
                      train ? p1 + out_off : nullptr, train ? p2 + out_off : nullptr,
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

#pragma omp parallel num_threads(at::get_num_threads()) if (tasks * W >= kMinParallelPixels)
  {
    Scratch scratch(3, W + kWindow - 1, W, Wo);
    std::vector<float> shared_row(shared ? static_cast<size_t>(Wo) : 0, shared_value);
    const float* g_rows[kWindow];
    const float* p1_rows[kWindow];
    const float* p2_rows[kWindow];
    const float* p3_rows[kWindow];
#pragma omp for schedule(dynamic, kRowsPerChunk)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t plane = t / H, r = t % H;
      for (int a = 0; a < kWindow; ++a) {
        const int64_t i = r + off + a;  // map row of tap a; zero outside the map
        const bool inside = i >= 0 && i < Ho;
        const int64_t row_off = (plane * Ho + i) * Wo;
        const float* zero = scratch.zeros.data();
        g_rows[a] = !inside ? zero : shared ? shared_row.data() : g + row_off;
        p1_rows[a] = inside ? p1 + row_off : zero;
        p2_rows[a] = inside ? p2 + row_off : zero;
        p3_rows[a] = inside ? p3 + row_off : zero;
      }
      const int64_t img_off = (plane * H + r) * W;
      backward_row(x + img_off, y + img_off, W, Wo, off, g_rows, p1_rows, p2_rows, p3_rows,
                   scratch.padded.data(), scratch.filtered.data(), out + img_off);
    }
  }
  return grad;
}

}  // namespace lgi_fused_ssim
