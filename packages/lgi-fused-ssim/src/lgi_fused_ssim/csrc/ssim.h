// Fused SSIM: the entry points of the CPU and CUDA kernels, and the checks and allocations they share
// (the constants and the per-pixel math: common.h).
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

#include <ATen/ATen.h>

#include <vector>

#include "common.h"

namespace lgi_fused_ssim {

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

// --- Shared by both entry points: checks and allocations ------------------------------------------
// The map of a call (see the notation above); pad = kRadius for "same", 0 for "valid".
struct Geometry {
  int64_t B, C, H, W, pad, Ho, Wo;
};

// t: [B, C, H, W] float32, contiguous, on `device`.
inline void check_image(const at::Tensor& t, const char* name, c10::DeviceType device) {
  TORCH_CHECK(t.device().type() == device, name, " must be a ", c10::DeviceTypeName(device), " tensor");
  TORCH_CHECK(t.scalar_type() == at::kFloat, name, " must be float32");
  TORCH_CHECK(t.dim() == 4, name, " must have 4 dimensions [B, C, H, W]");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// Checks the images (check_image, one shape, one device) and returns the geometry of their map.
inline Geometry image_geometry(const at::Tensor& img1, const at::Tensor& img2, bool same, c10::DeviceType device) {
  check_image(img1, "img1", device);
  check_image(img2, "img2", device);
  TORCH_CHECK(img1.sizes() == img2.sizes(), "img1 and img2 must have the same shape");
  TORCH_CHECK(img1.device() == img2.device(), "img1 and img2 must be on the same device");
  Geometry g;
  g.B = img1.size(0), g.C = img1.size(1), g.H = img1.size(2), g.W = img1.size(3);
  g.pad = same ? kRadius : 0;
  g.Ho = g.H + 2 * g.pad - (kWindow - 1), g.Wo = g.W + 2 * g.pad - (kWindow - 1);
  return g;
}

// The forward's checks; returns the geometry.
inline Geometry forward_geometry(const at::Tensor& img1, const at::Tensor& img2, bool same,
                                 c10::DeviceType device) {
  const Geometry g = image_geometry(img1, img2, same, device);
  TORCH_CHECK(g.H >= kWindow && g.W >= kWindow, "images must be at least 11x11");
  return g;
}

// The backward's checks (the arguments of ssim_backward_*); returns the geometry.
inline Geometry backward_geometry(const at::Tensor& img1, const at::Tensor& img2, const at::Tensor& dl_dmap,
                                  const at::Tensor& dm_dmu1, const at::Tensor& dm_dsxx,
                                  const at::Tensor& dm_dsxy, bool same, c10::DeviceType device) {
  const Geometry g = image_geometry(img1, img2, same, device);
  check_image(dm_dmu1, "dm_dmu1", device);
  check_image(dm_dsxx, "dm_dsxx", device);
  check_image(dm_dsxy, "dm_dsxy", device);
  const at::IntArrayRef map_shape = dm_dmu1.sizes();
  TORCH_CHECK(map_shape == at::IntArrayRef({g.B, g.C, g.Ho, g.Wo}), "partials must be [B, C, Ho, Wo]");
  TORCH_CHECK(dm_dsxx.sizes() == map_shape && dm_dsxy.sizes() == map_shape, "partials must match");
  TORCH_CHECK(dl_dmap.device().type() == device && dl_dmap.scalar_type() == at::kFloat, "dl_dmap must be ",
              c10::DeviceTypeName(device), " float32");
  TORCH_CHECK(dl_dmap.device() == img1.device(), "dl_dmap must be on the images' device");
  TORCH_CHECK(dl_dmap.numel() == 1 || (dl_dmap.sizes() == map_shape && dl_dmap.is_contiguous()),
              "dl_dmap must be [B, C, Ho, Wo] contiguous or a single element");
  return g;
}

// The forward's outputs: map [B, C, Ho, Wo] and, when train, the partials (else empty tensors).
struct ForwardOutputs {
  at::Tensor map, d_mu1, d_sxx, d_sxy;
};

inline ForwardOutputs forward_outputs(const Geometry& g, const at::TensorOptions& opts, bool train) {
  ForwardOutputs o;
  o.map = at::empty({g.B, g.C, g.Ho, g.Wo}, opts);
  if (train) {
    o.d_mu1 = at::empty({g.B, g.C, g.Ho, g.Wo}, opts);
    o.d_sxx = at::empty({g.B, g.C, g.Ho, g.Wo}, opts);
    o.d_sxy = at::empty({g.B, g.C, g.Ho, g.Wo}, opts);
  } else {
    o.d_mu1 = o.d_sxx = o.d_sxy = at::empty({0}, opts);
  }
  return o;
}

}  // namespace lgi_fused_ssim
