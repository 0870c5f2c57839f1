// A C entry point to the CPU kernels for callers without torch (lgi_gsplat2d/native.py loads it with
// ctypes): decoding a .lgi file then needs neither torch nor its start-up. Forward only, float32.
//
// It runs the very kernels the torch extension runs (project_forward_cpu, rasterize_forward_cpu) on the
// same inputs, so an image drawn here equals the extension's bit for bit. No C++ exception crosses the C
// boundary: every failure is a status code and a message in the caller's buffer.
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <stdexcept>
#include <vector>

#include "common.h"
#include "project.h"
#include "rasterize.h"

namespace {

constexpr int kOk = 0, kBadArgs = 1, kLimit = 2, kNoMemory = 3, kInternal = 4;

int fail(char* err, int errlen, int code, const char* msg) {
  if (err && errlen > 0) std::snprintf(err, static_cast<size_t>(errlen), "%s", msg);
  return code;
}

}  // namespace

extern "C" {

// Bumped when a signature below changes; native.py refuses a library of another version.
int lgi_native_abi(void) { return 2; }  // 2: the blend-mode ids are the file's

// Draw rows [y0, y0 + rows) of the height x width image of n Gaussians into out [rows, width, channels]
// (float32, not clamped), as lgi_gsplat2d.render would draw the whole image and then crop it: the
// Gaussians are projected at the full size, shifted up by y0 and rasterized on a rows-high canvas.
//
// means [n,2], scales [n,2], rotations [n], colors [n,channels]: contiguous float32 (unit square, as in
// lgi_gsplat2d.functional). mode: 0 sum, 1 topk, 2 topk-hard (common.h); k: the top-K (1..32).
// Returns 0, or 1 bad arguments, 2 a limit of the rasterizer (2^31 slots or intersections), 3 out of
// memory, 4 an internal error; then err holds a message.
int lgi_render_band_f32(int64_t n, const float* means, const float* scales, const float* rotations,
                        const float* colors, int channels, int height, int width, int y0, int rows, int mode,
                        int k, int nthreads, float* out, char* err, int errlen) {
  using lgi::kTile;
  if (n < 0 || channels < 1 || height < 1 || width < 1 || rows < 1 || y0 < 0 || rows > height - y0 ||
      mode < 0 || mode > 2 || k < 1 || k > lgi::kMaxK || out == nullptr ||
      (n > 0 && (!means || !scales || !rotations || !colors))) {
    return fail(err, errlen, kBadArgs, "invalid arguments");
  }
  if (n > std::numeric_limits<int32_t>::max()) return fail(err, errlen, kLimit, "more than 2^31 - 1 Gaussians");
  const int64_t slots = int64_t(rows) * width * (lgi::is_topk(mode) ? k : 1);
  if (slots > std::numeric_limits<int32_t>::max()) {
    return fail(err, errlen, kLimit, "rows x width x k exceeds 2^31 - 1; render in smaller bands");
  }
  try {
    if (nthreads < 1) nthreads = 1;
    std::vector<float> xys(2 * n), conics(3 * n);
    std::vector<int32_t> radii(n), tiles(n);
    lgi::project_forward_cpu<float>(n, means, scales, rotations, height, width, kTile, xys.data(), radii.data(),
                                    conics.data(), tiles.data(), nthreads);
    if (y0 != 0 || rows != height) {
      // The band's canvas: centres shifted up by y0 (float32, as the torch path shifts them), tile counts
      // of the boxes on that canvas (0 for a Gaussian that misses it).
      for (int64_t g = 0; g < n; ++g) {
        xys[2 * g + 1] -= static_cast<float>(y0);
        const lgi::PixBox b = lgi::pixel_box(double(xys[2 * g]), double(xys[2 * g + 1]), radii[g], rows, width);
        tiles[g] = lgi::box_tiles(b);
      }
    }
    lgi::RasterArgs<float> a;
    a.n = n;
    a.height = rows;
    a.width = width;
    a.channels = channels;
    a.mode = mode;
    a.k = k;
    a.xys = xys.data();
    a.radii = radii.data();
    a.conics = conics.data();
    a.colors = colors;
    a.nthreads = nthreads;
    const int64_t num_tiles = int64_t(lgi::tiles_x(width)) * lgi::tiles_y(rows);
    std::vector<int32_t> goff(n + 1), toff(num_tiles + 1), boxes(4 * n), gid, slot;
    const lgi::ListAllocator alloc = [&](int64_t m, int32_t** pg, int32_t** ps) {
      gid.resize(m);
      slot.resize(m);
      *pg = gid.data();
      *ps = slot.data();
    };
    const int64_t bad = lgi::rasterize_forward_cpu<float>(a, tiles.data(), goff.data(), toff.data(), boxes.data(),
                                                          alloc, out, nullptr, nullptr, nullptr);
    if (bad >= 0) return fail(err, errlen, kInternal, "tile counts disagree with the projection");
  } catch (const std::length_error& exc) {
    return fail(err, errlen, kLimit, exc.what());
  } catch (const std::bad_alloc&) {
    return fail(err, errlen, kNoMemory, "out of memory");
  } catch (const std::exception& exc) {
    return fail(err, errlen, kInternal, exc.what());
  } catch (...) {
    return fail(err, errlen, kInternal, "unknown error");
  }
  return kOk;
}

}  // extern "C"
