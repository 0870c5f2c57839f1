// Constants and small host/device helpers shared by the CPU and CUDA kernels.
//
// This header includes no torch header on purpose: the kernel translation units compile in seconds and
// only ext.cpp pays for <torch/extension.h>.
//
// Conventions (see the package README):
//   * means are in the unit square, (x, y) = (column / W, row / H); the projection returns pixel-space
//     centres xys = (x * W, y * H); pixel (row i, col j) has its centre at (j + 0.5, i + 0.5).
//   * conic = (a, b, c) is the inverse pixel-space covariance [[a, b], [b, c]].
//   * q = d^T conic d is evaluated by q_form() below, in exactly this order of floating-point operations,
//     by every backend (the PyTorch reference writes the same expression), so that the cutoff q <= 9 and
//     the top-K ranking agree bit for bit between backends given the same projected inputs.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define LGI_HD __host__ __device__ __forceinline__
#else
#define LGI_HD inline
#endif

namespace lgi {

constexpr int kTile = 16;                     // tiles are kTile x kTile pixels
constexpr int kTilePixels = kTile * kTile;    // pixels per tile
constexpr int kMaxK = 32;                     // largest K of the top-K blend
constexpr double kCutoff = 9.0;               // a Gaussian touches a pixel where q <= 9 (3 sigma)
constexpr double kSigmas = 3.0;               // radius = ceil(kSigmas * sqrt(lambda_max))
constexpr double kTopkEps = 0.01;             // top-K output: sum c v / (sum v + eps), eps of kModeTopk
constexpr double kTopkHardEps = 1e-4;         // eps of kModeTopkHard (lgi-gsplat2d 0.1's, kept for its files)
constexpr double kTopkFloor = 0.011108996538242306;  // exp(-4.5), the Gaussian's value at the cutoff q = 9
constexpr double kMaxRadius = 1073741824.0;   // 2^30: radii of absurdly large Gaussians are capped here

// Top-K weights. kModeTopk: w = exp(-q/2) - kTopkFloor for a selected Gaussian, which reaches 0 at the
// cutoff, so the image is a continuous function of the Gaussians (docs/training.md: a hard cutoff made the
// loss climb late in a fit). kModeTopkHard: w = exp(-q/2), a jump of exp(-4.5) at the cutoff (the blend of
// lgi-gsplat2d 0.1 and of .lgi render mode 0; kept so that those files decode as they were made).
// The ids are the .lgi format's render-mode ids (lgi_dictco.gauss.RENDER_MODES), one numbering for the file
// and the kernels (packages/lgi/tests/test_decode_budgets.py checks the two tables equal).
enum Mode : int { kModeTopkHard = 0, kModeSum = 1, kModeTopk = 2 };

LGI_HD bool is_topk(int mode) { return mode == kModeTopk || mode == kModeTopkHard; }
template <typename T>
LGI_HD T topk_floor(int mode) { return mode == kModeTopk ? T(kTopkFloor) : T(0); }
// The normalization's epsilon: 0.01 for the continuous top-K. A pixel whose selected weights sum to
// little is drawn darker, so the fit keeps every pixel covered: with 1e-4, a pixel that a fit let fall
// out of every Gaussian's 3-sigma support went black and no gradient reached it (docs/training.md:
// 118 such pixels over four codec files, 7 with 0.01, at equal PSNR).
template <typename T>
LGI_HD T topk_eps(int mode) { return mode == kModeTopk ? T(kTopkEps) : T(kTopkHardEps); }
// The weight of a selected Gaussian from e = exp(-q/2) (clamped: e may round below the floor at q = 9).
template <typename T>
LGI_HD T topk_weight(T e, T floor) { return e > floor ? e - floor : T(0); }
// dw/dq = -0.5 * topk_slope(w): exp(-q/2) where the weight is positive, 0 where it is clamped.
template <typename T>
LGI_HD T topk_slope(T w, T floor) { return w > T(0) ? w + floor : T(0); }
// t = w dL/dw of a selected entry of weight w (see the backward passes): dL/dw = sum_c gp_c (col_c - out_c)
// / denom, with gp = dL/dout, col the Gaussian's colour and out the pixel's [C] values, summed in channel order.
template <typename T>
LGI_HD T topk_t(const T* gp, const T* col, const T* out, int channels, T w, T floor, T denom) {
  T dldw = T(0);
  for (int ch = 0; ch < channels; ++ch) dldw += gp[ch] * (col[ch] - out[ch]);
  return topk_slope(w, floor) * (dldw / denom);
}

// Inserts (key, val) into the ascending keys[0 .. pos), which have room at pos: the entries with a larger
// key move up one place; an equal key stays before the new one.
template <typename K, typename V>
LGI_HD void sorted_insert(K* keys, V* vals, int pos, K key, V val) {
  while (pos > 0 && keys[pos - 1] > key) {
    keys[pos] = keys[pos - 1];
    vals[pos] = vals[pos - 1];
    --pos;
  }
  keys[pos] = key;
  vals[pos] = val;
}

// Top-K list insertion of (q, id) into a pixel's ascending list of cnt <= k entries (the caller checked
// q < lim). Candidates arrive in ascending id, so equal q keep the earlier (lower-index) entry first, and a
// full list rejects a q equal to its K-th (lim): ties favour lower indices. lim becomes the K-th q once full.
template <typename T>
LGI_HD void topk_insert(T* qs, int32_t* ids, int& cnt, T& lim, int k, T q, int32_t id) {
  sorted_insert(qs, ids, cnt < k ? cnt++ : k - 1, q, id);
  if (cnt == k) lim = qs[k - 1];
}

// Overloads that mean the same on the host and on the device (cosf/sinf exist in both).
LGI_HD float cos_t(float x) { return cosf(x); }
LGI_HD double cos_t(double x) { return cos(x); }
LGI_HD float sin_t(float x) { return sinf(x); }
LGI_HD double sin_t(double x) { return sin(x); }
template <typename T>
LGI_HD bool finite_t(T x) { return x - x == T(0); }  // false for inf and NaN (no -ffast-math anywhere)

// Integer pixel box [j0, j1] x [i0, i1] (inclusive) of the pixel centres within the radius box
// |px - x| <= r, |py - y| <= r, clipped to the image; empty when j0 > j1 or i0 > i1. Computed in double so
// every backend (and the PyTorch reference, which does the same in float64) gets the same integers.
struct PixBox {
  int j0, j1, i0, i1;
  LGI_HD bool empty() const { return j0 > j1 || i0 > i1; }
};

LGI_HD PixBox pixel_box(double x, double y, int radius, int height, int width) {
  PixBox b;
  if (radius <= 0) {
    b.j0 = 0; b.j1 = -1; b.i0 = 0; b.i1 = -1;
    return b;
  }
  const double r = static_cast<double>(radius);
  double j0 = ceil(x - r - 0.5), j1 = floor(x + r - 0.5);
  double i0 = ceil(y - r - 0.5), i1 = floor(y + r - 0.5);
  // Clamp in double before converting: positions may be far off-screen.
  j0 = j0 < 0.0 ? 0.0 : j0;
  i0 = i0 < 0.0 ? 0.0 : i0;
  j1 = j1 > width - 1.0 ? width - 1.0 : j1;
  i1 = i1 > height - 1.0 ? height - 1.0 : i1;
  if (j0 > j1 || i0 > i1 || j0 != j0 || i0 != i0) {  // also rejects NaN
    b.j0 = 0; b.j1 = -1; b.i0 = 0; b.i1 = -1;
    return b;
  }
  b.j0 = static_cast<int>(j0); b.j1 = static_cast<int>(j1);
  b.i0 = static_cast<int>(i0); b.i1 = static_cast<int>(i1);
  return b;
}

// Number of kTile x kTile tiles a box touches (0 when empty).
LGI_HD int box_tiles(const PixBox& b) {
  if (b.empty()) return 0;
  return (b.j1 / kTile - b.j0 / kTile + 1) * (b.i1 / kTile - b.i0 / kTile + 1);
}

// The Mahalanobis form: q = (a*dx)*dx + ((2b)*dy)*dx + (c*dy)*dy, with b2dy = (2b)*dy and
// cdy2 = (c*dy)*dy hoisted per row by the kernels. Keep this order: the reference writes it the same way.
// q of a positive-definite conic is never negative, but rounding makes it negative (down to -5e4 in a
// fuzzed file) for a Gaussian whose axes differ by more than about 10^3.5, where the conic is beyond float
// precision; exp(-q/2) would then overflow to inf and the pixel to NaN. Every backend computes a weight as
// exp(-max(q, 0)/2), at most 1 (the CPU's exp_neg, the CUDA kernels' weight_of, the reference, lgi.js).
// Host code is built with -ffp-contract=off; on the device the _rn intrinsics forbid fused multiply-adds,
// so every backend rounds q identically. mul_rn gives the kernels the same guarantee for b2dy and cdy2.
#if defined(__CUDA_ARCH__)
__device__ __forceinline__ float mul_rn(float x, float y) { return __fmul_rn(x, y); }
__device__ __forceinline__ float add_rn(float x, float y) { return __fadd_rn(x, y); }
__device__ __forceinline__ double mul_rn(double x, double y) { return __dmul_rn(x, y); }
__device__ __forceinline__ double add_rn(double x, double y) { return __dadd_rn(x, y); }
template <typename T>
__device__ __forceinline__ T q_form(T a, T dx, T b2dy, T cdy2) {
  return add_rn(add_rn(mul_rn(mul_rn(a, dx), dx), mul_rn(b2dy, dx)), cdy2);
}
#else
template <typename T>
inline T mul_rn(T x, T y) {
  return x * y;
}
template <typename T>
inline T q_form(T a, T dx, T b2dy, T cdy2) {
  return (a * dx * dx + b2dy * dx) + cdy2;
}
#endif

// Projection of one Gaussian. Unit-square covariance Sigma = R diag(s1^2, s2^2) R^T with
// R = [[cos, -sin], [sin, cos]]; pixel covariance A Sigma A with A = diag(W, H); conic = its inverse,
// computed directly from 1/s^2 so that tiny scales stay accurate.
template <typename T>
struct Projected {
  T px, py;      // pixel-space centre
  T a, b, c;     // conic
  int radius;    // 0 = culled
  int tiles;     // tiles touched (with the given tile size)
};

template <typename T>
LGI_HD Projected<T> project_one(T mx, T my, T s1, T s2, T theta, int height, int width, int tile) {
  Projected<T> p;
  const T W = static_cast<T>(width), H = static_cast<T>(height);
  p.px = mx * W;
  p.py = my * H;
  const T cs = cos_t(theta), sn = sin_t(theta);
  const T i1 = T(1) / (s1 * s1), i2 = T(1) / (s2 * s2);
  const T m00 = cs * cs * i1 + sn * sn * i2;
  const T m01 = cs * sn * (i1 - i2);
  const T m11 = sn * sn * i1 + cs * cs * i2;
  p.a = m00 / (W * W);
  p.b = m01 / (W * H);
  p.c = m11 / (H * H);
  p.radius = 0;
  p.tiles = 0;
  const bool finite = finite_t(p.a) && finite_t(p.b) && finite_t(p.c) && finite_t(p.px) && finite_t(p.py);
  if (!finite || s1 == T(0) || s2 == T(0)) return p;
  // Largest eigenvalue of the pixel covariance, in double.
  const double dc = cs, ds = sn, v1 = double(s1) * s1, v2 = double(s2) * s2;
  const double sxx = double(width) * width * (dc * dc * v1 + ds * ds * v2);
  const double syy = double(height) * height * (ds * ds * v1 + dc * dc * v2);
  const double sxy = double(width) * height * dc * ds * (v1 - v2);
  const double half = 0.5 * (sxx - syy);
  const double lmax = 0.5 * (sxx + syy) + sqrt(half * half + sxy * sxy);
  double r = ceil(kSigmas * sqrt(lmax > 0.0 ? lmax : 0.0));
  if (!(r <= kMaxRadius)) r = kMaxRadius;  // also catches inf / NaN
  if (r < 1.0) r = 1.0;
  const PixBox box = pixel_box(double(p.px), double(p.py), static_cast<int>(r), height, width);
  if (box.empty()) return p;
  p.radius = static_cast<int>(r);
  p.tiles = (box.j1 / tile - box.j0 / tile + 1) * (box.i1 / tile - box.i0 / tile + 1);
  return p;
}

// Projects Gaussian g of the arrays means [N,2], scales [N,2], rotations [N] into xys [N,2], radii [N],
// conics [N,3], tiles [N] (project.h): the body of the CPU loop and of the CUDA thread.
template <typename T>
LGI_HD void project_gaussian(int64_t g, const T* means, const T* scales, const T* rotations, int height,
                             int width, int tile, T* xys, int32_t* radii, T* conics, int32_t* tiles) {
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

// Gradient of the projection of one Gaussian with respect to (mx, my, s1, s2, theta), given the gradients
// of xys (gx, gy) and of the conic (ga, gb, gc).
template <typename T>
LGI_HD void project_one_backward(T s1, T s2, T theta, int height, int width, T gx, T gy, T ga, T gb, T gc,
                                 T* g_mean, T* g_scale, T* g_theta) {
  const T W = static_cast<T>(width), H = static_cast<T>(height);
  g_mean[0] = gx * W;
  g_mean[1] = gy * H;
  const T cs = cos_t(theta), sn = sin_t(theta);
  const T i1 = T(1) / (s1 * s1), i2 = T(1) / (s2 * s2);
  const T d00 = ga / (W * W), d01 = gb / (W * H), d11 = gc / (H * H);
  const T cc = cs * cs, ss = sn * sn, csn = cs * sn;
  const T di1 = d00 * cc + d01 * csn + d11 * ss;
  const T di2 = d00 * ss - d01 * csn + d11 * cc;
  g_scale[0] = di1 * (T(-2) * i1 / s1);
  g_scale[1] = di2 * (T(-2) * i2 / s2);
  *g_theta = d00 * (T(2) * csn * (i2 - i1)) + d01 * ((cc - ss) * (i1 - i2)) + d11 * (T(2) * csn * (i1 - i2));
}

// The projection backward of Gaussian g (project.h: grad_xys and grad_conics may be null): the body of the CPU
// loop and of the CUDA thread.
template <typename T>
LGI_HD void project_gaussian_backward(int64_t g, const T* scales, const T* rotations, int height, int width,
                                      const T* grad_xys, const T* grad_conics, T* grad_means, T* grad_scales,
                                      T* grad_rotations) {
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

}  // namespace lgi
