"""Build the six LGI wheels and a PEP 503 "simple" index over them.

    python tools/wheelhouse.py [--out dist]

writes ``dist/wheelhouse/*.whl`` and ``dist/simple/index.html`` plus ``dist/simple/<name>/index.html``
whose links carry ``#sha256=`` fragments, so that

    pip install --index-url file://$PWD/dist/simple --extra-index-url https://pypi.org/simple lgi-preprocess

installs one package from the local index and only its own third-party dependencies from PyPI.

``--prebuilt`` makes lgi-gsplat2d and lgi-fused-ssim platform wheels with their kernels compiled in
(tools/hatch_prebuild.py: CPU variants for AVX-512, AVX2 and portable x86-64, CUDA where a toolkit is
found; a few minutes). It needs torch and setuptools in this interpreter, so run it with the project's
environment: ``.nox/_shared-torch/bin/python tools/wheelhouse.py --prebuilt`` (what ``nox -s wheelhouse``
does). Without it every wheel is pure Python and the kernels JIT-build on first use.
Used by the nox session ``wheelhouse`` and by the test that installs from the index.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["lgi-preprocess", "lgi-gsplat2d", "lgi-fused-ssim", "lgi-dictco", "lgi-train", "lgi"]
KERNEL_PACKAGES = ["lgi-gsplat2d", "lgi-fused-ssim"]  # the ones tools/hatch_prebuild.py can compile into


def normalize(name: str) -> str:
    """PEP 503 name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


def build_wheels(wheel_dir: Path, packages: list[str] = PACKAGES, isolated: bool = False,
                 prebuilt: bool = False) -> list[Path]:
    """Build one wheel per package with pip + hatchling; returns the wheel paths.

    ``isolated=False`` builds with the hatchling already installed in this interpreter (no download).
    ``prebuilt=True`` compiles the kernels into the kernel packages' wheels (needs ``isolated=False``
    and torch here).
    """
    if prebuilt and isolated:
        raise ValueError("prebuilt kernels are compiled against this interpreter's torch: not with isolated")
    wheel_dir.mkdir(parents=True, exist_ok=True)
    for old in wheel_dir.glob("*.whl"):
        old.unlink()
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir)]
    if not isolated:
        cmd.append("--no-build-isolation")
    env = dict(os.environ)
    env.pop("HATCH_BUILD_HOOK_ENABLE_CUSTOM", None)
    pure = [p for p in packages if not (prebuilt and p in KERNEL_PACKAGES)]
    if pure:
        subprocess.run(cmd + [str(ROOT / "packages" / p) for p in pure], check=True, env=env)
    kernels = [p for p in packages if prebuilt and p in KERNEL_PACKAGES]
    if kernels:
        print(f"compiling the kernels into {', '.join(kernels)} (CPU variants, CUDA where a toolkit is found; "
              "several minutes)", file=sys.stderr, flush=True)
        env["HATCH_BUILD_HOOK_ENABLE_CUSTOM"] = "true"
        subprocess.run(cmd + [str(ROOT / "packages" / p) for p in kernels], check=True, env=env)
    wheels = sorted(wheel_dir.glob("*.whl"))
    if len(wheels) != len(packages):
        raise RuntimeError(f"expected {len(packages)} wheels in {wheel_dir}, found {[w.name for w in wheels]}")
    return wheels


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_index(wheels: list[Path], simple_dir: Path) -> None:
    """Write a PEP 503 index; each project page links to the wheels (copied beside it)."""
    if simple_dir.exists():
        shutil.rmtree(simple_dir)
    simple_dir.mkdir(parents=True)
    by_project: dict[str, list[Path]] = {}
    for whl in wheels:
        by_project.setdefault(normalize(whl.name.split("-")[0]), []).append(whl)
    root_links = []
    for project, files in sorted(by_project.items()):
        page_dir = simple_dir / project
        page_dir.mkdir()
        links = []
        for whl in files:
            shutil.copy2(whl, page_dir / whl.name)
            href = f"{html.escape(whl.name)}#sha256={_sha256(whl)}"
            links.append(f'    <a href="{href}">{html.escape(whl.name)}</a><br/>')
        (page_dir / "index.html").write_text(_page(f"Links for {project}", links))
        root_links.append(f'    <a href="{project}/">{project}</a><br/>')
    (simple_dir / "index.html").write_text(_page("LGI simple index", root_links))


def _page(title: str, links: list[str]) -> str:
    body = "\n".join(links)
    return (f'<!DOCTYPE html>\n<html>\n  <head><meta name="pypi:repository-version" content="1.0">'
            f"<title>{title}</title></head>\n  <body>\n    <h1>{title}</h1>\n{body}\n  </body>\n</html>\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    ap.add_argument("--isolated", action="store_true", help="let pip fetch hatchling in an isolated build env")
    ap.add_argument("--prebuilt", action="store_true",
                    help="compile the kernels into lgi-gsplat2d and lgi-fused-ssim (platform wheels; minutes)")
    args = ap.parse_args(argv)
    wheels = build_wheels(args.out / "wheelhouse", isolated=args.isolated, prebuilt=args.prebuilt)
    write_index(wheels, args.out / "simple")
    for w in wheels:
        print(f"{w.name}  sha256={_sha256(w)[:16]}...")
    print(f"index: file://{(args.out / 'simple').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
