"""`lgi preprocess`: outputs, bad inputs, modes, --json, and a light import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lgi_preprocess.cli import preprocess

FAST = ["--n-segments", "30"]


def _invoke(*args: str):
    return CliRunner().invoke(preprocess, [*args], catch_exceptions=False)


@pytest.fixture
def inputs(tmp_path: Path, make_scene) -> dict[str, Path]:
    d = tmp_path / "in"
    d.mkdir()
    files = {}
    for name in ("a", "b"):
        files[name] = d / f"{name}.png"
        Image.fromarray(np.round(make_scene(48, 64, seed=ord(name)) * 255).astype(np.uint8)).save(files[name])
    files["empty"] = d / "empty.png"
    files["empty"].write_bytes(b"")
    files["text"] = d / "text.png"
    files["text"].write_text("hello")
    files["truncated"] = d / "truncated.png"
    files["truncated"].write_bytes(files["a"].read_bytes()[:400])
    files["missing"] = d / "missing.png"
    return files


def test_entry_point_registered():
    eps = {ep.name: ep.value for ep in entry_points(group="lgi.commands")}
    assert eps.get("preprocess") == "lgi_preprocess.cli:preprocess"


def test_writes_all_maps(inputs, tmp_path):
    out = tmp_path / "out"
    res = _invoke(str(inputs["a"]), "-o", str(out), *FAST, "--montage", "--slic-init")
    assert res.exit_code == 0, res.output
    names = set(os.listdir(out))
    assert {"a.json", "a_placement.npy", "a_segments.npy", "a_montage.png", "a_slic_init.json"} <= names
    assert len([n for n in names if n.endswith(".npy")]) == 8
    assert "1 written" in res.output


def test_bad_inputs_one_line_each_others_processed(inputs, tmp_path):
    out = tmp_path / "out"
    order = ["a", "missing", "empty", "text", "truncated", "b"]
    res = _invoke(*[str(inputs[k]) for k in order], "-o", str(out), *FAST, "--maps", "entropy,gradient")
    assert res.exit_code == 1
    assert "Traceback" not in res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("lgi preprocess: error:")]
    assert len(errors) == 4
    for kind, needle in (("missing", "no such file"), ("empty", "0 bytes"), ("text", "not an image"),
                         ("truncated", "truncated")):
        assert any(kind in ln and needle in ln for ln in errors), (kind, errors)
    assert sorted(os.listdir(out)) == sorted(f"{s}{x}" for s in "ab" for x in (".json", "_entropy.npy",
                                                                               "_gradient.npy"))
    summary = res.output.strip().splitlines()[-1]
    assert "2 written" in summary and "4 failed" in summary and "missing.png" in summary and "text.png" in summary


def test_json_output(inputs, tmp_path):
    out = tmp_path / "out"
    runner = CliRunner()
    res = runner.invoke(preprocess, [str(inputs["a"]), str(inputs["text"]), "-o", str(out), *FAST, "--json",
                                     "--maps", "saliency"])
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert doc["written"] == 1 and doc["failed"] == 1 and doc["skipped"] == 0
    ok, bad = doc["results"]
    assert ok["status"] == "written" and Path(ok["outputs"]["saliency"]).name == "a_saliency.npy"
    assert "saliency" in ok["timings_s"]
    assert bad["status"] == "failed" and "not an image" in bad["error"]
    res = runner.invoke(preprocess, [str(inputs["a"]), "-o", str(out), *FAST, "--json", "--maps", "saliency",
                                     "--mode", "skip"])
    assert res.exit_code == 0 and json.loads(res.stdout)["results"][0]["reason"] == "outputs exist"


def test_update_mode_from_cli(inputs, tmp_path):
    out = tmp_path / "out"
    args = [str(inputs["a"]), "-o", str(out), *FAST, "--maps", "entropy", "--json"]
    assert _invoke(*args).exit_code == 0
    assert json.loads(_invoke(*args, "--mode", "update").stdout)["skipped"] == 1
    changed = json.loads(_invoke(*args, "--mode", "update", "--entropy-tile-size", "8").stdout)
    assert changed["results"][0]["reason"] == "parameters changed"


def test_prompt_without_terminal_fails_clearly(inputs, tmp_path):
    res = CliRunner().invoke(preprocess, [str(inputs["a"]), "-o", str(tmp_path / "o"), "--mode", "prompt"])
    assert res.exit_code == 2 and "terminal" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,needle", [
    (["--maps", "entropy,colour"], "unknown map"),
    (["--weights", "entropy"], "NAME=WEIGHT"),
    (["--weights", "segments=1"], "cannot weight"),
    (["--background", "pink"], "white, black"),
    (["--n-segments", "0"], "n-segments"),
])
def test_bad_options(inputs, tmp_path, args, needle):
    res = CliRunner().invoke(preprocess, [str(inputs["a"]), "-o", str(tmp_path / "o"), *args])
    assert res.exit_code == 2 and needle in res.output and "Traceback" not in res.output


def test_same_stem_twice_is_refused(inputs, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.png").write_bytes(inputs["b"].read_bytes())
    res = _invoke(str(inputs["a"]), str(other / "a.png"), "-o", str(tmp_path / "o"), *FAST, "--maps", "entropy")
    assert res.exit_code == 1 and "same output stem" in res.output
    assert json.loads((tmp_path / "o" / "a.json").read_text())["source"]["path"] == str(inputs["a"].resolve())


def test_progress_bar_over_images_and_maps(inputs, tmp_path):
    res = CliRunner(env={"TTY_COMPATIBLE": "1", "COLUMNS": "100"}).invoke(
        preprocess, [str(inputs["a"]), str(inputs["b"]), "-o", str(tmp_path / "o"), *FAST, "--maps",
                     "entropy,distance"])
    assert res.exit_code == 0, res.output
    # the images bar ends at 2/2; the maps bar counts entropy, segments (a dependency) and distance
    assert "images" in res.output and "2/2" in res.output
    assert "b.png" in res.output and "3/3" in res.output


def test_quiet_prints_nothing_on_success(inputs, tmp_path):
    res = _invoke(str(inputs["a"]), "-o", str(tmp_path / "o"), *FAST, "--maps", "entropy", "-q")
    assert res.exit_code == 0 and res.output == ""


def test_through_the_umbrella_cli(inputs, tmp_path):
    lgi_cli = pytest.importorskip("lgi.cli")
    code = lgi_cli.main(["preprocess", str(inputs["empty"]), "-o", str(tmp_path / "o")])
    assert code == 1


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          timeout=120).stdout.strip()


def test_imports_are_light():
    heavy = ["numpy", "cv2", "skimage", "mahotas", "torch", "scipy", "rich", "PIL"]
    out = _python(f"import sys, lgi_preprocess, lgi_preprocess.cli; print([m for m in {heavy!r} if m in sys.modules])")
    assert out == "[]"
    out = _python("import sys; from lgi_preprocess import ImagePreprocessor, entropy_map; "
                  "print([m for m in ('cv2', 'skimage', 'mahotas', 'torch') if m in sys.modules])")
    assert out == "[]"


def test_everything_works_without_torch():
    """torch is optional: with it unimportable, every CPU map and the CLI still run."""
    code = """
import sys
sys.modules['torch'] = None  # any `import torch` now raises ImportError
import numpy as np
from lgi_preprocess import ImagePreprocessor, PreprocessConfig, PreprocessError, gradient_map
rng = np.random.default_rng(0)
res = ImagePreprocessor(PreprocessConfig(n_segments=20)).preprocess(rng.random((32, 40, 3)).astype('float32'))
assert len(res.maps) == 8
try:
    gradient_map(np.zeros((8, 8, 3), 'float32'), use_gpu=True)
except PreprocessError as exc:
    print('clear:', exc)
"""
    out = _python(code)
    assert out.startswith("clear:") and "needs PyTorch" in out
