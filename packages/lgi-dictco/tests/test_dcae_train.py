"""Training: the loss, the optimizers, checkpoints (best/last, resumable, exact), CSV logs, DDP on gloo."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lgi_dictco.dcae import build_model, load_checkpoint, load_model
from lgi_dictco.dcae.checkpoint import CheckpointError
from lgi_dictco.dcae.train import RateDistortionLoss, TrainConfig, configure_optimizers, train

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(4):
        h, w = 72 + 8 * i, 96
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack(
            [np.sin(xx / (5 + i)) * 120 + 128, np.cos(yy / 7) * 120 + 128, rng.integers(0, 255, (h, w))], -1
        ).astype(np.uint8)
        Image.fromarray(img).save(folder / f"im{i}.png")
    Image.fromarray(np.full((40, 30, 3), 90, np.uint8)).save(folder / "small.png")  # smaller than a crop
    return folder


def _cfg(images: Path, out: Path, **changes) -> TrainConfig:
    fields = dict(
        data=str(images),
        output=str(out),
        model="dcae-tiny",
        lmbda=0.01,
        epochs=2,
        batch_size=2,
        patch_size=64,
        num_workers=0,
        log_every=1,
        progress=False,
        milestones=(1,),
    )
    fields.update(changes)
    return TrainConfig(**fields)


def test_rate_distortion_loss_matches_its_definition():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 176, 176)
    out = {
        "x_hat": (target + 0.05 * torch.randn_like(target)).clamp(0, 1),
        "likelihoods": {
            "y": torch.rand(2, 8, 11, 11).clamp_min(1e-3),
            "z": torch.rand(2, 4, 3, 3).clamp_min(1e-3),
        },
    }
    bits = -(torch.log2(out["likelihoods"]["y"]).sum() + torch.log2(out["likelihoods"]["z"]).sum())
    bpp = bits / (2 * 176 * 176)
    mse = torch.mean((out["x_hat"] - target) ** 2)
    r = RateDistortionLoss(0.0067, "mse")(out, target)
    torch.testing.assert_close(r["bpp"], bpp)
    torch.testing.assert_close(r["loss"], 0.0067 * 255**2 * mse + bpp)
    torch.testing.assert_close(r["psnr"], -10 * torch.log10(mse))
    from pytorch_msssim import ms_ssim

    r2 = RateDistortionLoss(8.73, "ms-ssim")(out, target)
    torch.testing.assert_close(r2["loss"], 8.73 * (1 - ms_ssim(out["x_hat"], target, data_range=1.0)) + bpp)


def test_optimizers_split_quantiles_from_the_network():
    model = build_model("dcae-moe-tiny")
    main, aux = configure_optimizers(model, 1e-4, 1e-3)
    main_ids = {id(p) for g in main.param_groups for p in g["params"]}
    aux_ids = {id(p) for g in aux.param_groups for p in g["params"]}
    assert aux_ids == {id(model.entropy_bottleneck.quantiles)}
    assert not main_ids & aux_ids and main_ids | aux_ids == {id(p) for p in model.parameters()}
    assert main.param_groups[0]["lr"] == 1e-4 and aux.param_groups[0]["lr"] == 1e-3


def test_train_config_validation():
    with pytest.raises(ValueError, match="metric"):
        TrainConfig(data=".", metric="psnr")
    with pytest.raises(ValueError, match="λ"):
        TrainConfig(data=".", lmbda=0)
    with pytest.raises(ValueError, match="larger than 160"):
        TrainConfig(data=".", metric="ms-ssim", patch_size=128)


def test_training_writes_checkpoints_and_logs(images, tmp_path):
    torch.manual_seed(0)
    initial = build_model("dcae-tiny").state_dict()
    summary = train(_cfg(images, tmp_path / "run", val_data=str(images)))
    assert summary["epochs_done"] == 2 and summary["steps"] == 2 * (5 // 2)
    for name in ("last.pt", "best.pt", "train_log.csv", "epochs.csv"):
        assert (tmp_path / "run" / name).is_file(), name
    with open(tmp_path / "run" / "epochs.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert all(math.isfinite(float(r["val_loss"])) for r in rows)
    assert float(rows[1]["lr"]) == pytest.approx(1e-5)  # MultiStepLR milestone after epoch 1
    with open(tmp_path / "run" / "train_log.csv") as f:
        steps = list(csv.DictReader(f))
    assert [int(r["step"]) for r in steps] == [1, 2, 3, 4]
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert (ckpt["model_name"], ckpt["lmbda"], ckpt["metric"], ckpt["epoch"], ckpt["step"]) == (
        "dcae-tiny",
        0.01,
        "mse",
        1,
        4,
    )
    changed = [k for k, v in ckpt["state_dict"].items() if k in initial and not torch.equal(v, initial[k])]
    assert len(changed) > 10  # the weights moved
    model, meta = load_model(tmp_path / "run" / "best.pt")
    assert meta["lmbda"] == 0.01 and not model.training
    assert os.stat(tmp_path / "run" / "last.pt").st_mode & 0o044  # not a private 0600 temp file


def test_resume_reproduces_an_uninterrupted_run(images, tmp_path):
    straight = train(_cfg(images, tmp_path / "a", epochs=3))
    train(_cfg(images, tmp_path / "b", epochs=1))
    resumed = train(_cfg(images, tmp_path / "b", epochs=3, resume="auto"))
    assert resumed["steps"] == straight["steps"] == 6
    a = load_checkpoint(tmp_path / "a" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    with open(tmp_path / "b" / "epochs.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1, 2]


def test_resume_refuses_another_lambda(images, tmp_path):
    train(_cfg(images, tmp_path / "r", epochs=1, max_steps=1))
    with pytest.raises(CheckpointError, match="lmbda=0.01"):
        train(_cfg(images, tmp_path / "r", lmbda=0.05, resume="auto"))


def test_max_steps_stops_early(images, tmp_path):
    summary = train(_cfg(images, tmp_path / "m", epochs=50, max_steps=3))
    assert summary["steps"] == 3 and load_checkpoint(tmp_path / "m" / "last.pt")["step"] == 3


_DDP_WORKER = textwrap.dedent("""
    import os, sys, torch
    from lgi_dictco.dcae.train import TrainConfig, train
    torch.set_num_threads(1)
    images, out = sys.argv[1], sys.argv[2]
    cfg = TrainConfig(data=images, output=out, model="dcae-tiny", lmbda=0.01, epochs=1, max_steps=1,
                      batch_size=2, patch_size=64, num_workers=0, progress=False, device="cpu", seed=3)
    summary = train(cfg)
    rank = int(os.environ["RANK"])
    torch.save({k: v.detach().clone() for k, v in summary["model"].state_dict().items()},
               os.path.join(out, f"rank{rank}.pt"))
""")


def test_ddp_step_on_two_gloo_processes_keeps_ranks_identical(images, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(_DDP_WORKER)
    out = tmp_path / "ddp"
    out.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        str(images),
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = torch.load(out / "rank0.pt")
    r1 = torch.load(out / "rank1.pt")
    torch.manual_seed(3)
    initial = build_model("dcae-tiny").state_dict()
    moved = 0
    for k, v in r0.items():
        assert torch.equal(v, r1[k]), f"ranks differ in {k}"
        moved += not torch.equal(v, initial[k])
    assert moved > 10  # one real step was taken (ranks saw different crops, gradients were averaged)
    assert (out / "last.pt").is_file() and load_checkpoint(out / "last.pt")["step"] == 1


def test_image_crops(images):
    from lgi_dictco.dcae.data import ImageCrops

    val = ImageCrops(images, patch_size=64, random_crop=False)
    assert len(val) == 5 and all(val[i].shape == (3, 64, 64) for i in range(5))
    assert torch.equal(val[0], val[0])  # centred crops are deterministic
    small = val[[p.name for p in val.files].index("small.png")]
    assert torch.allclose(small, torch.full_like(small, 90 / 255))  # padded by replicating its edges
    train_set = ImageCrops(images, patch_size=64, repeats=3)
    assert len(train_set) == 15 and train_set[7].shape == (3, 64, 64)
    with pytest.raises(ValueError, match="multiple of 16"):
        ImageCrops(images, patch_size=50)


def test_image_crops_flips_and_scale_augmentation(tmp_path):
    from lgi_dictco.dcae.data import ImageCrops

    # A horizontal ramp: one grey level per pixel, so a crop's mean step is 1/255 unscaled, 1/(255·s)
    # when a 64/s-pixel square is shrunk to 64, and negative when mirrored.
    ramp = np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (256, 1, 3))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    plain = ImageCrops(tmp_path, patch_size=64, repeats=1)
    torch.manual_seed(0)
    steps = [float(plain[0].diff(dim=-1).mean()) * 255 for _ in range(10)]
    assert steps == pytest.approx([1.0] * 10)
    augmented = ImageCrops(tmp_path, patch_size=64, hflip=True, scale_min=0.25)
    torch.manual_seed(0)
    crops = [augmented[0] for _ in range(40)]
    steps = np.array([float(c.diff(dim=-1).mean()) * 255 for c in crops])
    assert all(c.shape == (3, 64, 64) and 0 <= c.min() and c.max() <= 1 for c in crops)
    assert (steps > 0).any() and (steps < 0).any()  # mirrored and not
    assert np.abs(steps).min() > 0.98 and np.abs(steps).max() > 2.0  # shrunk by up to 4x, never enlarged
    assert np.abs(steps).max() < 4.1
    torch.manual_seed(0)
    assert torch.equal(augmented[0], crops[0])  # seeded: reproducible
    with pytest.raises(ValueError, match="scale_min"):
        ImageCrops(tmp_path, patch_size=64, scale_min=0)


def test_init_starts_a_new_run_from_a_checkpoint(images, tmp_path):
    first = train(_cfg(images, tmp_path / "a", max_steps=1))
    # Another λ is allowed (a resume would refuse it); learning rate 0 keeps the weights as they were.
    second = train(
        _cfg(images, tmp_path / "b", lmbda=0.05, init=str(tmp_path / "a" / "last.pt"), max_steps=1,
             learning_rate=0.0, aux_learning_rate=0.0)
    )
    a, b = first["model"].state_dict(), second["model"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["lmbda"] == 0.05
    assert load_checkpoint(tmp_path / "b" / "last.pt")["step"] == 1  # a new run counts from 0


def test_checkpoints_load_from_bare_state_dicts(tmp_path):
    torch.manual_seed(0)
    model = build_model("dcae-moe-tiny")
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "bare.pt")
    loaded, meta = load_model(tmp_path / "bare.pt")
    assert loaded.config == model.config and loaded.fingerprint() == model.fingerprint()
    torch.save({"kind": "something-else", "state_dict": model.state_dict()}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a DCAE one"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="do not fit a DCAE model"):
        load_model(tmp_path / "foreign.pt")
