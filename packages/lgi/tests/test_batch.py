"""`lgi batch`: folders mirrored, the manifest resumes (even after kill -9), bad items recorded, the
pool and Ray give the bytes of a sequential run, eval compares with the peers at the same size."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from lgi.batch import MANIFEST, Manifest
from lgi.batch_cli import batch
from lgi.codec_cli import decode as decode_cmd
from lgi.codec_cli import encode as encode_cmd
from lgi.decoding import decode as decode_bytes
from lgi_dictco.gauss.format import decode_lgi

# Tiny and quick: about 1.5 s an image on one core (the fine-tuning of --effort fast dominates).
FLAGS = ["--gaussians", "16", "--steps", "20", "--effort", "fast", "--threads", "1", "-q"]
NAMES = ["a.png", "sub/b.png", "sub/deeper/c.jpg"]


def picture(seed: int, h: int = 32, w: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([xx, yy, 0.5 + 0.4 * np.sin((5 + seed) * xx) * np.cos(7 * yy)], axis=-1)
    img = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)
    return (img * 255).round().astype(np.uint8)


def make_tree(root: Path, names=NAMES, seed: int = 0) -> Path:
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture(seed + i)).save(path, **({"quality": 95} if path.suffix == ".jpg" else {}))
    return root


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST).read_text().splitlines() if line.strip()]


def run(*args) -> object:
    return CliRunner().invoke(batch, [str(a) for a in args], catch_exceptions=False)


def lgi_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.lgi"))}


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    """The tree encoded once, sequentially in this process (-j 1)."""
    base = tmp_path_factory.mktemp("batch")
    src = make_tree(base / "in")
    out = base / "out"
    res = run("encode", src, "-o", out, "-j", "1", *FLAGS)
    assert res.exit_code == 0, res.output
    return src, out


def test_encode_mirrors_the_tree_and_records_each_item(encoded, tmp_path):
    src, out = encoded
    assert sorted(lgi_files(out)) == ["a.lgi", "sub/b.lgi", "sub/deeper/c.lgi"]
    recs = {r["item"]: r for r in records(out)}
    assert sorted(recs) == sorted(NAMES)
    for name, rec in recs.items():
        lgi = out / Path(name).with_suffix(".lgi")
        assert rec["status"] == "ok" and rec["error"] is None
        assert rec["input_sha256"] == sha(src / name)
        assert rec["output_sha256"] == sha(lgi) and rec["bytes"] == lgi.stat().st_size
        assert rec["settings"]["gaussians"] == 16 and rec["settings"]["effort"] == "fast"
        assert rec["seconds"] > 0 and rec["bpp"] == pytest.approx(rec["bytes"] * 8 / (32 * 32))
        # The recorded PSNR is that of what a decoder shows, against the original pixels.
        ref = torch.from_numpy(np.asarray(Image.open(src / name).convert("RGB")) / 255.0).permute(2, 0, 1)
        shown = torch.round(decode_bytes(lgi.read_bytes()).image * 255) / 255
        assert rec["psnr"] == pytest.approx(float(10 * torch.log10(1 / ((shown - ref) ** 2).mean())), abs=1e-6)
    # One item is exactly what `lgi encode` writes with the same flags.
    single = tmp_path / "b.lgi"
    res = CliRunner().invoke(encode_cmd, [str(src / "sub/b.png"), "-o", str(single), "--gaussians", "16",
                                          "--steps", "20", "--effort", "fast", "-q"])
    assert res.exit_code == 0, res.output
    assert single.read_bytes() == (out / "sub/b.lgi").read_bytes()


def test_rerun_skips_what_is_done_and_redoes_what_changed(encoded, tmp_path):
    src0, out0 = encoded
    src, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(src0, src)
    shutil.copytree(out0, out)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.lgi")}
    n = len(records(out))

    res = run("encode", src, "-o", out, "-j", "1", *FLAGS, "--json")
    report = json.loads(res.output)
    assert res.exit_code == 0 and report["ran"] == 0 and report["skipped"] == 3
    assert len(records(out)) == n and {p: p.stat().st_mtime_ns for p in stamps} == stamps

    Image.fromarray(picture(7)).save(src / "a.png")      # a changed input
    (out / "sub/b.lgi").unlink()                         # a lost output
    res = run("encode", src, "-o", out, "-j", "1", *FLAGS, "--json")
    report = json.loads(res.output)
    assert res.exit_code == 0 and report["ran"] == 2 and report["skipped"] == 1
    assert [r["item"] for r in records(out)[n:]] == ["a.png", "sub/b.png"]
    assert (out / "sub/deeper/c.lgi").stat().st_mtime_ns == stamps[out / "sub/deeper/c.lgi"]
    assert records(out)[-2]["input_sha256"] == sha(src / "a.png")
    assert (out / "sub/b.lgi").read_bytes() == (out0 / "sub/b.lgi").read_bytes()

    other = [f if f != "20" else "21" for f in FLAGS]   # other settings: everything again
    res = run("encode", src, "-o", out, "-j", "1", *other, "--json")
    assert res.exit_code == 0 and json.loads(res.output)["ran"] == 3


def test_bad_items_are_recorded_and_the_exit_code_says_so(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_tree(src, ["good.png", "large.png"])
    Image.fromarray(picture(3, 48, 48)).save(src / "large.png")   # 2304 pixels
    (src / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (src / "empty.jpg").write_bytes(b"")
    res = run("encode", src, "-o", out, "-j", "1", "--max-pixels", "2000", *FLAGS)
    assert res.exit_code == 1
    recs = {r["item"]: r for r in records(out)}
    assert recs["good.png"]["status"] == "ok" and (out / "good.lgi").is_file()
    assert {k for k, r in recs.items() if r["status"] == "failed"} == {"large.png", "corrupt.png", "empty.jpg"}
    assert "48x48 = 2304 pixels is more than the limit of 2000" in recs["large.png"]["error"]
    assert "corrupt.png" in recs["corrupt.png"]["error"] and "Traceback" not in res.output
    assert "not an image" in recs["empty.jpg"]["error"]
    assert not (out / "large.lgi").exists() and not (out / "corrupt.lgi").exists()
    assert "failed: corrupt.png" in res.output

    # A rerun does not retry failures unless asked, and still says they failed.
    res = run("encode", src, "-o", out, "-j", "1", "--max-pixels", "2000", *FLAGS)
    assert res.exit_code == 1 and "--retry-failed" in res.output and len(records(out)) == 4
    # A repaired input is new work; --retry-failed (with a larger limit) retries the rest.
    Image.fromarray(picture(4)).save(src / "corrupt.png")
    res = run("encode", src, "-o", out, "-j", "1", "--max-pixels", "2000", *FLAGS, "--json")
    assert res.exit_code == 1 and json.loads(res.output)["ran"] == 1 and (out / "corrupt.lgi").is_file()
    res = run("encode", src, "-o", out, "-j", "1", "--max-pixels", "5000", "--retry-failed", *FLAGS, "--json")
    report = json.loads(res.output)
    assert res.exit_code == 1 and report["ran"] == 2 and report["failed"] == 1
    assert {r["item"]: r["status"] for r in report["items"]} == {"corrupt.png": "ok", "empty.jpg": "failed",
                                                                  "good.png": "ok", "large.png": "ok"}


def test_pool_gives_the_bytes_of_the_sequential_run(encoded, tmp_path):
    src, out = encoded
    res = run("encode", src, "-o", tmp_path / "pool", "-j", "2", *FLAGS)
    assert res.exit_code == 0, res.output
    assert lgi_files(tmp_path / "pool") == lgi_files(out)


def _start_batch_encode(tmp_path: Path, count: int, **popen) -> tuple[subprocess.Popen, list[str], Path, Path]:
    """``lgi batch encode -j 2`` of ``count`` images started in its own process group (so that a test can
    signal the driver and its workers together): (process, image names, source, output)."""
    names = [f"img{i}.png" for i in range(count)]
    src, out = make_tree(tmp_path / "in", names), tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from lgi.cli import main; sys.exit(main())",
                             "batch", "encode", str(src), "-o", str(out), "-j", "2", *FLAGS],
                            stdout=subprocess.DEVNULL, start_new_session=True, **popen)
    return proc, names, src, out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and SIGKILL")
def test_kill_9_mid_batch_loses_nothing_finished(tmp_path):
    proc, names, src, out = _start_batch_encode(tmp_path, 6, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / MANIFEST).exists() and sum(r["status"] == "ok" for r in records(out)) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the batch ended before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)   # the driver and its workers, mid-batch
        proc.wait()
    before = {r["item"]: r for r in records(out) if r["status"] == "ok"}
    assert 2 <= len(before) < len(names)
    for path in out.glob("*.lgi"):            # every output there is whole (its CRCs check)
        decode_lgi(path.read_bytes())
    stamps = {name: (out / Path(name).with_suffix(".lgi")).stat().st_mtime_ns for name in before}

    res = run("encode", src, "-o", out, "-j", "1", *FLAGS, "--json")
    report = json.loads(res.output)
    assert res.exit_code == 0 and report["skipped"] == len(before) and report["ran"] == len(names) - len(before)
    recs = records(out)
    assert sorted(r["item"] for r in recs if r["status"] == "ok") == names       # each done exactly once
    assert {n: (out / Path(n).with_suffix(".lgi")).stat().st_mtime_ns for n in before} == stamps
    for name in names:
        rec = [r for r in recs if r["item"] == name][-1]
        assert rec["output_sha256"] == sha(out / Path(name).with_suffix(".lgi"))


def _descendants(pid: int) -> set[int]:
    out = set()
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for child in map(int, children):
        out |= {child} | _descendants(child)
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_to_the_driver_stops_its_workers(tmp_path):
    proc, _, _, out = _start_batch_encode(tmp_path, 4, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        workers: set[int] = set()
        while time.monotonic() < deadline and proc.poll() is None and len(workers) < 2:
            workers = {p for p in _descendants(proc.pid) if b"spawn_main" in _cmdline(p)}
            time.sleep(0.05)
        assert proc.poll() is None and len(workers) == 2
        time.sleep(2.0)   # into their imports or their first encode
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 143 and "Traceback" not in err
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_running(p) for p in workers):
            time.sleep(0.1)
        assert not any(_running(p) for p in workers)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not list(out.glob("*.lgi.*.tmp")) and not list(out.glob(".*.tmp"))


def test_decode_folder_writes_what_lgi_decode_writes(encoded, tmp_path):
    _, out = encoded
    res = run("decode", out, "-o", tmp_path / "png", "-j", "1", "-q")
    assert res.exit_code == 0, res.output
    pngs = sorted(p.relative_to(tmp_path / "png").as_posix() for p in (tmp_path / "png").rglob("*.png"))
    assert pngs == ["a.png", "sub/b.png", "sub/deeper/c.png"]
    single = tmp_path / "c.png"
    assert CliRunner().invoke(decode_cmd, [str(out / "sub/deeper/c.lgi"), "-o", str(single)]).exit_code == 0
    assert single.read_bytes() == (tmp_path / "png/sub/deeper/c.png").read_bytes()
    res = run("decode", out, "-o", tmp_path / "png2", "-j", "1", "--scale", "2", "-q", "--json")
    assert all(item["status"] == "ok" for item in json.loads(res.output)["items"])
    assert Image.open(tmp_path / "png2/a.png").size == (64, 64)


def test_eval_compares_lgi_with_the_peers_at_its_size(encoded, tmp_path):
    src, out = encoded
    res = run("eval", src, out, "-o", tmp_path / "report", "-j", "1", "-q", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    rows = list(__import__("csv").DictReader(open(tmp_path / "report/eval.csv")))
    assert len(rows) == 3 * 4 and {r["codec"] for r in rows} == {"lgi", "jpeg", "webp", "avif"}
    for name in NAMES:
        mine = {r["codec"]: r for r in rows if r["image"] == name}
        lgi_bytes = (out / Path(name).with_suffix(".lgi")).stat().st_size
        assert int(mine["lgi"]["bytes"]) == lgi_bytes
        rec = [r for r in records(out) if r["item"] == name][-1]
        assert float(mine["lgi"]["psnr"]) == pytest.approx(rec["psnr"], abs=1e-6)
        for peer in ("jpeg", "webp", "avif"):
            over = int(mine[peer]["bytes"]) > lgi_bytes
            assert not over or int(mine[peer]["quality"]) in (0, 1), mine[peer]   # only its lowest quality
            assert float(mine[peer]["bpp"]) == pytest.approx(int(mine[peer]["bytes"]) * 8 / 1024)
    summary = {s["codec"]: s for s in report["summary"]}
    assert summary["lgi"]["images"] == 3
    assert summary["lgi"]["psnr"] == pytest.approx(np.mean([float(r["psnr"]) for r in rows if r["codec"] == "lgi"]))
    assert "| jpeg | 3 |" in (tmp_path / "report/eval_summary.md").read_text()
    assert Image.open(tmp_path / "report/eval.png").format == "PNG"
    again = run("eval", src, out, "-o", tmp_path / "report", "-j", "1", "-q", "--json")
    assert json.loads(again.output)["ran"] == 0     # evaluation resumes too


def test_manifest_ignores_a_line_cut_by_a_kill(tmp_path):
    path = tmp_path / MANIFEST
    m = Manifest(path)
    m.append({"op": "encode", "item": "a.png", "status": "ok"})
    m.append({"op": "encode", "item": "b.png", "status": "failed"})
    m.close()
    with open(path, "ab") as f:
        f.write(b'{"op": "encode", "item": "a.png", "sta')   # the write a kill cut short
    m = Manifest(path)
    assert m.damaged == 1 and m.last[("encode", "a.png")]["status"] == "ok"
    m.append({"op": "encode", "item": "b.png", "status": "ok"})
    m.close()
    m = Manifest(path)
    assert m.damaged == 1 and m.last[("encode", "b.png")]["status"] == "ok"


def test_refusals_come_before_any_work(tmp_path, monkeypatch):
    src = make_tree(tmp_path / "in", ["x.png", "x.jpg"])
    res = run("encode", src, "-o", tmp_path / "out", *FLAGS)
    assert res.exit_code == 1 and "would both be written to" in res.output
    res = run("encode", tmp_path / "nowhere", "-o", tmp_path / "out", *FLAGS)
    assert res.exit_code == 1 and "folder not found" in res.output
    res = run("encode", src, "-o", tmp_path / "out", "--bpp", "0.5", *FLAGS)
    assert res.exit_code == 2 and "choose one of" in res.output
    res = run("eval", src, tmp_path / "out", "--peers", "jpeg,bpg")
    assert res.exit_code == 2 and "unknown peer bpg" in res.output
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    res = run("encode", src, "-o", tmp_path / "out", "--glob", "*.png", "--ray", "auto", *FLAGS)
    assert res.exit_code == 1 and "pip install 'lgi[ray]'" in res.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.lgi"))


@pytest.mark.slow
def test_ray_gives_the_bytes_of_the_local_pool(encoded, tmp_path):
    ray = pytest.importorskip("ray")
    src, out = encoded
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        timings = []
        for run_name in ("cold", "warm"):   # new Ray workers (imports, first-call warm-up), then reused ones
            t0 = time.perf_counter()
            res = run("encode", src, "-o", tmp_path / run_name, "--ray", "auto", *FLAGS, "--json")
            timings.append((run_name, time.perf_counter() - t0, json.loads(res.output)))
            assert res.exit_code == 0, res.output
            assert lgi_files(tmp_path / run_name) == lgi_files(out)
    finally:
        ray.shutdown()
    for run_name, wall, report in timings:
        busy = sum(item["seconds"] for item in report["items"])
        n = len(report["items"])
        print(f"\nRay ({run_name} workers): {n} items in {wall:.2f} s on 2 CPUs, {busy:.2f} s inside the tasks; "
              f"overhead per task {(wall * 2 - busy) / n:.2f} s")
