"""nox sessions for the LGI monorepo.

    nox -l                      list sessions
    nox -s tests                every package's tests (plus workspace tests), in the shared environment
    nox -s tests-lgi-gsplat2d   one package's tests (same names for every package)
    nox -s lint                 ruff
    nox -s wheelhouse           six wheels (kernels compiled in) in dist/wheelhouse/, a PEP 503 index in dist/simple/
    nox -s demo                 set up and run `lgi demo` on the built-in sample image
    nox -s fuzz                 the long fuzz run of the .lgi and .dcae decoders (-- --examples N)

torch with its CUDA libraries costs about 2 minutes and 5.5 GB per environment, so every session that
needs torch shares ONE environment, ``.nox/_shared-torch``, created on first use and refreshed when
``constraints.txt`` or a package's ``pyproject.toml`` changes (see docs/development.md). Packages are
installed there in editable mode, so source edits need no reinstall.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PACKAGES = ["lgi-preprocess", "lgi-gsplat2d", "lgi-fused-ssim", "lgi-dictco", "lgi-train", "lgi"]
SHARED_ENV = ROOT / ".nox" / "_shared-torch"
# gradio (lgi[app]) and playwright: the browser test of `lgi app` (it drives the system's Chromium).
# setuptools: torch's BuildExtension, for the wheels with compiled kernels (nox -s wheelhouse).
TEST_TOOLS = ["pytest", "hypothesis", "hatchling", "setuptools", "pillow-jxl-plugin", "flip-evaluator", "gradio",
              "playwright"]

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"


def _stamp() -> str:
    h = hashlib.sha256()
    # The packages' __init__.py hold their versions (hatch reads them at install time): a bump reinstalls.
    for f in [ROOT / "constraints.txt", ROOT / "noxfile.py", *sorted(ROOT.glob("packages/*/pyproject.toml")),
              *sorted(ROOT.glob("packages/*/src/*/__init__.py"))]:
        h.update(f.read_bytes())
    return h.hexdigest()


def shared_python(session: nox.Session) -> str:
    """Create or refresh the shared torch environment; return its interpreter."""
    python = SHARED_ENV / "bin" / "python"
    stamp_file = SHARED_ENV / ".lgi-stamp"
    if not python.exists():
        session.log(f"creating the shared environment {SHARED_ENV} (torch: about 2 minutes, once)")
        session.run(sys.executable, "-m", "venv", str(SHARED_ENV), external=True)
    stamp = _stamp()
    if not stamp_file.exists() or stamp_file.read_text() != stamp:
        editable = [arg for p in PACKAGES for arg in ("-e", str(ROOT / "packages" / p))]
        session.run(str(python), "-m", "pip", "install", "-q", "--upgrade", "pip", external=True)
        session.run(str(python), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"),
                    *editable, *TEST_TOOLS, external=True)
        stamp_file.write_text(stamp)
    return str(python)


def _env() -> dict[str, str]:
    env = {"PYTHONUNBUFFERED": "1"}
    # Native extensions build once per machine into one cache (not once per test).
    env.setdefault("LGI_EXTENSIONS_DIR", os.environ.get("LGI_EXTENSIONS_DIR", str(ROOT / ".nox" / "_extensions")))
    return env


def _pytest(session: nox.Session, *paths: str) -> None:
    python = shared_python(session)
    session.run(python, "-m", "pytest", *paths, *session.posargs, external=True, env=_env())


def _make_package_session(package: str) -> None:
    @nox.session(name=f"tests-{package}", python=False)
    def tests_package(session: nox.Session) -> None:
        _pytest(session, f"packages/{package}/tests")

    tests_package.__doc__ = f"Run the {package} tests in the shared environment."


for _package in PACKAGES:
    _make_package_session(_package)


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """Run every package's tests and the workspace tests (the README's test command)."""
    _pytest(session, *[f"packages/{p}/tests" for p in PACKAGES], "tests")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over packages, benchmarks, tools, tests and this file."""
    session.install("ruff")
    session.run("ruff", "check", "packages", "benchmarks", "tools", "tests", "noxfile.py")


@nox.session(python=False)
def wheelhouse(session: nox.Session) -> None:
    """Build all six wheels into dist/wheelhouse/ (the two kernel packages as platform wheels with their
    kernels compiled in, against the shared environment's torch) and write the PEP 503 index dist/simple/."""
    python = shared_python(session)
    session.run(python, "tools/wheelhouse.py", "--prebuilt", "--out", str(ROOT / "dist"), *session.posargs,
                external=True)


@nox.session(python=False)
def demo(session: nox.Session) -> None:
    """Set up the shared environment and run `lgi demo` on the built-in sample image."""
    python = shared_python(session)
    lgi = str(Path(python).parent / "lgi")
    session.run(lgi, "versions", external=True, env=_env())
    session.run(lgi, "demo", *session.posargs, external=True, env=_env())


@nox.session(python=False)
def fuzz(session: nox.Session) -> None:
    """The long fuzz run of the .lgi and .dcae decoders (tests/fuzz/run_fuzz.py; default suite: a brief one).

    nox -s fuzz -- --examples 100000 --json fuzz.json   (examples per target; default $LGI_FUZZ_EXAMPLES or 2000)
    """
    python = shared_python(session)
    session.run(python, str(ROOT / "tests" / "fuzz" / "run_fuzz.py"), *session.posargs, external=True, env=_env())


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """Run one benchmark script in the shared environment: nox -s bench -- bench_rasterize.py [args]."""
    if not session.posargs:
        session.error("name a script: nox -s bench -- bench_rasterize.py [args]")
    python = shared_python(session)
    script, *args = session.posargs
    session.run(python, str(ROOT / "benchmarks" / script), *args, external=True, env=_env())
