// Fused SSIM: declarations and constants shared by the CPU and CUDA kernels.
//
// Notation (all kernels): img1 = x, img2 = y, both [B, C, H, W] float32, contiguous.
// The SSIM map has [B, C, Ho, Wo]: Ho = H, Wo = W for "same" (zero padding of kRadius, like
// conv2d(padding=5)) and Ho = H - 2*kRadius, Wo = W - 2*kRadius for "valid" (no padding).
//
// With mu1 = G*x, mu2 = G*y, Sxx = G*(x*x), Syy = G*(y*y), Sxy = G*(x*y) (G: 11x11 Gaussian),
//   A = 2 mu1 mu2 + C1, B = 2 (Sxy - mu1 mu2) + C2, C = mu1^2 + mu2^2 + C1,
//   D = (Sxx - mu1^2) + (Syy - mu2^2) + C2,   ssim = A B / (C D).
// The forward pass (train) stores the partial derivatives of ssim with respect to the three moments
// that depend on x, taken with mu1, Sxx and Sxy as the independent variables:
//   dm_dmu1 = 2 mu2 (B - A) / (C D) + 2 mu1 ssim (1/D - 1/C),  dm_dsxx = -ssim / D,  dm_dsxy = 2 A / (C D),
// so that dL/dx = G^T*(g dm_dmu1) + 2 x G^T*(g dm_dsxx) + y G^T*(g dm_dsxy), with g = dL/dssim:
// three separable filterings of precomputed partials (G is symmetric, G^T* is a correlation with
// the window shifted by kRadius - pad).
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace lgi_fused_ssim {

constexpr int kWindow = 11;                // Gaussian window taps per axis
constexpr int kRadius = kWindow / 2;       // 5: the "same" zero padding
constexpr float kC1 = 0.01f * 0.01f;       // (K1 * data_range)^2 with K1 = 0.01, data_range = 1
constexpr float kC2 = 0.03f * 0.03f;       // (K2 * data_range)^2 with K2 = 0.03

// exp(-(k - 5)^2 / (2 * 1.5^2)) normalised to sum 1, computed in double and rounded to float.
#define LGI_SSIM_GAUSS_TAPS                                                                        \
  {0.0010283801f, 0.007598758f, 0.036000773f, 0.10936069f, 0.21300554f, 0.26601171f,              \
   0.21300554f,   0.10936069f,  0.036000773f, 0.007598758f, 0.0010283801f}

// --- CPU (ssim_cpu.cpp) ---------------------------------------------------------------------------
// img1, img2: [B, C, H, W] float32 CPU. same: zero "same" padding, else "valid".
// Returns {ssim_map [B, C, Ho, Wo], mean [] (float32, summed in double in a fixed order),
//          dm_dmu1, dm_dsxx, dm_dsxy ([B, C, Ho, Wo] when train, else empty tensors)}.
std::vector<at::Tensor> ssim_forward_cpu(const at::Tensor& img1, const at::Tensor& img2, bool same,
                                         bool train);

// img1, img2: [B, C, H, W]; dl_dmap: [B, C, Ho, Wo], or a single element that every map pixel shares
// (the gradient of the mean); dm_dmu1, dm_dsxx, dm_dsxy: [B, C, Ho, Wo] from the forward pass.
// Returns dL/dimg1: [B, C, H, W].
at::Tensor ssim_backward_cpu(const at::Tensor& img1, const at::Tensor& img2, const at::Tensor& dl_dmap,
                             const at::Tensor& dm_dmu1, const at::Tensor& dm_dsxx,
                             const at::Tensor& dm_dsxy, bool same);

// --- CUDA (ssim_cuda.cu): the same contracts on CUDA tensors --------------------------------------
std::vector<at::Tensor> ssim_forward_cuda(const at::Tensor& img1, const at::Tensor& img2, bool same,
                                          bool train);
at::Tensor ssim_backward_cuda(const at::Tensor& img1, const at::Tensor& img2, const at::Tensor& dl_dmap,
                              const at::Tensor& dm_dmu1, const at::Tensor& dm_dsxx,
                              const at::Tensor& dm_dsxy, bool same);

}  // namespace lgi_fused_ssim
