"""Workspace-level properties: dependency direction, package layout, the local wheel index."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import venv
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
LEAVES = {"lgi_preprocess", "lgi_gsplat2d", "lgi_fused_ssim", "lgi_dictco"}
OURS = LEAVES | {"lgi_train", "lgi"}
ALLOWED = {  # what each package may import from ours: dependencies point one way
    "lgi_preprocess": set(),
    "lgi_gsplat2d": set(),
    "lgi_fused_ssim": set(),
    "lgi_dictco": set(),
    "lgi_train": LEAVES,
    "lgi": OURS - {"lgi"},
}
DIST = {"lgi_preprocess": "lgi-preprocess", "lgi_gsplat2d": "lgi-gsplat2d", "lgi_fused_ssim": "lgi-fused-ssim",
        "lgi_dictco": "lgi-dictco", "lgi_train": "lgi-train", "lgi": "lgi"}


def _imported_top_levels(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_dependencies_point_one_way(module):
    src = ROOT / "packages" / DIST[module] / "src" / module
    offenders = []
    for py in src.rglob("*.py"):
        bad = (_imported_top_levels(py) & OURS) - ALLOWED[module] - {module}
        if bad:
            offenders.append(f"{py.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_declared_requirements_cover_our_imports(module):
    meta = tomllib.loads((ROOT / "packages" / DIST[module] / "pyproject.toml").read_text())["project"]
    declared = {r.split(">")[0].split("=")[0].split("<")[0].strip() for r in meta.get("dependencies", [])}
    for other in ALLOWED[module]:
        used = any(other in _imported_top_levels(p) for p in (ROOT / "packages" / DIST[module] / "src").rglob("*.py"))
        if used:
            assert DIST[other] in declared, f"{DIST[module]} imports {other} but does not require {DIST[other]}"


def test_layout():
    for module, dist in DIST.items():
        pkg = ROOT / "packages" / dist
        assert (pkg / "README.md").is_file()
        assert (pkg / "src" / module / "__init__.py").is_file()
        assert any((pkg / "tests").glob("test_*.py")), f"{dist} has no tests"
        meta = tomllib.loads((pkg / "pyproject.toml").read_text())
        assert meta["build-system"]["build-backend"] == "hatchling.build"
        assert meta["project"]["name"] == dist


def _load_wheelhouse():
    spec = importlib.util.spec_from_file_location("wheelhouse", ROOT / "tools" / "wheelhouse.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_wheel_index_installs_one_leaf(tmp_path):
    """Build the six wheels and the index; a fresh venv installs lgi-preprocess and only its own deps."""
    pytest.importorskip("hatchling")
    wh = _load_wheelhouse()
    wheels = wh.build_wheels(tmp_path / "wheelhouse")
    assert len(wheels) == 6
    wh.write_index(wheels, tmp_path / "simple")
    page = (tmp_path / "simple" / "lgi-preprocess" / "index.html").read_text()
    assert "#sha256=" in page and "lgi_preprocess-0.1.0-py3-none-any.whl" in page
    assert {p.name for p in (tmp_path / "simple").iterdir() if p.is_dir()} == set(DIST.values())

    # lgi-dictco carries its trained DCAE weights, every file of its manifest, and stays under 50 MB.
    (dictco,) = [w for w in wheels if w.name.startswith("lgi_dictco-")]
    assert dictco.stat().st_size < 50e6
    with zipfile.ZipFile(dictco) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("lgi_dictco/dcae/weights/models.json"))
    assert manifest["models"] and all(f"lgi_dictco/dcae/weights/{m['file']}" in names for m in manifest["models"])

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--index-url", (tmp_path / "simple").as_uri(),
                    "--extra-index-url", "https://pypi.org/simple", "lgi-preprocess"], check=True, timeout=900)
    code = ("import importlib.metadata as m, lgi_preprocess; "
            "names = sorted(d.metadata['Name'].lower() for d in m.distributions()); print(' '.join(names))")
    out = subprocess.run([str(py), "-c", code], check=True, capture_output=True, text=True).stdout.split()
    assert "lgi-preprocess" in out
    assert not {"torch", "lgi-gsplat2d", "lgi-train", "lgi", "compressai"} & set(out), out

    # All six wheels (no dependencies but click): the CLI and every entry point come from the wheels.
    cli_env = tmp_path / "cli-venv"
    venv.EnvBuilder(with_pip=True).create(cli_env)
    cpy = cli_env / "bin" / "python"
    subprocess.run([str(cpy), "-m", "pip", "install", "-q", "click"], check=True, timeout=600)
    subprocess.run([str(cpy), "-m", "pip", "install", "-q", "--no-deps", *map(str, wheels)], check=True, timeout=600)
    lgi = cli_env / "bin" / "lgi"
    help_out = subprocess.run([str(lgi), "--help"], check=True, capture_output=True, text=True).stdout
    for command in ("encode", "decode", "info", "demo", "fit", "render", "preprocess", "dictco", "versions"):
        assert f"  {command} " in help_out, (command, help_out)
    assert "[broken]" not in help_out
    versions = subprocess.run([str(lgi), "versions"], check=True, capture_output=True, text=True).stdout
    assert all(f"{name} " in versions for name in DIST.values())
    assert "torch            not importable" in versions  # this venv has no torch, and says so
