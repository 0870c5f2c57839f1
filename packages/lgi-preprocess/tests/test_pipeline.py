"""ImagePreprocessor: results, metadata, the four modes, checksums, atomic outputs, bad inputs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lgi_preprocess import MAP_NAMES, ImagePreprocessor, PreprocessConfig, PreprocessError, PreprocessResult

SMALL = dict(n_segments=40)


def _pre(**kw) -> ImagePreprocessor:
    return ImagePreprocessor(PreprocessConfig(**{**SMALL, **kw}))


def _files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir())} if folder.exists() else {}


def test_preprocess_every_map(rgb):
    res = _pre().preprocess(rgb)
    assert isinstance(res, PreprocessResult) and list(res.maps) == list(MAP_NAMES)
    for name, m in res.maps.items():
        assert m.shape == (64, 96), name
        if name == "segments":
            assert m.dtype == np.int32 and m.min() == 0
        else:
            assert m.dtype == np.float32 and m.min() >= 0 and m.max() <= 1, name
    assert float(res.maps["placement"].sum(dtype=np.float64)) == pytest.approx(1.0, abs=1e-5)
    meta = res.metadata
    assert meta["source"]["width"] == 96 and meta["source"]["height"] == 64
    assert set(meta["timings_s"]) == set(MAP_NAMES) and all(t >= 0 for t in meta["timings_s"].values())
    assert meta["params"]["n_segments"] == 40 and meta["params"]["weights"]["entropy"] == 0.3
    assert {"lgi-preprocess", "numpy", "opencv", "scikit-image", "mahotas", "pillow", "scipy"} <= set(meta["versions"])
    assert meta["statistics"]["actual_segments"] == int(res.maps["segments"].max()) + 1


def test_requested_maps_only_but_dependencies_computed(rgb):
    res = _pre(maps=("distance",)).preprocess(rgb)
    assert list(res.maps) == ["distance"]
    assert set(res.metadata["timings_s"]) == {"segments", "distance"}
    res = _pre(maps=("placement",), weights={"gradient": 1.0}).preprocess(rgb)
    assert set(res.metadata["timings_s"]) == {"gradient", "placement"}


def test_preprocess_path_records_checksum(image_file):
    steps = []
    res = _pre().preprocess(image_file, progress=steps.append)
    assert res.metadata["source"]["sha256"] == hashlib.sha256(image_file.read_bytes()).hexdigest()
    assert res.metadata["source"]["path"] == str(image_file.resolve())
    assert steps == list(MAP_NAMES)


def test_config_validation():
    with pytest.raises(PreprocessError, match="unknown map"):
        PreprocessConfig(maps=("entropy", "colour"))
    with pytest.raises(PreprocessError):
        PreprocessConfig(weights={"entropy": -1})
    with pytest.raises(PreprocessError):
        PreprocessConfig(entropy_tile_size=0)
    with pytest.raises(PreprocessError):
        PreprocessConfig(background=(2, 0, 0))
    assert PreprocessConfig(maps=("placement", "entropy")).maps == ("entropy", "placement")


def test_run_writes_npy_and_metadata(image_file, tmp_path):
    out = tmp_path / "out"
    run = _pre(slic_init=True, montage=True).run(image_file, out)
    assert run.status == "written"
    names = {f"scene_{m}.npy" for m in MAP_NAMES} | {"scene.json", "scene_slic_init.json", "scene_montage.png"}
    assert set(os.listdir(out)) == names
    meta = json.loads((out / "scene.json").read_text())
    assert meta["source"]["sha256"] == hashlib.sha256(image_file.read_bytes()).hexdigest()
    assert meta["source"]["path"] == str(image_file.resolve()) and meta["source"]["bytes"] == image_file.stat().st_size
    assert meta["outputs"]["entropy"] == "scene_entropy.npy" and meta["outputs"]["montage"] == "scene_montage.png"
    assert {"write", "montage", "slic_init", "texture"} <= set(meta["timings_s"])
    for m in MAP_NAMES:
        arr = np.load(out / f"scene_{m}.npy")
        assert arr.shape == (64, 96)
    montage = Image.open(out / "scene_montage.png")
    assert montage.format == "PNG" and montage.width >= 3 * 96
    slic = json.loads((out / "scene_slic_init.json").read_text())
    assert slic["n_gaussians"] == int(np.load(out / "scene_segments.npy").max()) + 1


def test_mode_overwrite_rewrites(image_file, tmp_path):
    pre = _pre(maps=("entropy",))
    pre.run(image_file, tmp_path)
    (tmp_path / "scene_entropy.npy").write_bytes(b"stale")
    assert pre.run(image_file, tmp_path, mode="overwrite").status == "written"
    assert np.load(tmp_path / "scene_entropy.npy").shape == (64, 96)


def test_mode_skip(image_file, tmp_path, monkeypatch):
    pre = _pre(maps=("entropy", "gradient"))
    pre.run(image_file, tmp_path)
    before = _files(tmp_path)
    monkeypatch.setattr(ImagePreprocessor, "_compute", lambda *a, **k: pytest.fail("skip must not compute"))
    run = pre.run(image_file, tmp_path, mode="skip")
    assert (run.status, run.reason) == ("skipped", "outputs exist") and _files(tmp_path) == before
    monkeypatch.undo()
    (tmp_path / "scene.json").write_text("{ truncated")  # unreadable metadata is not trusted
    assert pre.run(image_file, tmp_path, mode="skip").status == "written"
    (tmp_path / "scene_gradient.npy").unlink()  # incomplete outputs are not trusted
    assert pre.run(image_file, tmp_path, mode="skip").status == "written"
    assert (tmp_path / "scene_gradient.npy").exists()


def test_mode_update_recomputes_on_checksum_or_parameter_change(image_file, tmp_path):
    pre = _pre(maps=("entropy",))
    pre.run(image_file, tmp_path)
    run = pre.run(image_file, tmp_path, mode="update")
    assert (run.status, run.reason) == ("skipped", "input and parameters unchanged")

    img = np.asarray(Image.open(image_file)).copy()
    img[0, 0] ^= 1  # one bit of one pixel
    Image.fromarray(img).save(image_file)
    run = pre.run(image_file, tmp_path, mode="update")
    assert (run.status, run.reason) == ("written", "input changed")
    meta = json.loads((tmp_path / "scene.json").read_text())
    assert meta["source"]["sha256"] == hashlib.sha256(image_file.read_bytes()).hexdigest()
    assert pre.run(image_file, tmp_path, mode="update").status == "skipped"

    run = _pre(maps=("entropy",), entropy_tile_size=8).run(image_file, tmp_path, mode="update")
    assert (run.status, run.reason) == ("written", "parameters changed")
    assert json.loads((tmp_path / "scene.json").read_text())["params"]["entropy_tile_size"] == 8

    (tmp_path / "scene.json").write_text("{ truncated")  # unreadable metadata → recompute
    assert pre.run(image_file, tmp_path, mode="update").reason == "outputs missing"


def test_mode_prompt(image_file, tmp_path, monkeypatch):
    pre = _pre(maps=("entropy",))
    asked = []
    # nothing exists yet: no question
    assert pre.run(image_file, tmp_path, mode="prompt", confirm=lambda q: asked.append(q) or False).status == "written"
    assert asked == []
    before = _files(tmp_path)
    run = pre.run(image_file, tmp_path, mode="prompt", confirm=lambda q: asked.append(q) or False)
    assert (run.status, run.reason) == ("skipped", "declined") and _files(tmp_path) == before
    assert "scene.png" in asked[0]
    run = pre.run(image_file, tmp_path, mode="prompt", confirm=lambda q: True)
    assert (run.status, run.reason) == ("written", "confirmed")
    # the default asks on the terminal; without one it fails clearly and writes nothing
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
    before = _files(tmp_path)
    with pytest.raises(PreprocessError, match="no terminal"):
        pre.run(image_file, tmp_path, mode="prompt")
    assert _files(tmp_path) == before


def test_unknown_mode(image_file, tmp_path):
    with pytest.raises(PreprocessError, match="unknown mode"):
        _pre().run(image_file, tmp_path, mode="sometimes")


def test_interrupted_run_leaves_nothing_skip_would_trust(image_file, tmp_path, monkeypatch):
    pre = _pre(maps=("entropy", "gradient", "texture"))
    pre.run(image_file, tmp_path)
    import lgi_preprocess.pipeline as pipeline

    real = pipeline.save_npy
    calls = []

    def crash_on_second(path, array):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of writing outputs
        return real(path, array)

    monkeypatch.setattr(pipeline, "save_npy", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        pre.run(image_file, tmp_path, mode="overwrite")
    monkeypatch.undo()
    assert not (tmp_path / "scene.json").exists()  # stale metadata was removed before any new output
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    run = pre.run(image_file, tmp_path, mode="skip")
    assert run.status == "written"  # skip does not trust the half-finished set
    assert pre.run(image_file, tmp_path, mode="update").status == "skipped"


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated"])
def test_bad_input_writes_nothing(tmp_path, kind, bad_image):
    path = bad_image(tmp_path / "bad.png", kind)
    out = tmp_path / "out"
    with pytest.raises(PreprocessError, match="bad.png"):
        _pre().run(path, out)
    assert not out.exists() or not os.listdir(out)


def test_rgba_and_16bit_files_through_the_pipeline(tmp_path):
    rgba = np.zeros((32, 48, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[8:24, 8:24, :3] = 200
    rgba[:, 40:, 3] = 0  # transparent strip → white background
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    res = _pre(maps=("gradient",)).preprocess(tmp_path / "a.png")
    assert res.maps["gradient"][:, 39:41].max() > 0.5  # the edge against the white background is found
    Image.fromarray((np.arange(32 * 48).reshape(32, 48) * 40).astype(np.uint16)).save(tmp_path / "g16.png")
    res = _pre(maps=("entropy",)).preprocess(tmp_path / "g16.png")
    assert res.maps["entropy"].max() == 1.0
