// CUDA tile rasterizer (float32), same semantics as rasterize_cpu.cpp.
//
// Steps (ext.cpp drives them): cuda_count -> exclusive scan of the counts (gauss_offsets) -> cuda_emit writes
// one key (tile << 32 | gaussian) per intersection at its slot -> torch::sort of the keys (unique, so the
// order is deterministic; the permutation is list_slot) -> searchsorted gives tile_offsets -> cuda_forward,
// one 16x16 block per tile, one thread per pixel, the tile's Gaussians staged through shared memory.
//
// Backward without atomics: for each tile entry, every pixel's contribution is reduced over the block in
// a fixed order (warp shuffles, then the warps in order) into that entry's slot of `partials`; a second
// kernel sums each Gaussian's slots in slot order. Gradients are therefore bitwise reproducible.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "common.h"
#include "rasterize.h"

namespace lgi {
namespace {

constexpr int kThreads = 256;               // 1D launches
constexpr int kWarps = kTilePixels / 32;    // warps of a tile block
constexpr int kStats = 6;                   // partial layout: S_x, S_y, S_xx, S_xy, S_yy, S_0, then C colours
constexpr int kMaxBatch = 32;               // tile entries per backward batch
constexpr int kSharedFloats = 10240;        // 40 KiB of dynamic shared memory for the backward reduction
                                            // (+ ~1.3 KiB static: under the 48 KiB default limit)
constexpr float kLim9 = 9.000001f;          // nextafterf(9, inf): q <= 9 <=> q < kLim9

void check_launch(const char* what) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

__device__ __forceinline__ PixBox box_of(const CudaRaster& a, int64_t g) {
  return pixel_box(double(a.xys[2 * g]), double(a.xys[2 * g + 1]), a.radii[g], a.height, a.width);
}

__device__ __forceinline__ bool in_box(const PixBox& b, int i, int j) {
  return j >= b.j0 && j <= b.j1 && i >= b.i0 && i <= b.i1;
}

__device__ __forceinline__ float q_at(float x, float y, float a, float b2, float c, float px, float py) {
  const float dx = px - x, dy = py - y;
  return q_form(a, dx, mul_rn(b2, dy), mul_rn(mul_rn(c, dy), dy));
}

// A Gaussian's weight exp(-q/2), at most 1: a q that rounding made negative counts as 0 (common.h, q_form).
__device__ __forceinline__ float weight_of(float q) { return __expf(fminf(-0.5f * q, 0.0f)); }

// A batch of a tile's Gaussians staged in shared memory: centre, conic with b doubled (for q_at), index and
// pixel box of each.
template <int N>
struct Staged {
  float x[N], y[N], a[N], b2[N], c[N];
  int32_t g[N];
  int4 box[N];

  __device__ __forceinline__ void load(const CudaRaster& r, int slot, int32_t gid) {
    x[slot] = r.xys[2 * gid];
    y[slot] = r.xys[2 * gid + 1];
    a[slot] = r.conics[3 * gid];
    b2[slot] = 2.0f * r.conics[3 * gid + 1];
    c[slot] = r.conics[3 * gid + 2];
    g[slot] = gid;
    const PixBox b = box_of(r, gid);
    box[slot] = make_int4(b.j0, b.j1, b.i0, b.i1);
  }
  __device__ __forceinline__ float q(int slot, float px, float py) const {
    return q_at(x[slot], y[slot], a[slot], b2[slot], c[slot], px, py);
  }
};

__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;
}

// ---------------------------------------------------------------------------------------------- binning

__global__ void count_kernel(CudaRaster a, const int32_t* num_tiles_hit, int32_t* counts, int32_t* mismatch) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= a.n) return;
  const int cnt = box_tiles(box_of(a, g));
  counts[g] = cnt;
  if (cnt != num_tiles_hit[g]) atomicMin(mismatch, static_cast<int32_t>(g));
}

__global__ void emit_kernel(CudaRaster a, const int64_t* gauss_offsets, int64_t* keys) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= a.n) return;
  const PixBox b = box_of(a, g);
  if (b.empty()) return;
  const int tx_count = (a.width + kTile - 1) / kTile;
  int64_t s = gauss_offsets[g];
  for (int ty = b.i0 / kTile; ty <= b.i1 / kTile; ++ty) {
    for (int tx = b.j0 / kTile; tx <= b.j1 / kTile; ++tx) {
      keys[s++] = (static_cast<int64_t>(ty) * tx_count + tx) << 32 | g;
    }
  }
}

// ---------------------------------------------------------------------------------------------- forward

// CC > 0: C = CC channels accumulated in registers; CC == 0: any C, accumulated in `out` (each thread owns
// its pixel, so there is no race).
template <int CC>
__global__ void forward_kernel(CudaRaster a, const int32_t* tile_offsets, const int32_t* list_gid, float* out,
                               int32_t* sel, float* wsel, float* wsum) {
  __shared__ Staged<kTilePixels> s;
  __shared__ float s_o[kTilePixels];
  const int C = CC > 0 ? CC : a.channels, K = a.k;
  const int tx_count = (a.width + kTile - 1) / kTile;
  const int t = blockIdx.y * tx_count + blockIdx.x;
  const int i = blockIdx.y * kTile + threadIdx.y, j = blockIdx.x * kTile + threadIdx.x;
  const int tid = threadIdx.y * kTile + threadIdx.x;
  const bool inside = i < a.height && j < a.width;
  const int64_t P = inside ? static_cast<int64_t>(i) * a.width + j : 0;
  const float px = j + 0.5f, py = i + 0.5f;
  float acc[CC > 0 ? CC : 1];
  for (int ch = 0; ch < (CC > 0 ? CC : 1); ++ch) acc[ch] = 0.0f;
  if (CC == 0 && inside) {
    for (int ch = 0; ch < C; ++ch) out[P * C + ch] = 0.0f;
  }
  float qs[kMaxK];
  int32_t ids[kMaxK];
  int cnt = 0;
  float lim = kLim9;
  const int e0 = tile_offsets[t], e1 = tile_offsets[t + 1];
  for (int b0 = e0; b0 < e1; b0 += kTilePixels) {
    __syncthreads();
    if (b0 + tid < e1) {
      const int32_t g = list_gid[b0 + tid];
      s.load(a, tid, g);
      s_o[tid] = a.opacities ? a.opacities[g] : 1.0f;
    }
    __syncthreads();
    const int nb = min(kTilePixels, e1 - b0);
    if (!inside) continue;
    for (int k = 0; k < nb; ++k) {
      const int4 bx = s.box[k];
      if (j < bx.x || j > bx.y || i < bx.z || i > bx.w) continue;
      const float q = s.q(k, px, py);
      if (is_topk(a.mode)) {
        if (q < lim) topk_insert(qs, ids, cnt, lim, K, q, b0 + k);
      } else if (q <= float(kCutoff)) {
        const float w = weight_of(q);
        const float* col = a.colors + static_cast<int64_t>(s.g[k]) * C;
        if (CC > 0) {
#pragma unroll
          for (int ch = 0; ch < (CC > 0 ? CC : 1); ++ch) acc[ch] += col[ch] * s_o[k] * w;
        } else {
          for (int ch = 0; ch < C; ++ch) out[P * C + ch] += col[ch] * s_o[k] * w;
        }
      }
    }
  }
  if (!inside) return;
  if (is_topk(a.mode)) {
    float wt = 0.0f;
    if (CC == 0) {
      for (int ch = 0; ch < C; ++ch) out[P * C + ch] = 0.0f;
    }
    const float floor = topk_floor<float>(a.mode);
    for (int kk = 0; kk < cnt; ++kk) {
      const float w = topk_weight(weight_of(qs[kk]), floor);
      const float* col = a.colors + static_cast<int64_t>(list_gid[ids[kk]]) * C;
      wt += w;
      if (CC > 0) {
#pragma unroll
        for (int ch = 0; ch < (CC > 0 ? CC : 1); ++ch) acc[ch] += w * col[ch];
      } else {
        for (int ch = 0; ch < C; ++ch) out[P * C + ch] += w * col[ch];
      }
      sel[P * K + kk] = ids[kk];
      wsel[P * K + kk] = w;
    }
    for (int kk = cnt; kk < K; ++kk) {
      sel[P * K + kk] = -1;
      wsel[P * K + kk] = 0.0f;
    }
    const float denom = wt + topk_eps<float>(a.mode);
    if (CC > 0) {
#pragma unroll
      for (int ch = 0; ch < (CC > 0 ? CC : 1); ++ch) out[P * C + ch] = acc[ch] / denom;
    } else {
      for (int ch = 0; ch < C; ++ch) out[P * C + ch] /= denom;
    }
    wsum[P] = wt;
  } else if (CC > 0) {
#pragma unroll
    for (int ch = 0; ch < (CC > 0 ? CC : 1); ++ch) out[P * C + ch] = acc[ch];
  }
}

// --------------------------------------------------------------------------------------------- backward

// One block per tile. `nb` entries per batch; red: dynamic shared [kWarps][nb][G].
__global__ void backward_kernel(CudaRaster a, const int32_t* tile_offsets, const int32_t* list_gid,
                                const int32_t* list_slot, const float* grad_out, const float* out,
                                const int32_t* sel, const float* wsel, const float* wsum, int nb,
                                float* partials) {
  extern __shared__ float red[];
  __shared__ Staged<kMaxBatch> s;
  const int C = a.channels, K = a.k, G = kStats + C;
  const int tx_count = (a.width + kTile - 1) / kTile;
  const int t = blockIdx.y * tx_count + blockIdx.x;
  const int i = blockIdx.y * kTile + threadIdx.y, j = blockIdx.x * kTile + threadIdx.x;
  const int tid = threadIdx.y * kTile + threadIdx.x, warp = tid / 32, lane = tid % 32;
  const bool inside = i < a.height && j < a.width;
  const int64_t P = inside ? static_cast<int64_t>(i) * a.width + j : 0;
  const float px = j + 0.5f, py = i + 0.5f;
  const float* gp = grad_out + P * C;
  const float* op = out + P * C;
  // Top-K: this pixel's selected entries sorted by entry index, walked with a cursor as entries go by.
  int32_t se[kMaxK];
  float sw[kMaxK];
  int n_sel = 0, cursor = 0;
  float denom = 1.0f;
  if (is_topk(a.mode) && inside) {
    for (int kk = 0; kk < K && sel[P * K + kk] >= 0; ++kk) {
      sorted_insert(se, sw, n_sel++, sel[P * K + kk], wsel[P * K + kk]);
    }
    denom = wsum[P] + topk_eps<float>(a.mode);
  }
  const int e0 = tile_offsets[t], e1 = tile_offsets[t + 1];
  for (int b0 = e0; b0 < e1; b0 += nb) {
    const int nbb = min(nb, e1 - b0);
    __syncthreads();
    if (tid < nbb) {
      s.load(a, tid, list_gid[b0 + tid]);
    }
    __syncthreads();
    for (int k = 0; k < nbb; ++k) {
      const int32_t e = b0 + k;
      const float dx = px - s.x[k], dy = py - s.y[k];
      const float* col = a.colors + static_cast<int64_t>(s.g[k]) * C;
      float w = 0.0f, t_ = 0.0f, wc = 0.0f;
      if (is_topk(a.mode)) {
        if (cursor < n_sel && se[cursor] == e) {
          w = sw[cursor++];
          t_ = topk_t(gp, col, op, C, w, topk_floor<float>(a.mode), denom);
          wc = w / denom;
        }
      } else if (inside) {
        const int4 bx = s.box[k];
        const bool hit = !(j < bx.x || j > bx.y || i < bx.z || i > bx.w);
        const float q = s.q(k, px, py);
        if (hit && q <= float(kCutoff)) {
          w = weight_of(q);
          float gc = 0.0f;
          for (int ch = 0; ch < C; ++ch) gc += col[ch] * gp[ch];
          t_ = w * gc;
          wc = w;
        }
      }
      const float tdx = t_ * dx, tdy = t_ * dy;
      const float v[kStats] = {tdx, tdy, tdx * dx, tdx * dy, tdy * dy, t_};
      float* dst = red + (static_cast<int64_t>(warp) * nb + k) * G;
#pragma unroll
      for (int s = 0; s < kStats; ++s) {
        const float r = warp_sum(v[s]);
        if (lane == 0) dst[s] = r;
      }
      for (int ch = 0; ch < C; ++ch) {
        const float r = warp_sum(inside ? gp[ch] * wc : 0.0f);
        if (lane == 0) dst[kStats + ch] = r;
      }
    }
    __syncthreads();
    for (int idx = tid; idx < nbb * G; idx += kTilePixels) {
      const int k = idx / G, s = idx % G;
      float sum = 0.0f;
      for (int w = 0; w < kWarps; ++w) sum += red[(static_cast<int64_t>(w) * nb + k) * G + s];
      partials[static_cast<int64_t>(list_slot[b0 + k]) * G + s] = sum;
    }
  }
}

// Per Gaussian: its slots in order -> gradients (as finish_gaussian on the CPU).
__global__ void reduce_kernel(CudaRaster a, const int64_t* gauss_offsets, const float* partials, float* grad_xys,
                              float* grad_conics, float* grad_colors, float* grad_opacities) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= a.n) return;
  const int C = a.channels, G = kStats + C;
  const int64_t s0 = gauss_offsets[g], s1 = gauss_offsets[g + 1];
  float S[kStats];
  for (int s = 0; s < kStats; ++s) {
    float sum = 0.0f;
    for (int64_t r = s0; r < s1; ++r) sum += partials[r * G + s];
    S[s] = sum;
  }
  const float o = a.opacities ? a.opacities[g] : 1.0f;
  const bool live = a.radii[g] > 0;  // culled: zero gradients (its conic may be infinite)
  if (grad_xys) {
    const float ca = live ? a.conics[3 * g] : 0.0f, cb = live ? a.conics[3 * g + 1] : 0.0f;
    const float cc = live ? a.conics[3 * g + 2] : 0.0f;
    grad_xys[2 * g] = o * (ca * S[0] + cb * S[1]);
    grad_xys[2 * g + 1] = o * (cb * S[0] + cc * S[1]);
    grad_conics[3 * g] = -0.5f * o * S[2];
    grad_conics[3 * g + 1] = -o * S[3];
    grad_conics[3 * g + 2] = -0.5f * o * S[4];
  }
  if (grad_colors) {
    for (int ch = 0; ch < C; ++ch) {
      float sum = 0.0f;
      for (int64_t r = s0; r < s1; ++r) sum += partials[r * G + kStats + ch];
      grad_colors[g * C + ch] = o * sum;
    }
  }
  if (grad_opacities) grad_opacities[g] = S[5];
}

// --------------------------------------------------------------------------------------------- no tiles

__global__ void no_tiles_forward_kernel(CudaRaster a, float* out, int32_t* sel, float* wsel, float* wsum) {
  const int i = blockIdx.y * kTile + threadIdx.y, j = blockIdx.x * kTile + threadIdx.x;
  if (i >= a.height || j >= a.width) return;
  const int C = a.channels, K = a.k;
  const int64_t P = static_cast<int64_t>(i) * a.width + j;
  const float px = j + 0.5f, py = i + 0.5f;
  for (int ch = 0; ch < C; ++ch) out[P * C + ch] = 0.0f;
  float qs[kMaxK];
  int32_t ids[kMaxK];
  int cnt = 0;
  float lim = kLim9;
  for (int64_t g = 0; g < a.n; ++g) {
    if (!in_box(box_of(a, g), i, j)) continue;
    const float q = q_at(a.xys[2 * g], a.xys[2 * g + 1], a.conics[3 * g], 2.0f * a.conics[3 * g + 1],
                         a.conics[3 * g + 2], px, py);
    if (is_topk(a.mode)) {
      if (q < lim) topk_insert(qs, ids, cnt, lim, K, q, static_cast<int32_t>(g));
    } else if (q <= float(kCutoff)) {
      const float w = weight_of(q) * (a.opacities ? a.opacities[g] : 1.0f);
      for (int ch = 0; ch < C; ++ch) out[P * C + ch] += w * a.colors[g * C + ch];
    }
  }
  if (!is_topk(a.mode)) return;
  float wt = 0.0f;
  const float floor = topk_floor<float>(a.mode);
  for (int kk = 0; kk < cnt; ++kk) {
    const float w = topk_weight(weight_of(qs[kk]), floor);
    wt += w;
    for (int ch = 0; ch < C; ++ch) out[P * C + ch] += w * a.colors[static_cast<int64_t>(ids[kk]) * C + ch];
    sel[P * K + kk] = ids[kk];
    wsel[P * K + kk] = w;
  }
  for (int kk = cnt; kk < K; ++kk) {
    sel[P * K + kk] = -1;
    wsel[P * K + kk] = 0.0f;
  }
  for (int ch = 0; ch < C; ++ch) out[P * C + ch] /= wt + topk_eps<float>(a.mode);
  wsum[P] = wt;
}

// One thread per Gaussian over its pixel box, in raster order: deterministic without atomics.
__global__ void no_tiles_backward_kernel(CudaRaster a, const float* grad_out, const float* out,
                                         const int32_t* sel, const float* wsel, const float* wsum,
                                         float* grad_xys, float* grad_conics, float* grad_colors,
                                         float* grad_opacities) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= a.n) return;
  const int C = a.channels, K = a.k;
  const PixBox b = box_of(a, g);
  const float x = a.xys[2 * g], y = a.xys[2 * g + 1];
  const bool live = a.radii[g] > 0;  // culled: zero gradients (its conic may be infinite)
  const float ca = live ? a.conics[3 * g] : 0.0f, cb = live ? a.conics[3 * g + 1] : 0.0f;
  const float cc = live ? a.conics[3 * g + 2] : 0.0f;
  const float* colg = a.colors + g * C;
  float S[kStats] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  if (grad_colors) {
    for (int ch = 0; ch < C; ++ch) grad_colors[g * C + ch] = 0.0f;
  }
  for (int i = b.i0; i <= b.i1; ++i) {
    for (int j = b.j0; j <= b.j1; ++j) {
      const int64_t P = static_cast<int64_t>(i) * a.width + j;
      const float px = j + 0.5f, py = i + 0.5f;
      const float q = q_at(x, y, ca, 2.0f * cb, cc, px, py);
      if (!(q <= float(kCutoff))) continue;
      const float* gp = grad_out + P * C;
      float t_, wc;
      if (is_topk(a.mode)) {
        int found = -1;
        for (int kk = 0; kk < K && sel[P * K + kk] >= 0; ++kk) {
          if (sel[P * K + kk] == g) found = kk;
        }
        if (found < 0) continue;
        const float w = wsel[P * K + found], denom = wsum[P] + topk_eps<float>(a.mode);
        t_ = topk_t(gp, colg, out + P * C, C, w, topk_floor<float>(a.mode), denom);
        wc = w / denom;
      } else {
        const float w = weight_of(q);
        float gc = 0.0f;
        for (int ch = 0; ch < C; ++ch) gc += colg[ch] * gp[ch];
        t_ = w * gc;
        wc = w;
      }
      const float dx = px - x, dy = py - y, tdx = t_ * dx, tdy = t_ * dy;
      S[0] += tdx;
      S[1] += tdy;
      S[2] += tdx * dx;
      S[3] += tdx * dy;
      S[4] += tdy * dy;
      S[5] += t_;
      if (grad_colors) {
        for (int ch = 0; ch < C; ++ch) grad_colors[g * C + ch] += gp[ch] * wc;
      }
    }
  }
  const float o = a.opacities ? a.opacities[g] : 1.0f;
  if (grad_xys) {
    grad_xys[2 * g] = o * (ca * S[0] + cb * S[1]);
    grad_xys[2 * g + 1] = o * (cb * S[0] + cc * S[1]);
    grad_conics[3 * g] = -0.5f * o * S[2];
    grad_conics[3 * g + 1] = -o * S[3];
    grad_conics[3 * g + 2] = -0.5f * o * S[4];
  }
  if (grad_colors && o != 1.0f) {
    for (int ch = 0; ch < C; ++ch) grad_colors[g * C + ch] *= o;
  }
  if (grad_opacities) grad_opacities[g] = S[5];
}

dim3 tile_grid(int height, int width) {
  return dim3((width + kTile - 1) / kTile, (height + kTile - 1) / kTile);
}

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

}  // namespace

void cuda_count(const CudaRaster& a, const int32_t* num_tiles_hit, int32_t* counts, int32_t* mismatch,
                void* stream) {
  if (a.n == 0) return;
  count_kernel<<<blocks_for(a.n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(a, num_tiles_hit, counts,
                                                                                     mismatch);
  check_launch("cuda_count");
}

void cuda_emit(const CudaRaster& a, const int64_t* gauss_offsets, int64_t* keys, void* stream) {
  if (a.n == 0) return;
  emit_kernel<<<blocks_for(a.n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(a, gauss_offsets, keys);
  check_launch("cuda_emit");
}

void cuda_forward(const CudaRaster& a, const int32_t* tile_offsets, const int32_t* list_gid, float* out,
                  int32_t* sel, float* wsel, float* wsum, void* stream) {
  const dim3 block(kTile, kTile);
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (a.channels) {
    case 1:
      forward_kernel<1><<<tile_grid(a.height, a.width), block, 0, s>>>(a, tile_offsets, list_gid, out, sel, wsel,
                                                                       wsum);
      break;
    case 3:
      forward_kernel<3><<<tile_grid(a.height, a.width), block, 0, s>>>(a, tile_offsets, list_gid, out, sel, wsel,
                                                                       wsum);
      break;
    default:
      forward_kernel<0><<<tile_grid(a.height, a.width), block, 0, s>>>(a, tile_offsets, list_gid, out, sel, wsel,
                                                                       wsum);
  }
  check_launch("cuda_forward");
}

void cuda_backward(const CudaRaster& a, int64_t m, const int64_t* gauss_offsets, const int32_t* tile_offsets,
                   const int32_t* list_gid, const int32_t* list_slot, const float* grad_out, const float* out,
                   const int32_t* sel, const float* wsel, const float* wsum, float* partials, float* grad_xys,
                   float* grad_conics, float* grad_colors, float* grad_opacities, void* stream) {
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int G = kStats + a.channels;
  int nb = kSharedFloats / (kWarps * G);
  nb = nb < 1 ? 1 : (nb > kMaxBatch ? kMaxBatch : nb);
  if (G > kSharedFloats / kWarps) throw std::runtime_error("too many colour channels for the CUDA backward");
  if (m > 0) {
    const size_t shared = sizeof(float) * static_cast<size_t>(kWarps) * nb * G;
    backward_kernel<<<tile_grid(a.height, a.width), dim3(kTile, kTile), shared, s>>>(
        a, tile_offsets, list_gid, list_slot, grad_out, out, sel, wsel, wsum, nb, partials);
    check_launch("cuda_backward (tiles)");
  }
  if (a.n > 0) {
    reduce_kernel<<<blocks_for(a.n), kThreads, 0, s>>>(a, gauss_offsets, partials, grad_xys, grad_conics,
                                                       grad_colors, grad_opacities);
    check_launch("cuda_backward (reduce)");
  }
}

void cuda_no_tiles_forward(const CudaRaster& a, float* out, int32_t* sel, float* wsel, float* wsum, void* stream) {
  no_tiles_forward_kernel<<<tile_grid(a.height, a.width), dim3(kTile, kTile), 0,
                            static_cast<cudaStream_t>(stream)>>>(a, out, sel, wsel, wsum);
  check_launch("cuda_no_tiles_forward");
}

void cuda_no_tiles_backward(const CudaRaster& a, const float* grad_out, const float* out, const int32_t* sel,
                            const float* wsel, const float* wsum, float* grad_xys, float* grad_conics,
                            float* grad_colors, float* grad_opacities, void* stream) {
  if (a.n == 0) return;
  no_tiles_backward_kernel<<<blocks_for(a.n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      a, grad_out, out, sel, wsel, wsum, grad_xys, grad_conics, grad_colors, grad_opacities);
  check_launch("cuda_no_tiles_backward");
}

}  // namespace lgi
