// Python bindings. The only translation unit that includes torch: it checks tensors, allocates outputs
// and calls the raw kernels. Built twice: without LGI_WITH_CUDA as the CPU extension (float32/float64,
// OpenMP), with it as the CUDA extension (float32). Both expose the same function names, so the Python
// autograd layer does not care which one it holds.
#include <torch/extension.h>

#include <type_traits>
#include <vector>

#include "common.h"
#include "project.h"
#include "rasterize.h"

#if defined(LGI_WITH_CUDA)
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

using torch::Tensor;

namespace {

void check_float(const Tensor& t, const char* name, const Tensor& like) {
  TORCH_CHECK_VALUE(t.scalar_type() == like.scalar_type(), name, " must have dtype ", like.scalar_type(),
                    ", got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.device() == like.device(), name, " must be on ", like.device(), ", got ", t.device());
  TORCH_CHECK_VALUE(t.is_contiguous(), name, " must be contiguous");
}

void check_int(const Tensor& t, const char* name, const Tensor& like) {
  TORCH_CHECK_VALUE(t.scalar_type() == torch::kInt32, name, " must be int32, got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.device() == like.device(), name, " must be on ", like.device(), ", got ", t.device());
  TORCH_CHECK_VALUE(t.is_contiguous(), name, " must be contiguous");
}

void check_raster_inputs(const Tensor& xys, const Tensor& radii, const Tensor& conics, const Tensor& colors,
                         const Tensor& opacities, int64_t height, int64_t width, int64_t mode, int64_t k) {
  check_float(xys, "xys", xys);
  check_int(radii, "radii", xys);
  check_float(conics, "conics", xys);
  check_float(colors, "colors", xys);
  const int64_t n = xys.size(0);
  TORCH_CHECK_VALUE(xys.dim() == 2 && xys.size(1) == 2, "xys must be [N, 2]");
  TORCH_CHECK_VALUE(radii.dim() == 1 && radii.size(0) == n, "radii must be [N]");
  TORCH_CHECK_VALUE(conics.dim() == 2 && conics.size(0) == n && conics.size(1) == 3, "conics must be [N, 3]");
  TORCH_CHECK_VALUE(colors.dim() == 2 && colors.size(0) == n && colors.size(1) >= 1, "colors must be [N, C]");
  if (opacities.numel() > 0) {
    check_float(opacities, "opacities", xys);
    TORCH_CHECK_VALUE(opacities.dim() == 1 && opacities.size(0) == n, "opacities must be [N]");
    TORCH_CHECK_VALUE(mode == lgi::kModeSum, "opacities are used in sum mode only");
  }
  TORCH_CHECK_VALUE(height >= 1 && width >= 1, "height and width must be >= 1");
  TORCH_CHECK_VALUE(mode == lgi::kModeSum || lgi::is_topk(static_cast<int>(mode)),
                    "mode must be 0 (sum), 1 (topk) or 2 (topk-hard)");
  TORCH_CHECK_VALUE(k >= 1 && k <= lgi::kMaxK, "k must be in [1, ", lgi::kMaxK, "]");
  TORCH_CHECK_VALUE(height * width * k < (int64_t(1) << 31), "image too large: height * width * k >= 2^31");
  TORCH_CHECK_VALUE(n < (int64_t(1) << 31), "too many Gaussians");
}

Tensor empty_i32(const Tensor& like, at::IntArrayRef size) {
  return torch::empty(size, like.options().dtype(torch::kInt32));
}

// [out [H,W,C], sel [H,W,K], wsel [H,W,K], wsum [H,W]]; the last three only in top-K mode (else empty).
std::vector<Tensor> forward_outputs(const Tensor& xys, int64_t height, int64_t width, int64_t c, int64_t mode,
                                    int64_t k) {
  const bool topk = lgi::is_topk(static_cast<int>(mode));
  return {torch::empty({height, width, c}, xys.options()),
          topk ? empty_i32(xys, {height, width, k}) : empty_i32(xys, {0}),
          topk ? torch::empty({height, width, k}, xys.options()) : torch::empty({0}, xys.options()),
          topk ? torch::empty({height, width}, xys.options()) : torch::empty({0}, xys.options())};
}

std::vector<Tensor> grad_outputs(const Tensor& xys, int64_t n, int64_t c, bool need_geom, bool need_col,
                                 bool need_opac) {
  auto z = [&](bool need, at::IntArrayRef size) {
    return need ? torch::zeros(size, xys.options()) : torch::empty({0}, xys.options());
  };
  return {z(need_geom, {n, 2}), z(need_geom, {n, 3}), z(need_col, {n, c}), z(need_opac, {n})};
}

#if !defined(LGI_WITH_CUDA)
// ------------------------------------------------------------------------------------------------- CPU

template <typename T>
lgi::RasterArgs<T> make_args(const Tensor& xys, const Tensor& radii, const Tensor& conics, const Tensor& colors,
                             const Tensor& opacities, int64_t height, int64_t width, int64_t mode, int64_t k,
                             int64_t nthreads) {
  lgi::RasterArgs<T> a;
  a.n = xys.size(0);
  a.height = static_cast<int>(height);
  a.width = static_cast<int>(width);
  a.channels = static_cast<int>(colors.size(1));
  a.mode = static_cast<int>(mode);
  a.k = static_cast<int>(k);
  a.xys = xys.data_ptr<T>();
  a.radii = radii.data_ptr<int32_t>();
  a.conics = conics.data_ptr<T>();
  a.colors = colors.data_ptr<T>();
  a.opacities = opacities.numel() > 0 ? opacities.data_ptr<T>() : nullptr;
  a.nthreads = static_cast<int>(std::max<int64_t>(1, nthreads));
  return a;
}

template <typename T>
T* ptr_or_null(Tensor& t) {
  return t.numel() > 0 ? t.data_ptr<T>() : nullptr;
}

std::vector<Tensor> project_forward(const Tensor& means, const Tensor& scales, const Tensor& rotations,
                                    int64_t height, int64_t width, int64_t tile, int64_t nthreads) {
  check_float(scales, "scales", means);
  check_float(rotations, "rotations", means);
  TORCH_CHECK_VALUE(means.is_contiguous() && means.device().is_cpu(), "means must be a contiguous CPU tensor");
  TORCH_CHECK_VALUE(tile >= 1, "tile must be >= 1");
  const int64_t n = means.size(0);
  Tensor xys = torch::empty({n, 2}, means.options()), conics = torch::empty({n, 3}, means.options());
  Tensor radii = empty_i32(means, {n}), tiles = empty_i32(means, {n});
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_forward", [&] {
    lgi::project_forward_cpu<scalar_t>(n, means.data_ptr<scalar_t>(), scales.data_ptr<scalar_t>(),
                                       rotations.data_ptr<scalar_t>(), int(height), int(width), int(tile),
                                       xys.data_ptr<scalar_t>(), radii.data_ptr<int32_t>(),
                                       conics.data_ptr<scalar_t>(), tiles.data_ptr<int32_t>(), int(nthreads));
  });
  return {xys, radii, conics, tiles};
}

std::vector<Tensor> project_backward(const Tensor& scales, const Tensor& rotations, int64_t height,
                                     int64_t width, Tensor grad_xys, Tensor grad_conics, int64_t nthreads) {
  const int64_t n = scales.size(0);
  Tensor gm = torch::empty({n, 2}, scales.options()), gs = torch::empty({n, 2}, scales.options());
  Tensor gr = torch::empty({n}, scales.options());
  AT_DISPATCH_FLOATING_TYPES(scales.scalar_type(), "project_backward", [&] {
    lgi::project_backward_cpu<scalar_t>(n, scales.data_ptr<scalar_t>(), rotations.data_ptr<scalar_t>(),
                                        int(height), int(width), ptr_or_null<scalar_t>(grad_xys),
                                        ptr_or_null<scalar_t>(grad_conics), gm.data_ptr<scalar_t>(),
                                        gs.data_ptr<scalar_t>(), gr.data_ptr<scalar_t>(), int(nthreads));
  });
  return {gm, gs, gr};
}

std::vector<Tensor> rasterize_forward(const Tensor& xys, const Tensor& radii, const Tensor& conics,
                                      const Tensor& num_tiles_hit, const Tensor& colors, const Tensor& opacities,
                                      int64_t height, int64_t width, int64_t mode, int64_t k, int64_t nthreads) {
  check_raster_inputs(xys, radii, conics, colors, opacities, height, width, mode, k);
  check_int(num_tiles_hit, "num_tiles_hit", xys);
  const int64_t n = xys.size(0), c = colors.size(1);
  const int64_t num_tiles = int64_t(lgi::tiles_x(int(width))) * lgi::tiles_y(int(height));
  Tensor goff = empty_i32(xys, {n + 1}), toff = empty_i32(xys, {num_tiles + 1}), boxes = empty_i32(xys, {n, 4});
  std::vector<Tensor> fo = forward_outputs(xys, height, width, c, mode, k);
  Tensor gid, slot;
  const lgi::ListAllocator alloc = [&](int64_t m, int32_t** g, int32_t** s) {
    gid = empty_i32(xys, {m});
    slot = empty_i32(xys, {m});
    *g = gid.data_ptr<int32_t>();
    *s = slot.data_ptr<int32_t>();
  };
  int64_t bad = -1;
  AT_DISPATCH_FLOATING_TYPES(xys.scalar_type(), "rasterize_forward", [&] {
    auto a = make_args<scalar_t>(xys, radii, conics, colors, opacities, height, width, mode, k, nthreads);
    bad = lgi::rasterize_forward_cpu(a, num_tiles_hit.data_ptr<int32_t>(), goff.data_ptr<int32_t>(),
                                     toff.data_ptr<int32_t>(), boxes.data_ptr<int32_t>(), alloc,
                                     fo[0].data_ptr<scalar_t>(), ptr_or_null<int32_t>(fo[1]),
                                     ptr_or_null<scalar_t>(fo[2]), ptr_or_null<scalar_t>(fo[3]));
  });
  TORCH_CHECK_VALUE(bad < 0, "num_tiles_hit[", bad, "] does not match the 16x16 tiles of its radius ",
                    "(project with tile=16)");
  return {fo[0], goff, toff, boxes, gid, slot, fo[1], fo[2], fo[3]};
}

std::vector<Tensor> rasterize_backward(const Tensor& xys, const Tensor& radii, const Tensor& conics,
                                       const Tensor& colors, const Tensor& opacities, int64_t height,
                                       int64_t width, int64_t mode, int64_t k, const Tensor& gauss_offsets,
                                       const Tensor& tile_offsets, const Tensor& boxes, const Tensor& list_gid,
                                       const Tensor& list_slot, const Tensor& grad_out, const Tensor& out,
                                       const Tensor& sel, const Tensor& wsel, const Tensor& wsum, bool need_geom,
                                       bool need_col, bool need_opac, int64_t nthreads) {
  check_float(grad_out, "grad_out", xys);
  const int64_t n = xys.size(0), c = colors.size(1);
  std::vector<Tensor> g = grad_outputs(xys, n, c, need_geom, need_col, need_opac && opacities.numel() > 0);
  AT_DISPATCH_FLOATING_TYPES(xys.scalar_type(), "rasterize_backward", [&] {
    auto a = make_args<scalar_t>(xys, radii, conics, colors, opacities, height, width, mode, k, nthreads);
    lgi::rasterize_backward_cpu(a, list_gid.numel(), gauss_offsets.data_ptr<int32_t>(),
                                tile_offsets.data_ptr<int32_t>(), boxes.data_ptr<int32_t>(),
                                list_gid.data_ptr<int32_t>(),
                                list_slot.data_ptr<int32_t>(), grad_out.data_ptr<scalar_t>(),
                                out.data_ptr<scalar_t>(), sel.numel() ? sel.data_ptr<int32_t>() : nullptr,
                                wsel.numel() ? wsel.data_ptr<scalar_t>() : nullptr,
                                wsum.numel() ? wsum.data_ptr<scalar_t>() : nullptr, ptr_or_null<scalar_t>(g[0]),
                                ptr_or_null<scalar_t>(g[1]), ptr_or_null<scalar_t>(g[2]),
                                ptr_or_null<scalar_t>(g[3]));
  });
  return g;
}

std::vector<Tensor> no_tiles_forward(const Tensor& xys, const Tensor& radii, const Tensor& conics,
                                     const Tensor& colors, const Tensor& opacities, int64_t height, int64_t width,
                                     int64_t mode, int64_t k, int64_t nthreads) {
  check_raster_inputs(xys, radii, conics, colors, opacities, height, width, mode, k);
  std::vector<Tensor> fo = forward_outputs(xys, height, width, colors.size(1), mode, k);
  AT_DISPATCH_FLOATING_TYPES(xys.scalar_type(), "no_tiles_forward", [&] {
    auto a = make_args<scalar_t>(xys, radii, conics, colors, opacities, height, width, mode, k, nthreads);
    lgi::rasterize_no_tiles_forward_cpu(a, fo[0].data_ptr<scalar_t>(), ptr_or_null<int32_t>(fo[1]),
                                        ptr_or_null<scalar_t>(fo[2]), ptr_or_null<scalar_t>(fo[3]));
  });
  return fo;
}

std::vector<Tensor> no_tiles_backward(const Tensor& xys, const Tensor& radii, const Tensor& conics,
                                      const Tensor& colors, const Tensor& opacities, int64_t height,
                                      int64_t width, int64_t mode, int64_t k, const Tensor& grad_out,
                                      const Tensor& out, const Tensor& sel, const Tensor& wsel, const Tensor& wsum,
                                      bool need_geom, bool need_col, bool need_opac, int64_t nthreads) {
  check_float(grad_out, "grad_out", xys);
  const int64_t n = xys.size(0), c = colors.size(1);
  std::vector<Tensor> g = grad_outputs(xys, n, c, need_geom, need_col, need_opac && opacities.numel() > 0);
  AT_DISPATCH_FLOATING_TYPES(xys.scalar_type(), "no_tiles_backward", [&] {
    auto a = make_args<scalar_t>(xys, radii, conics, colors, opacities, height, width, mode, k, nthreads);
    lgi::rasterize_no_tiles_backward_cpu(a, grad_out.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
                                         sel.numel() ? sel.data_ptr<int32_t>() : nullptr,
                                         wsel.numel() ? wsel.data_ptr<scalar_t>() : nullptr,
                                         wsum.numel() ? wsum.data_ptr<scalar_t>() : nullptr,
                                         ptr_or_null<scalar_t>(g[0]), ptr_or_null<scalar_t>(g[1]),
                                         ptr_or_null<scalar_t>(g[2]), ptr_or_null<scalar_t>(g[3]));
  });
  return g;
}

#else
// ------------------------------------------------------------------------------------------------ CUDA

void* stream_of(const Tensor& t) {
  return static_cast<void*>(c10::cuda::getCurrentCUDAStream(t.device().index()).stream());
}

void check_cuda_float(const Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.is_cuda(), name, " must be a CUDA tensor");
  TORCH_CHECK_VALUE(t.scalar_type() == torch::kFloat32, "the CUDA kernels take float32; ", name, " is ",
                    t.scalar_type());
}

template <typename P>
P* ptr_or_null(const Tensor& t) {
  return t.numel() > 0 ? t.data_ptr<std::remove_const_t<P>>() : nullptr;
}

lgi::CudaRaster make_cuda_args(const Tensor& xys, const Tensor& radii, const Tensor& conics,
                               const Tensor& colors, const Tensor& opacities, int64_t height, int64_t width,
                               int64_t mode, int64_t k) {
  lgi::CudaRaster a;
  a.n = xys.size(0);
  a.height = int(height);
  a.width = int(width);
  a.channels = int(colors.size(1));
  a.mode = int(mode);
  a.k = int(k);
  a.xys = xys.data_ptr<float>();
  a.radii = radii.data_ptr<int32_t>();
  a.conics = conics.data_ptr<float>();
  a.colors = colors.data_ptr<float>();
  a.opacities = ptr_or_null<float>(opacities);
  return a;
}

std::vector<Tensor> project_forward(const Tensor& means, const Tensor& scales, const Tensor& rotations,
                                    int64_t height, int64_t width, int64_t tile, int64_t /*nthreads*/) {
  check_cuda_float(means, "means");
  check_float(scales, "scales", means);
  check_float(rotations, "rotations", means);
  TORCH_CHECK_VALUE(means.is_contiguous(), "means must be contiguous");
  TORCH_CHECK_VALUE(tile >= 1, "tile must be >= 1");
  const c10::cuda::CUDAGuard guard(means.device());
  const int64_t n = means.size(0);
  Tensor xys = torch::empty({n, 2}, means.options()), conics = torch::empty({n, 3}, means.options());
  Tensor radii = empty_i32(means, {n}), tiles = empty_i32(means, {n});
  lgi::project_forward_cuda(n, means.data_ptr<float>(), scales.data_ptr<float>(), rotations.data_ptr<float>(),
                            int(height), int(width), int(tile), xys.data_ptr<float>(), radii.data_ptr<int32_t>(),
                            conics.data_ptr<float>(), tiles.data_ptr<int32_t>(), stream_of(means));
  return {xys, radii, conics, tiles};
}

std::vector<Tensor> project_backward(const Tensor& scales, const Tensor& rotations, int64_t height,
                                     int64_t width, const Tensor& grad_xys, const Tensor& grad_conics,
                                     int64_t /*nthreads*/) {
  const c10::cuda::CUDAGuard guard(scales.device());
  const int64_t n = scales.size(0);
  Tensor gm = torch::empty({n, 2}, scales.options()), gs = torch::empty({n, 2}, scales.options());
  Tensor gr = torch::empty({n}, scales.options());
  lgi::project_backward_cuda(n, scales.data_ptr<float>(), rotations.data_ptr<float>(), int(height), int(width),
                             ptr_or_null<const float>(grad_xys), ptr_or_null<const float>(grad_conics),
                             gm.data_ptr<float>(), gs.data_ptr<float>(), gr.data_ptr<float>(), stream_of(scales));
  return {gm, gs, gr};
}

std::vector<Tensor> rasterize_forward(const Tensor& xys, const Tensor& radii, const Tensor& conics,
                                      const Tensor& num_tiles_hit, const Tensor& colors, const Tensor& opacities,
                                      int64_t height, int64_t width, int64_t mode, int64_t k,
                                      int64_t /*nthreads*/) {
  check_cuda_float(xys, "xys");
  check_raster_inputs(xys, radii, conics, colors, opacities, height, width, mode, k);
  check_int(num_tiles_hit, "num_tiles_hit", xys);
  const c10::cuda::CUDAGuard guard(xys.device());
  void* stream = stream_of(xys);
  const int64_t n = xys.size(0), c = colors.size(1);
  const int64_t num_tiles = int64_t(lgi::tiles_x(int(width))) * lgi::tiles_y(int(height));
  const auto a = make_cuda_args(xys, radii, conics, colors, opacities, height, width, mode, k);
  Tensor counts = empty_i32(xys, {n});
  Tensor mismatch = torch::full({1}, int32_t(n), xys.options().dtype(torch::kInt32));
  lgi::cuda_count(a, num_tiles_hit.data_ptr<int32_t>(), counts.data_ptr<int32_t>(), mismatch.data_ptr<int32_t>(),
                  stream);
  Tensor goff = torch::zeros({n + 1}, xys.options().dtype(torch::kInt64));
  if (n > 0) goff.slice(0, 1).copy_(counts.cumsum(0, torch::kInt64));
  // One synchronisation: the total and the mismatch flag together.
  const Tensor host = torch::stack({goff[n], mismatch[0].to(torch::kInt64)}).cpu();
  const int64_t m = host[0].item<int64_t>(), bad = host[1].item<int64_t>();
  TORCH_CHECK_VALUE(bad == n, "num_tiles_hit[", bad, "] does not match the 16x16 tiles of its radius ",
                    "(project with tile=16)");
  TORCH_CHECK_VALUE(m < (int64_t(1) << 31), "more than 2^31 tile intersections");
  Tensor keys = torch::empty({m}, xys.options().dtype(torch::kInt64));
  lgi::cuda_emit(a, goff.data_ptr<int64_t>(), keys.data_ptr<int64_t>(), stream);
  // Keys are unique, so the order (tile, Gaussian) and the permutation are deterministic.
  auto sorted = torch::sort(keys);
  const Tensor sorted_keys = std::get<0>(sorted);
  const Tensor list_slot = std::get<1>(sorted).to(torch::kInt32);
  const Tensor list_gid = sorted_keys.bitwise_and(0xffffffffLL).to(torch::kInt32);
  const Tensor tile_ids = sorted_keys.bitwise_right_shift(32);
  const Tensor toff = torch::searchsorted(tile_ids, torch::arange(num_tiles + 1, tile_ids.options()),
                                          /*out_int32=*/true);
  std::vector<Tensor> fo = forward_outputs(xys, height, width, c, mode, k);
  lgi::cuda_forward(a, toff.data_ptr<int32_t>(), list_gid.data_ptr<int32_t>(), fo[0].data_ptr<float>(),
                    ptr_or_null<int32_t>(fo[1]), ptr_or_null<float>(fo[2]), ptr_or_null<float>(fo[3]), stream);
  return {fo[0], goff, toff, empty_i32(xys, {0}), list_gid, list_slot, fo[1], fo[2], fo[3]};
}

std::vector<Tensor> rasterize_backward(const Tensor& xys, const Tensor& radii, const Tensor& conics,
                                       const Tensor& colors, const Tensor& opacities, int64_t height,
                                       int64_t width, int64_t mode, int64_t k, const Tensor& gauss_offsets,
                                       const Tensor& tile_offsets, const Tensor& boxes, const Tensor& list_gid,
                                       const Tensor& list_slot, const Tensor& grad_out, const Tensor& out,
                                       const Tensor& sel, const Tensor& wsel, const Tensor& wsum, bool need_geom,
                                       bool need_col, bool need_opac, int64_t /*nthreads*/) {
  check_cuda_float(grad_out, "grad_out");
  const c10::cuda::CUDAGuard guard(xys.device());
  const int64_t n = xys.size(0), c = colors.size(1), m = list_gid.numel();
  std::vector<Tensor> g = grad_outputs(xys, n, c, need_geom, need_col, need_opac && opacities.numel() > 0);
  Tensor partials = torch::empty({m, 6 + c}, xys.options());
  const auto a = make_cuda_args(xys, radii, conics, colors, opacities, height, width, mode, k);
  lgi::cuda_backward(a, m, gauss_offsets.data_ptr<int64_t>(), tile_offsets.data_ptr<int32_t>(),
                     list_gid.data_ptr<int32_t>(), list_slot.data_ptr<int32_t>(), grad_out.data_ptr<float>(),
                     out.data_ptr<float>(), ptr_or_null<const int32_t>(sel), ptr_or_null<const float>(wsel),
                     ptr_or_null<const float>(wsum), partials.data_ptr<float>(), ptr_or_null<float>(g[0]), ptr_or_null<float>(g[1]),
                     ptr_or_null<float>(g[2]), ptr_or_null<float>(g[3]), stream_of(xys));
  return g;
}

std::vector<Tensor> no_tiles_forward(const Tensor& xys, const Tensor& radii, const Tensor& conics,
                                     const Tensor& colors, const Tensor& opacities, int64_t height, int64_t width,
                                     int64_t mode, int64_t k, int64_t /*nthreads*/) {
  check_cuda_float(xys, "xys");
  check_raster_inputs(xys, radii, conics, colors, opacities, height, width, mode, k);
  const c10::cuda::CUDAGuard guard(xys.device());
  std::vector<Tensor> fo = forward_outputs(xys, height, width, colors.size(1), mode, k);
  const auto a = make_cuda_args(xys, radii, conics, colors, opacities, height, width, mode, k);
  lgi::cuda_no_tiles_forward(a, fo[0].data_ptr<float>(), ptr_or_null<int32_t>(fo[1]), ptr_or_null<float>(fo[2]),
                             ptr_or_null<float>(fo[3]), stream_of(xys));
  return fo;
}

std::vector<Tensor> no_tiles_backward(const Tensor& xys, const Tensor& radii, const Tensor& conics,
                                      const Tensor& colors, const Tensor& opacities, int64_t height,
                                      int64_t width, int64_t mode, int64_t k, const Tensor& grad_out,
                                      const Tensor& out, const Tensor& sel, const Tensor& wsel, const Tensor& wsum,
                                      bool need_geom, bool need_col, bool need_opac, int64_t /*nthreads*/) {
  check_cuda_float(grad_out, "grad_out");
  const c10::cuda::CUDAGuard guard(xys.device());
  const int64_t n = xys.size(0), c = colors.size(1);
  std::vector<Tensor> g = grad_outputs(xys, n, c, need_geom, need_col, need_opac && opacities.numel() > 0);
  const auto a = make_cuda_args(xys, radii, conics, colors, opacities, height, width, mode, k);
  lgi::cuda_no_tiles_backward(a, grad_out.data_ptr<float>(), out.data_ptr<float>(),
                              ptr_or_null<const int32_t>(sel), ptr_or_null<const float>(wsel),
                              ptr_or_null<const float>(wsum),
                              ptr_or_null<float>(g[0]), ptr_or_null<float>(g[1]), ptr_or_null<float>(g[2]),
                              ptr_or_null<float>(g[3]), stream_of(xys));
  return g;
}
#endif

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "lgi-gsplat2d native kernels";
  m.def("project_forward", &project_forward, "means, scales, rotations, H, W, tile, threads -> 4 tensors");
  m.def("project_backward", &project_backward, "scales, rotations, H, W, grad_xys, grad_conics, threads");
  m.def("rasterize_forward", &rasterize_forward, "tiled forward");
  m.def("rasterize_backward", &rasterize_backward, "tiled backward");
  m.def("no_tiles_forward", &no_tiles_forward, "untiled forward");
  m.def("no_tiles_backward", &no_tiles_backward, "untiled backward");
#if defined(LGI_WITH_CUDA)
  m.attr("device") = "cuda";
#else
  m.attr("device") = "cpu";
#endif
}
