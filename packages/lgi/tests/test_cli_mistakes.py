"""Issue 13's mistakes, run as a user runs them (through ``lgi``'s entry point), for `lgi fit`, `lgi render`,
`lgi preprocess`, `lgi dictco ...`, `lgi versions` and the group itself.

Every mistake: exit status != 0, exactly one line on stderr that names the real problem, nothing on stdout,
no traceback, nothing written. Then the flags every command shares: ``--json`` prints JSON on stdout (progress
and logs go to stderr, also under ``--json``), ``-q`` (the command's or ``lgi -q``) silences them. Then the
progress lines of `lgi fit` off a terminal, and grayscale kept end to end (fit/render, encode/decode).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lgi.cli import main

FIT_FAST = ["-n", "20", "--steps", "5", "--no-pictures"]


def _lgi(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Inputs shared by every case (read only): images, a fit run, checkpoints, coded files, junk."""
    root = tmp_path_factory.mktemp("mistakes")
    yy, xx = np.mgrid[0:24, 0:32]
    ramp = ((xx * 7 + yy * 5) % 256).astype(np.uint8)
    Image.fromarray(np.stack([ramp, 255 - ramp, ramp // 2], 2)).save(root / "rgb.png")
    Image.fromarray(ramp, "L").save(root / "gray.png")
    (root / "images").mkdir()
    Image.fromarray(np.stack([ramp, ramp, 255 - ramp], 2)).save(root / "images" / "a.png")
    (root / "folder").mkdir()
    (root / "photo.lgi").write_bytes(b"\x89LGI\r\n\x1a\n\x02\x00" + bytes(32))
    (root / "junk.pt").write_bytes(b"\x13\x37 not what torch.save writes " * 4)
    (root / "text.png").write_text("not an image")
    from lgi_dictco.dcae import build_model, save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(root / "dcae.pt", build_model("dcae-tiny"), lmbda=0.0035, metric="mse")
    return root


@pytest.fixture(scope="module")
def made(files, tmp_path_factory):
    """Outputs of working commands that other cases take as inputs: a run folder, a .dcae and a .lgi file."""
    root = tmp_path_factory.mktemp("made")
    code = main(["-q", "fit", str(files / "rgb.png"), "-o", str(root / "run"), *FIT_FAST])
    assert code == 0
    code = main(["-q", "dictco", "compress", str(files / "rgb.png"), "-o", str(root / "a.dcae"),
                 "--checkpoint", str(files / "dcae.pt")])
    assert code == 0
    code = main(["-q", "encode", str(files / "rgb.png"), "-o", str(root / "a.lgi"), "--gaussians", "20",
                 "--effort", "fast", "--steps", "5"])
    assert code == 0
    return root


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# (arguments with {f}: inputs, {m}: made outputs, {o}: the case's own empty folder; what stderr must say)
MISTAKES = [
    # lgi fit
    ("fit {f}/folder -o {o}/run", "folder is a folder; give one image file"),
    ("fit {f}/missing.png -o {o}/run", "image not found"),
    ("fit {f}/text.png -o {o}/run --steps 3", "not an image"),
    ("fit {f}/rgb.png -o {o}/run --steps 0", "'--steps': must be >= 1, got 0"),
    ("fit {f}/rgb.png -o {o}/run --steps -3", "'--steps': must be >= 1, got -3"),
    ("fit {f}/rgb.png -o {o}/run -n 0", "num_gaussians must be >= 1"),
    ("fit {f}/rgb.png -o {o}/run --checkpoint-every 0", "'--checkpoint-every': must be >= 1"),
    ("fit {f}/rgb.png -o {o}/run --device gpu", "'gpu' is not a device; use cpu, cuda or cuda:N"),
    ("fit {f}/rgb.png -o {o}/run --init magic", "'magic' is not one of"),
    ("fit {f}/rgb.png -o {o}/run --resume {f}/photo.lgi", "is a .lgi file: decode it with `lgi decode"),
    ("fit {f}/rgb.png -o {o}/run --resume {f}/rgb.png", "rgb.png is a PNG image, not a checkpoint of `lgi fit`"),
    ("fit {f}/rgb.png -o {o}/run --resume {f}/folder", "--resume {f}/folder is a folder"),
    ("fit {f}/rgb.png -o {o}/run --resume {f}/dcae.pt", "is not an lgi-train checkpoint"),
    ("fit {f}/rgb.png -o {o}/run --config {f}/folder", "--config {f}/folder is a folder"),
    ("fit {f}/rgb.png -o {f}/rgb.png", "-o {f}/rgb.png is a file; give a folder"),
    # lgi render
    ("render {f}/photo.lgi -o {o}/r.png", "photo.lgi is a .lgi file: decode it with `lgi decode"),
    ("render {m}/run -o {o}/r.png --scale 0", "--scale must be > 0"),
    ("render {m}/run -o {o}/r.png --scale -2", "--scale must be > 0"),
    ("render {m}/run -o {o}/r.png --width 0", "'--width': must be >= 1, got 0"),
    ("render {m}/run -o {o}/r.png --scale 100000", "--scale 100000 of a 32x24 fit gives 3200000x2400000 pixels"),
    ("render {m}/run -o {o}/r.png --width 1000000", "--width 1000000 of a 32x24 fit gives 1000000x750000 pixels"),
    ("render {m}/run -o {o}/r.png --scale inf", "--scale must be > 0 and finite, got inf"),
    ("render {m}/run -o {o}/r.png --scale nan", "--scale must be > 0 and finite, got nan"),
    ("render {m}/run -o {o}/r.png --scale 2 --width 8", "give --scale or --width, not both"),
    ("render {m}/run -o {o}/r.jpg", "r.jpg does not end in .png"),
    ("render {m}/run -o {o}/r.png --device gpu", "'gpu' is not a device; use cpu, cuda or cuda:N"),
    ("render {f}/folder -o {o}/r.png", "is a folder but not a run folder of `lgi fit`"),
    ("render {f}/rgb.png -o {o}/r.png", "rgb.png is a PNG image, not a checkpoint of `lgi fit`"),
    ("render {f}/junk.pt -o {o}/r.png", "cannot read checkpoint {f}/junk.pt: it is not a checkpoint of `lgi fit`"),
    ("render {f}/dcae.pt -o {o}/r.png", "is not an lgi-train checkpoint"),
    ("render {f}/missing.pt -o {o}/r.png", "checkpoint not found"),
    # lgi preprocess
    ("preprocess {f}/folder -o {o}/pp --maps entropy", "folder is a folder; give image files"),
    ("preprocess {f}/missing.png -o {o}/pp --maps entropy", "no such file"),
    # Pillow reads .lgi once `lgi` is imported (lgi.pillow): a damaged one is named as such.
    ("preprocess {f}/photo.lgi -o {o}/pp --maps entropy", "corrupt image (FileFormatError: .lgi file is corrupted"),
    ("preprocess {f}/rgb.png -o {f}/rgb.png", "is a file"),
    ("preprocess {f}/rgb.png -o {o}/pp --maps bogus", "unknown map(s) bogus"),
    ("preprocess {f}/rgb.png -o {o}/pp --n-segments 0", "'--n-segments'"),
    # lgi dictco
    ("dictco compress {f}/rgb.png -o {o}/x.dcae --checkpoint {f}/photo.lgi", "photo.lgi is a .lgi file"),
    ("dictco compress {f}/rgb.png -o {o}/x.dcae --checkpoint {m}/run/checkpoints/final.pt",
     "is not a DCAE checkpoint: it has no 'state_dict'"),
    ("dictco compress {f}/rgb.png -o {o}/x.dcae --checkpoint {f}/folder", "--checkpoint {f}/folder is a folder"),
    ("dictco compress {f}/rgb.png -o {o}/x.dcae --checkpoint {f}/junk.pt",
     "cannot read checkpoint {f}/junk.pt (--checkpoint): it is not a DCAE checkpoint (.pt); torch.save did not"),
    ("dictco compress {f}/rgb.png -o {o}/x.dcae --checkpoint {f}/missing.pt", "checkpoint not found"),
    ("dictco compress {f}/folder -o {o}/x.dcae --checkpoint {f}/dcae.pt", "folder is a folder; give one image"),
    ("dictco compress {f}/rgb.png -o {o}/x.png --checkpoint {f}/dcae.pt", "x.png does not end in .dcae"),
    ("dictco compress {f}/rgb.png -o {o}/x.dcae --checkpoint {f}/dcae.pt --device gpu", "'gpu' is not a device"),
    ("dictco decompress {m}/a.dcae -o {o}/y.dcae --checkpoint {f}/dcae.pt", "y.dcae does not end in .png"),
    ("dictco decompress {f}/folder -o {o}/y.png --checkpoint {f}/dcae.pt", "folder is a folder"),
    ("dictco decompress {f}/photo.lgi -o {o}/y.png --checkpoint {f}/dcae.pt", "not a .dcae file"),
    ("dictco decompress {m}/a.dcae -o {o}/y.png --checkpoint {f}/dcae.pt --max-pixels 0", "'--max-pixels'"),
    ("dictco info {f}/folder", "folder is a folder"),
    ("dictco info {f}/photo.lgi", "not a .dcae file"),
    ("dictco eval --checkpoint {f}/dcae.pt --data {f}/rgb.png --limit 0", "'--limit': must be >= 1, got 0"),
    ("dictco eval --checkpoint {f}/dcae.pt --data {f}/rgb.png -o {o}/rows.png", "rows.png does not end in .csv"),
    ("dictco eval --checkpoint {f}/photo.lgi --data {f}/rgb.png", "photo.lgi is a .lgi file"),
    ("dictco train --data {f}/images -o {o}/tr --epochs 0", "'--epochs': must be >= 1, got 0"),
    ("dictco train --data {f}/images -o {o}/tr --batch-size 0", "'--batch-size': must be >= 1, got 0"),
    ("dictco train --data {f}/images -o {o}/tr --device tpu", "'tpu' is not a device; use auto, cpu"),
    ("dictco train --data {f}/images -o {o}/tr --resume {f}/photo.lgi", "photo.lgi is a .lgi file"),
    # the group and lgi versions
    ("no-such-command", "No such command 'no-such-command'"),
    ("--bogus", "No such option '--bogus'"),
    ("versions --bogus", "No such option '--bogus'"),
]
if not torch.cuda.is_available():
    MISTAKES += [
        ("fit {f}/rgb.png -o {o}/run --device cuda", "no CUDA GPU is available on this machine"),
        ("render {m}/run -o {o}/r.png --device cuda:1", "no CUDA GPU is available on this machine"),
    ]


@pytest.mark.parametrize("args,message", MISTAKES, ids=[m[0].split(" -o ")[0][:60] + f" [{i}]"
                                                       for i, m in enumerate(MISTAKES)])
def test_mistake_is_one_line_and_writes_nothing(files, made, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    out.mkdir()
    before = (_listing(files), _listing(made))
    fill = {"f": files, "m": made, "o": out}
    code, stdout, stderr = _lgi(capsys, *args.format(**fill).split())
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code != 0, stderr
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert message.format(**fill) in lines[0], stderr
    assert stdout == ""
    assert _listing(out) == [] and (_listing(files), _listing(made)) == before  # nothing written


# --- --json and -q on every command -------------------------------------------------------------------

# (arguments; a key the JSON result must have). Each runs three times: --json, -q, and `lgi -q`.
WORKING = [
    ("fit {f}/rgb.png -o {o}/run " + " ".join(FIT_FAST), "metrics_8bit"),
    ("render {m}/run -o {o}/r.png --width 40", "width"),
    ("preprocess {f}/rgb.png -o {o}/pp --maps entropy", "results"),
    ("dictco compress {f}/rgb.png -o {o}/x.dcae --checkpoint {f}/dcae.pt", "bpp"),
    ("dictco decompress {m}/a.dcae -o {o}/y.png --checkpoint {f}/dcae.pt", "height"),
    ("dictco info {m}/a.dcae", "y_bytes"),
    ("dictco eval --checkpoint {f}/dcae.pt --data {f}/images --device cpu", "mean"),
    ("dictco train --data {f}/images -o {o}/tr --model dcae-tiny --max-steps 1 --batch-size 1 --patch-size 16 "
     "--workers 0 --device cpu", "steps"),
    ("versions", "packages"),
    ("decode {m}/a.lgi -o {o}/d.png", "decode_seconds"),
    ("info {m}/a.lgi", "gaussians"),
]


@pytest.mark.parametrize("args,key", WORKING, ids=[" ".join(w[0].split()[:2]) for w in WORKING])
def test_json_on_stdout_and_quiet_silences_progress(files, made, tmp_path, capsys, args, key):
    def argv(name: str) -> list[str]:
        out = tmp_path / name
        out.mkdir()
        return args.format(f=files, m=made, o=out).split()

    code, stdout, stderr = _lgi(capsys, *argv("json"), "--json")
    assert code == 0, stderr
    assert key in json.loads(stdout), stdout  # stdout holds the JSON and nothing else
    for quiet_args in ([*argv("q"), "-q"], ["-q", *argv("root_q")]):
        code, stdout, stderr = _lgi(capsys, *quiet_args)
        assert code == 0, stderr
        assert stderr == "", (quiet_args, stderr)  # no progress, no logs


def test_fit_progress_off_a_terminal_is_a_line_per_stage_also_under_json(files, tmp_path, capsys):
    code, stdout, stderr = _lgi(capsys, "fit", files / "rgb.png", "-o", tmp_path / "run", *FIT_FAST, "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["steps"] == 5
    lines = stderr.splitlines()
    stages = [line.split()[2] for line in lines if line.startswith("lgi fit: ")]
    assert stages == ["load", "init", "fit", "write", "done"], stderr
    fit_line = next(line for line in lines if line.startswith("lgi fit: fit "))
    assert "elapsed" in fit_line
    assert lines[-1].startswith("lgi fit: done in ") and "5 steps" in lines[-1]
    assert "\r" not in stderr and "\x1b[" not in stderr  # plain lines, no bar


def test_render_progress_free_result_line(files, made, tmp_path, capsys):
    code, stdout, stderr = _lgi(capsys, "render", made / "run", "-o", tmp_path / "r.png", "--scale", "2")
    assert code == 0 and stderr == ""
    assert stdout.strip() == f"{tmp_path / 'r.png'}: 64x48 from 20 Gaussians"


# --- grayscale ------------------------------------------------------------------------------------------

def test_grayscale_stays_grayscale_through_fit_and_render(files, made, tmp_path, capsys):
    code, stdout, stderr = _lgi(capsys, "-q", "fit", files / "gray.png", "-o", tmp_path / "run", *FIT_FAST, "--json")
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["channels"] == 1
    fitted = Image.open(tmp_path / "run" / "render.png")
    assert fitted.mode == "L" and fitted.size == (32, 24)
    code, stdout, _ = _lgi(capsys, "render", tmp_path / "run", "-o", tmp_path / "big.png", "--scale", "2", "--json")
    assert code == 0 and json.loads(stdout)["channels"] == 1
    big = Image.open(tmp_path / "big.png")
    assert big.mode == "L" and big.size == (64, 48)
    # The gray render is the mean of the model's three channels, rounded.
    from lgi_train.fit import model_from_checkpoint

    model = model_from_checkpoint(tmp_path / "run" / "checkpoints" / "final.pt")
    with torch.no_grad():
        rgb = model.render(48, 64).clamp(0, 1)
    expect = (rgb.mean(0).numpy() * 255).round().astype(np.uint8)
    assert np.array_equal(np.asarray(big), expect)
    # An RGB input stays RGB.
    assert json.loads((made / "run" / "summary.json").read_text())["channels"] == 3
    assert Image.open(made / "run" / "render.png").mode == "RGB"
    code, _, _ = _lgi(capsys, "-q", "render", made / "run", "-o", tmp_path / "rgb.png")
    assert code == 0 and Image.open(tmp_path / "rgb.png").mode == "RGB"


def test_grayscale_stays_grayscale_through_encode_and_decode(files, made, tmp_path, capsys):
    code, stdout, stderr = _lgi(capsys, "-q", "encode", files / "gray.png", "-o", tmp_path / "g.lgi",
                                "--gaussians", "20", "--effort", "fast", "--steps", "5", "--json")
    assert code == 0, stderr
    code, stdout, _ = _lgi(capsys, "info", tmp_path / "g.lgi", "--json")
    info = json.loads(stdout)
    assert info["channels"] == 1 and info["color_space"] == "gray"
    code, _, stderr = _lgi(capsys, "decode", tmp_path / "g.lgi", "-o", tmp_path / "g.png")
    assert code == 0, stderr
    assert Image.open(tmp_path / "g.png").mode == "L" and Image.open(tmp_path / "g.png").size == (32, 24)
    # An RGB input stays RGB.
    code, stdout, _ = _lgi(capsys, "info", made / "a.lgi", "--json")
    assert json.loads(stdout)["channels"] == 3


def test_gray_metrics_describe_the_gray_file(files, tmp_path, capsys):
    """summary.json's PSNR is that of render.png as written (gray), against the gray input."""
    code, stdout, _ = _lgi(capsys, "-q", "fit", files / "gray.png", "-o", tmp_path / "run", *FIT_FAST, "--json")
    assert code == 0
    written = np.asarray(Image.open(tmp_path / "run" / "render.png"), dtype=np.float64)
    target = np.asarray(Image.open(files / "gray.png"), dtype=np.float64)
    psnr = 10 * np.log10(255.0 ** 2 / np.mean((written - target) ** 2))
    assert abs(json.loads(stdout)["metrics_8bit"]["psnr"] - psnr) < 1e-3


def test_one_line_usage_errors_keep_clicks_exit_status(capsys):
    code, stdout, stderr = _lgi(capsys, "fit", "--init")
    assert code == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1
    assert stderr.strip() == "Error: Option '--init' requires an argument. See `lgi fit --help`."
