"""`lgi fit` and `lgi render`: outputs, resolution independence, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from lgi_train.cli import fit, render
from lgi_train.fit import model_from_checkpoint


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:36, 0:52] / 50.0
    img = np.stack([xx, yy, 0.5 + 0.3 * np.sin(8 * xx)], axis=2)
    img[5:15, 5:20] = [0.9, 0.1, 0.2]
    img = np.clip(img + rng.normal(0, 0.01, img.shape), 0, 1)
    path = tmp_path_factory.mktemp("img") / "small.png"
    Image.fromarray((img * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def run_dir(image_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    result = CliRunner().invoke(fit, [str(image_path), "-o", str(out), "-n", "40", "--steps", "25", "--json"])
    assert result.exit_code == 0, result.output
    return out


def test_fit_writes_the_run_folder(run_dir):
    for name in ("config.yaml", "metrics.jsonl", "metrics.csv", "render.png", "error.png", "gaussians.png",
                 "added.png", "summary.json", "checkpoints/final.pt"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["num_gaussians"] == 40 and summary["steps"] == 25
    assert summary["metrics_8bit"]["psnr"] > 15
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,seconds,num_gaussians,loss,psnr")
    assert len(rows) > 3


def test_render_at_any_scale(run_dir, tmp_path):
    for args, size in ((["--scale", "2.0"], (104, 72)), (["--width", "26"], (26, 18)), ([], (52, 36))):
        out = tmp_path / f"r{size[0]}.png"
        result = CliRunner().invoke(render, [str(run_dir), "-o", str(out), *args])
        assert result.exit_code == 0, result.output
        assert Image.open(out).size == size
    model = model_from_checkpoint(run_dir / "checkpoints" / "final.pt")
    with torch.no_grad():
        expect = (model.render(72, 104).clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "r104.png")), expect)


@pytest.mark.parametrize("args,message", [
    (["-n", "0"], "num_gaussians must be >= 1"),
    (["--bits-color", "3"], "bits_color must be in 4..32"),
    (["--bits-position", "40"], "bits_position must be in 4..32"),
])
def test_bad_values_are_one_line_errors(image_path, tmp_path, args, message):
    result = CliRunner().invoke(fit, [str(image_path), "-o", str(tmp_path / "x"), *args])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output


def test_unknown_init_and_unreadable_image(image_path, tmp_path):
    result = CliRunner().invoke(fit, [str(image_path), "-o", str(tmp_path / "x"), "--init", "magic"])
    assert result.exit_code != 0 and "magic" in result.output
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a png")
    result = CliRunner().invoke(fit, [str(bad), "-o", str(tmp_path / "y")])
    assert result.exit_code == 1 and "Error:" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(fit, [str(tmp_path / "missing.png"), "-o", str(tmp_path / "z")])
    assert result.exit_code == 1 and "not found" in result.output


def test_render_names_the_real_problem(run_dir, tmp_path):
    """A .lgi given to render, or a zero scale: one line that says what to do, nothing written."""
    lgi = tmp_path / "photo.lgi"
    lgi.write_bytes(b"\x89LGI\r\n\x1a\n\x02\x00")
    for args, message in (([str(lgi)], "is a .lgi file: decode it with `lgi decode"),
                          ([str(run_dir), "--scale", "0"], "--scale must be > 0")):
        result = CliRunner().invoke(render, [*args, "-o", str(tmp_path / "o.png")])
        assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output
        assert not (tmp_path / "o.png").exists()


def test_render_without_checkpoint(tmp_path):
    result = CliRunner().invoke(render, [str(tmp_path), "-o", str(tmp_path / "o.png")])
    assert result.exit_code == 1 and "no checkpoint" in result.output


def test_cosine_schedule_is_sized_to_the_time_budget(image_path, tmp_path):
    out = tmp_path / "timed"
    result = CliRunner().invoke(fit, [str(image_path), "-o", str(out), "-n", "30", "--schedule", "cosine",
                                      "--max-seconds", "2", "--no-pictures", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # progress goes to stderr, also under --json
    saved = (out / "config.yaml").read_text()
    assert "schedule: cosine" in saved
    planned = int(next(line for line in saved.splitlines() if line.startswith("steps:")).split(":")[1])
    assert planned != 2000  # not the default: sized from the timing probe
    assert summary["steps"] >= 1 and summary["stop_reason"] in ("steps", "max_seconds")
    # The budget holds to within a step (work done, not a clock bound: it holds on a busy machine too).
    assert summary["steps"] <= planned
    assert summary["seconds"] <= 2 + 2 * summary["seconds"] / summary["steps"]


def test_bad_input_leaves_no_run_folder(image_path, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a png")
    for args in ([str(bad), "-o", str(tmp_path / "run1")],
                 [str(image_path), "-o", str(tmp_path / "run2"), "--resume", str(tmp_path / "missing.pt")]):
        result = CliRunner().invoke(fit, args)
        assert result.exit_code == 1 and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png"]


def test_an_unwritable_run_folder_fails_before_fitting(image_path, tmp_path):
    (tmp_path / "a_file").write_text("x")
    result = CliRunner().invoke(fit, [str(image_path), "-o", str(tmp_path / "a_file" / "run"), "--steps", "100000"])
    assert result.exit_code == 1 and "is not a folder" in result.output and "Traceback" not in result.output


def test_render_refuses_a_read_only_output_unless_forced(run_dir, tmp_path):
    out = tmp_path / "r.png"
    out.write_bytes(b"keep me")
    out.chmod(0o444)
    result = CliRunner().invoke(render, [str(run_dir), "-o", str(out)])
    assert result.exit_code == 1 and "read-only; pass --force" in result.output and out.read_bytes() == b"keep me"
    result = CliRunner().invoke(render, [str(run_dir), "-o", str(out), "--force"])
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (52, 36)


def test_a_read_only_file_in_the_run_folder_is_one_line(image_path, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("keep: me\n")
    (out / "config.yaml").chmod(0o444)
    result = CliRunner().invoke(fit, [str(image_path), "-o", str(out), "-n", "10", "--steps", "2"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "config.yaml exists and is read-only" in result.output
    assert (out / "config.yaml").read_text() == "keep: me\n"


def test_preset_image_gs_then_config_then_flags(image_path, tmp_path):
    """--preset is the base, --config overrides the fields it names, flags override both."""
    import yaml

    from lgi_train.config import PRESETS, FitConfig

    conf = tmp_path / "c.yaml"
    conf.write_text("topk: 6\nsteps: 12\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(fit, [str(image_path), "-o", str(out), "-n", "30", "--preset", "image-gs",
                                      "--config", str(conf), "--steps", "8", "-q", "--no-pictures"])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((out / "config.yaml").read_text())
    for field, value in PRESETS["image-gs"].items():
        if field != "topk":
            assert saved[field] == value, field
    assert saved["topk"] == 6 and saved["steps"] == 8 and saved["num_gaussians"] == 30
    assert FitConfig.preset("default") == FitConfig()


def test_an_unknown_preset_is_refused(image_path, tmp_path):
    result = CliRunner().invoke(fit, [str(image_path), "-o", str(tmp_path / "r"), "--preset", "fastest"])
    assert result.exit_code == 2 and "fastest" in result.output and not (tmp_path / "r").exists()


def test_summary_names_the_kept_step(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    assert 1 <= summary["kept_step"] <= summary["steps"]
