// Tile rasterization of projected 2D Gaussians: raw-pointer kernels (no torch types).
//
// Intersections. Gaussian g touches the tiles of its pixel box (common.h: pixel_box) in row-major order;
// its intersections own the "slots" gauss_offsets[g] .. gauss_offsets[g+1]-1 (Gaussian-major order). The
// tile lists are the same intersections ordered by (tile, Gaussian index): entry e of tile t lies in
// [tile_offsets[t], tile_offsets[t+1]) with list_gid[e] (Gaussian) and list_slot[e] (its slot).
//
// Determinism. Each tile writes only its own pixels and its own entries' slots; the backward pass writes
// one partial per slot, then reduces each Gaussian's slots in slot order. No atomics, no per-thread
// accumulators: results are bitwise identical for any thread count.
#pragma once

#include <cstdint>
#include <functional>

namespace lgi {

template <typename T>
struct RasterArgs {
  int64_t n = 0;          // Gaussians
  int height = 0, width = 0;
  int channels = 0;       // C
  int mode = 1;           // kModeTopkHard 0 | kModeSum 1 | kModeTopk 2 (common.h)
  int k = 0;              // top-K
  const T* xys = nullptr;          // [N,2] pixel-space centres
  const int32_t* radii = nullptr;  // [N] 0 = culled
  const T* conics = nullptr;       // [N,3] (a, b, c)
  const T* colors = nullptr;       // [N,C]
  const T* opacities = nullptr;    // [N] or null (sum mode only)
  int nthreads = 1;
};

// Tile grid of an image.
inline int tiles_x(int width) { return (width + 15) / 16; }
inline int tiles_y(int height) { return (height + 15) / 16; }

// Called once by the forward with the number of intersections M; returns list_gid [M] and list_slot [M].
using ListAllocator = std::function<void(int64_t m, int32_t** list_gid, int32_t** list_slot)>;

// Forward: bins the Gaussians (gauss_offsets [N+1], tile_offsets [T+1], boxes [N,4] = pixel boxes
// (j0, j1, i0, i1), the lists through `alloc`), then renders out [H,W,C]; top-K mode also writes
// sel [H,W,K] (list entries, ascending (q, entry), -1 padded), wsel [H,W,K] (their weights, 0 padded)
// and wsum [H,W] (sum of the selected weights), unless sel is null (a render that no backward pass
// follows: all three are skipped). num_tiles_hit [N] is checked against the radii: returns
// -1, or the first Gaussian whose count disagrees (then nothing is rendered).
template <typename T>
int64_t rasterize_forward_cpu(const RasterArgs<T>& a, const int32_t* num_tiles_hit, int32_t* gauss_offsets,
                              int32_t* tile_offsets, int32_t* boxes, const ListAllocator& alloc, T* out,
                              int32_t* sel, T* wsel, T* wsum);

// Backward. m = M; the binning, sel, wsel and wsum from the forward; grad_out [H,W,C], out [H,W,C].
// Outputs (null = not needed): grad_xys [N,2], grad_conics [N,3] (both or neither), grad_colors [N,C],
// grad_opacities [N].
template <typename T>
void rasterize_backward_cpu(const RasterArgs<T>& a, int64_t m, const int32_t* gauss_offsets,
                            const int32_t* tile_offsets, const int32_t* boxes, const int32_t* list_gid,
                            const int32_t* list_slot, const T* grad_out, const T* out, const int32_t* sel,
                            const T* wsel, const T* wsum, T* grad_xys, T* grad_conics, T* grad_colors,
                            T* grad_opacities);

// Untiled variant: every pixel visits every Gaussian (sel holds Gaussian indices), same outputs.
template <typename T>
void rasterize_no_tiles_forward_cpu(const RasterArgs<T>& a, T* out, int32_t* sel, T* wsel, T* wsum);

template <typename T>
void rasterize_no_tiles_backward_cpu(const RasterArgs<T>& a, const T* grad_out, const T* out, const int32_t* sel,
                                     const T* wsel, const T* wsum, T* grad_xys, T* grad_conics, T* grad_colors,
                                     T* grad_opacities);

#if defined(LGI_WITH_CUDA)
// CUDA (float32). The launchers take device pointers and a cudaStream_t passed as void*; ext.cpp owns the
// allocations and the sort (see rasterize_cuda.cu for the steps).
struct CudaRaster {
  int64_t n;
  int height, width, channels, mode, k;
  const float* xys;
  const int32_t* radii;
  const float* conics;
  const float* colors;
  const float* opacities;  // null: all ones
};

// Per-Gaussian intersection counts [N] (0 when culled) and a mismatch flag against num_tiles_hit.
void cuda_count(const CudaRaster& a, const int32_t* num_tiles_hit, int32_t* counts, int32_t* mismatch,
                void* stream);
// Keys (tile << 32 | gaussian) of every intersection, written Gaussian-major at gauss_offsets [N+1] (the
// exclusive scan of the counts), so an intersection's position is its slot. ext.cpp sorts the keys (they are
// unique, so the order is deterministic); the sort permutation is list_slot and searchsorted gives the tiles.
void cuda_emit(const CudaRaster& a, const int64_t* gauss_offsets, int64_t* keys, void* stream);
// Forward: out [H,W,C], sel [H,W,K], wsel [H,W,K], wsum [H,W]; list_gid [M] = Gaussian of each entry.
void cuda_forward(const CudaRaster& a, const int32_t* tile_offsets, const int32_t* list_gid, float* out,
                  int32_t* sel, float* wsel, float* wsum, void* stream);
// Backward: partials [M, 6 + C] per slot, then per-Gaussian reduction.
void cuda_backward(const CudaRaster& a, int64_t m, const int64_t* gauss_offsets, const int32_t* tile_offsets,
                   const int32_t* list_gid, const int32_t* list_slot, const float* grad_out, const float* out,
                   const int32_t* sel, const float* wsel, const float* wsum, float* partials, float* grad_xys,
                   float* grad_conics, float* grad_colors, float* grad_opacities, void* stream);
void cuda_no_tiles_forward(const CudaRaster& a, float* out, int32_t* sel, float* wsel, float* wsum, void* stream);
void cuda_no_tiles_backward(const CudaRaster& a, const float* grad_out, const float* out, const int32_t* sel,
                            const float* wsel, const float* wsum, float* grad_xys, float* grad_conics,
                            float* grad_colors, float* grad_opacities, void* stream);
#endif

}  // namespace lgi
