// Python bindings. The CPU extension is built from this file and ssim_cpu.cpp; the CUDA extension
// from this file (with LGI_FUSED_SSIM_CUDA defined) and ssim_cuda.cu. Both expose `forward` and
// `backward` with the contracts documented in ssim.h.
#include <torch/extension.h>

#include "ssim.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
#ifdef LGI_FUSED_SSIM_CUDA
  m.def("forward", &lgi_fused_ssim::ssim_forward_cuda, "fused SSIM forward (CUDA)", py::arg("img1"),
        py::arg("img2"), py::arg("same"), py::arg("train"));
  m.def("backward", &lgi_fused_ssim::ssim_backward_cuda, "fused SSIM backward (CUDA)", py::arg("img1"),
        py::arg("img2"), py::arg("dl_dmap"), py::arg("dm_dmu1"), py::arg("dm_dsxx"), py::arg("dm_dsxy"),
        py::arg("same"));
#else
  m.def("forward", &lgi_fused_ssim::ssim_forward_cpu, "fused SSIM forward (CPU, OpenMP)", py::arg("img1"),
        py::arg("img2"), py::arg("same"), py::arg("train"));
  m.def("backward", &lgi_fused_ssim::ssim_backward_cpu, "fused SSIM backward (CPU, OpenMP)",
        py::arg("img1"), py::arg("img2"), py::arg("dl_dmap"), py::arg("dm_dmu1"), py::arg("dm_dsxx"),
        py::arg("dm_dsxy"), py::arg("same"));
#endif
}
