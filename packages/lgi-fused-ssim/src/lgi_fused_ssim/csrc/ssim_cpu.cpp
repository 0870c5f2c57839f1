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

// ssim of one pixel as the CPU rounds it, A B (1/C 1/D), with the reciprocals the partials reuse.
struct PixelSsim {
  SsimTerms t;
  float inv_c, inv_d, inv_cd, s;
};

__attribute__((always_inline)) inline PixelSsim pixel_ssim(float mu1, float mu2, float sxx, float syy, float sxy) {
  PixelSsim p;
  p.t = ssim_terms(mu1, mu2, sxx, syy, sxy);
  p.inv_c = 1.f / p.t.c;
  p.inv_d = 1.f / p.t.d;
  p.inv_cd = p.inv_c * p.inv_d;
  p.s = p.t.a * p.t.b * p.inv_cd;
  return p;
}

// Row `row` of plane `plane` of a [planes, rows, width] array, or `zero` (a row of zeros) outside the plane.
inline const float* row_or_zero(const float* base, int64_t plane, int64_t row, int64_t rows, int64_t width,
                                const float* zero) {
  return row >= 0 && row < rows ? base + (plane * rows + row) * width : zero;
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
    Moments s;
#pragma GCC unroll 11
    for (int a = 0; a < kWindow; ++a) add_tap(s, kGauss[a], x[a][j], y[a][j]);
    vx[j] = s.x;
    vy[j] = s.y;
    vxx[j] = s.xx;
    vyy[j] = s.yy;
    vxy[j] = s.xy;
  }
  for (int m = 0; m < 5; ++m) filter_row(padded + m * stride, filtered + m * Wo, Wo);

  const float* __restrict__ mu1 = filtered;
  const float* __restrict__ mu2 = filtered + Wo;
  const float* __restrict__ exx = filtered + 2 * Wo;
  const float* __restrict__ eyy = filtered + 3 * Wo;
  const float* __restrict__ exy = filtered + 4 * Wo;
  // Both loops evaluate ssim with the same expression (pixel_ssim), so the map does not depend on `train`.
  if (d_mu1 == nullptr) {
    for (int64_t j = 0; j < Wo; ++j) map[j] = pixel_ssim(mu1[j], mu2[j], exx[j], eyy[j], exy[j]).s;
  } else {
    for (int64_t j = 0; j < Wo; ++j) {
      const PixelSsim p = pixel_ssim(mu1[j], mu2[j], exx[j], eyy[j], exy[j]);
      map[j] = p.s;
      d_mu1[j] = 2.f * mu2[j] * (p.t.b - p.t.a) * p.inv_cd + 2.f * mu1[j] * p.s * (p.inv_d - p.inv_c);
      d_sxx[j] = -p.s * p.inv_d;
      d_sxy[j] = 2.f * p.t.a * p.inv_cd;
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

}  // namespace

std::vector<at::Tensor> ssim_forward_cpu(const at::Tensor& img1, const at::Tensor& img2, bool same,
                                         bool train) {
  const Geometry geo = forward_geometry(img1, img2, same, at::kCPU);
  const int64_t H = geo.H, W = geo.W, pad = geo.pad, Ho = geo.Ho, Wo = geo.Wo;
  const int64_t planes = geo.B * geo.C;
  const auto opts = img1.options();
  const ForwardOutputs fo = forward_outputs(geo, opts, train);
  std::vector<double> row_sums(static_cast<size_t>(planes * Ho));

  const float* x = img1.data_ptr<float>();
  const float* y = img2.data_ptr<float>();
  float* m = fo.map.data_ptr<float>();
  float* p1 = train ? fo.d_mu1.data_ptr<float>() : nullptr;
  float* p2 = train ? fo.d_sxx.data_ptr<float>() : nullptr;
  float* p3 = train ? fo.d_sxy.data_ptr<float>() : nullptr;
  const int64_t tasks = planes * Ho;

#pragma omp parallel num_threads(at::get_num_threads()) if (tasks * Wo >= kMinParallelPixels)
  {
    Scratch scratch(5, Wo + kWindow - 1, Wo, W);
    const float* xr[kWindow];
    const float* yr[kWindow];
#pragma omp for schedule(dynamic, kRowsPerChunk)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t plane = t / Ho, i = t % Ho;
      for (int a = 0; a < kWindow; ++a) {  // tap a reads input row i - pad + a
        xr[a] = row_or_zero(x, plane, i - pad + a, H, W, scratch.zeros.data());
        yr[a] = row_or_zero(y, plane, i - pad + a, H, W, scratch.zeros.data());
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
  return {fo.map, mean, fo.d_mu1, fo.d_sxx, fo.d_sxy};
}

at::Tensor ssim_backward_cpu(const at::Tensor& img1, const at::Tensor& img2, const at::Tensor& dl_dmap,
                             const at::Tensor& dm_dmu1, const at::Tensor& dm_dsxx,
                             const at::Tensor& dm_dsxy, bool same) {
  const Geometry geo = backward_geometry(img1, img2, dl_dmap, dm_dmu1, dm_dsxx, dm_dsxy, same, at::kCPU);
  const int64_t H = geo.H, W = geo.W, pad = geo.pad, Ho = geo.Ho, Wo = geo.Wo;
  const bool shared = dl_dmap.numel() == 1;

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
  const int64_t tasks = geo.B * geo.C * H;

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
      for (int a = 0; a < kWindow; ++a) {  // tap a reads map row r + off + a
        const int64_t i = r + off + a;
        const float* zero = scratch.zeros.data();
        // A shared gradient: shared_row stands for every map row (width 0: each row starts at its start).
        g_rows[a] = shared ? row_or_zero(shared_row.data(), 0, i, Ho, 0, zero)
                           : row_or_zero(g, plane, i, Ho, Wo, zero);
        p1_rows[a] = row_or_zero(p1, plane, i, Ho, Wo, zero);
        p2_rows[a] = row_or_zero(p2, plane, i, Ho, Wo, zero);
        p3_rows[a] = row_or_zero(p3, plane, i, Ho, Wo, zero);
      }
      const int64_t img_off = (plane * H + r) * W;
      backward_row(x + img_off, y + img_off, W, Wo, off, g_rows, p1_rows, p2_rows, p3_rows,
                   scratch.padded.data(), scratch.filtered.data(), out + img_off);
    }
  }
  return grad;
}

}  // namespace lgi_fused_ssim
