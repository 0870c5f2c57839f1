"""Run a benchmark script with another top-K normalization epsilon (an experiment, not a mode).

    python benchmarks/with_topk_eps.py 0.01 benchmarks/rd.py --images kodim05 --rates 0.5 --blend topk ...

The kernels' sources are copied to a temporary folder with ``kTopkEps`` (csrc/common.h) replaced, and
both the torch extension (_backend) and the torch-free renderer (native) of lgi-gsplat2d are pointed
at the copy before anything loads, so the JIT build of the variant lands in its own cache folder; the
PyTorch reference's ``TOPK_EPS`` is set too. Files written under a variant decode as intended only
with the same variant: the epsilon is not stored in the file.
"""

from __future__ import annotations

import re
import runpy
import shutil
import sys
import tempfile
from pathlib import Path


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    eps, script, *args = sys.argv[1:]
    float(eps)  # a number, or fail here
    from lgi_gsplat2d import _backend, _reference, native

    src = Path(tempfile.mkdtemp(prefix=f"lgi-topk-eps-{eps}-")) / "csrc"
    shutil.copytree(_backend._CSRC, src)
    header = (src / "common.h").read_text()
    header, n = re.subn(r"kTopkEps = [^;]+;", f"kTopkEps = {eps};", header)
    if n != 1:
        raise SystemExit("kTopkEps not found in csrc/common.h")
    (src / "common.h").write_text(header)
    _backend._CSRC = src
    native._CSRC = src
    _reference.TOPK_EPS = float(eps)
    print(f"top-K epsilon {eps} (kernels from {src})", flush=True)
    sys.argv = [script, *args]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
