// Constants and the per-pixel math of SSIM shared by the CPU and CUDA kernels: host/device functions, one
// home for each formula (lgi-gsplat2d's csrc/common.h does the same for the rasterizer; the two kernel
// packages are leaves, so each has its own). Includes no torch header.
//
// Moving an expression here changes no rounding: it is inlined and compiled with the flags of the kernel
// that calls it. The backends agree to float rounding, not bit for bit (the CUDA kernel divides once where
// the CPU multiplies reciprocals, see ssim_cpu.cpp and ssim_cuda.cu).
#pragma once

#if defined(__CUDACC__)
#define LGI_HD __host__ __device__ __forceinline__
#else
#define LGI_HD inline
#endif

namespace lgi_fused_ssim {

constexpr int kWindow = 11;                // Gaussian window taps per axis
constexpr int kRadius = kWindow / 2;       // 5: the "same" zero padding
constexpr float kC1 = 0.01f * 0.01f;       // (K1 * data_range)^2 with K1 = 0.01, data_range = 1
constexpr float kC2 = 0.03f * 0.03f;       // (K2 * data_range)^2 with K2 = 0.03

// exp(-(k - 5)^2 / (2 * 1.5^2)) normalised to sum 1, computed in double and rounded to float.
#define LGI_SSIM_GAUSS_TAPS                                                                        \
  {0.0010283801f, 0.007598758f, 0.036000773f, 0.10936069f, 0.21300554f, 0.26601171f,              \
   0.21300554f,   0.10936069f,  0.036000773f, 0.007598758f, 0.0010283801f}

// The five moments of a window (ssim.h: mu1, mu2, Sxx, Syy, Sxy), or of one filtering pass of them.
struct Moments {
  float x = 0.f, y = 0.f, xx = 0.f, yy = 0.f, xy = 0.f;
};

// Adds the tap of weight w at the pixel pair (xv, yv) to the first filtering pass: the products are
// weighted as (w x) x, (w y) y and (w x) y.
LGI_HD void add_tap(Moments& m, float w, float xv, float yv) {
  const float wx = w * xv, wy = w * yv;
  m.x += wx;
  m.y += wy;
  m.xx += wx * xv;
  m.yy += wy * yv;
  m.xy += wx * yv;
}

// The four factors of ssim = A B / (C D) (ssim.h) of one pixel from its filtered moments.
struct SsimTerms {
  float a, b, c, d;
};

LGI_HD SsimTerms ssim_terms(float mu1, float mu2, float sxx, float syy, float sxy) {
  SsimTerms t;
  t.a = 2.f * mu1 * mu2 + kC1;
  t.b = 2.f * (sxy - mu1 * mu2) + kC2;
  t.c = mu1 * mu1 + mu2 * mu2 + kC1;
  t.d = (sxx - mu1 * mu1) + (syy - mu2 * mu2) + kC2;
  return t;
}

}  // namespace lgi_fused_ssim
