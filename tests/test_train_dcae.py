"""tools/train_dcae.py: the training history a shipped model's manifest credits, and the stages' seeds."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def tool(tmp_path, monkeypatch):
    """The tool as a module, its run folders and the package manifest moved under tmp_path."""
    spec = importlib.util.spec_from_file_location("train_dcae", ROOT / "tools" / "train_dcae.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from lgi_dictco.dcae import pretrained

    monkeypatch.setattr(module, "ROOT", tmp_path)
    monkeypatch.setattr(module, "RUNS", tmp_path / "runs" / "dcae-ship")
    monkeypatch.setattr(pretrained, "MANIFEST", tmp_path / "models.json")
    return module


def _run(tool, name: str, steps: int, init: str | None) -> dict:
    """A run folder as `lgi dictco train` leaves it: last.pt (step, init) and command.txt."""
    folder = tool.RUNS / name
    folder.mkdir(parents=True)
    command = f"lgi dictco train -o runs/dcae-ship/{name}" + (f" --init {init}" if init else "")
    (folder / "command.txt").write_text(command + "\n")
    torch.save({"state_dict": {}, "step": steps, "train_config": {"init": init}}, folder / "last.pt")
    return {"run": name, "commands": [command], "steps": steps}


def _manifest(tool, history: list[dict]) -> None:
    (tool.ROOT / "models.json").write_text(json.dumps({"models": [{"quality": 1, "history": history}]}))


def test_history_of_a_chain_of_warm_restarts(tool):
    base = _run(tool, "q1", 100, None)
    first = _run(tool, "q1.1", 20, "runs/dcae-ship/q1/last.pt")
    second = _run(tool, "q1.2", 30, "runs/dcae-ship/q1.1/last.pt")
    assert tool._history(1) == [base, first, second]


def test_a_shipped_run_continued_is_not_counted_twice(tool):
    """q1.1 started from shipped weights (a checkpoint without its history), was shipped, then continued."""
    base = {"run": "q1", "commands": ["lgi dictco train -o runs/dcae-ship/q1"], "steps": 100}
    shipped = tool.RUNS / "shipped" / "q1.pt"
    shipped.parent.mkdir(parents=True)
    torch.save({"state_dict": {}}, shipped)
    first = _run(tool, "q1.1", 20, "runs/dcae-ship/shipped/q1.pt")
    _manifest(tool, [base, first])  # what `ship` wrote for q1.1
    second = _run(tool, "q1.2", 30, "runs/dcae-ship/q1.1/last.pt")
    history = tool._history(1)
    assert history == [base, first, second]
    assert sum(h["steps"] for h in history) == 150


def test_the_history_recorded_in_the_shipped_checkpoint_wins(tool):
    """A checkpoint of shipped weights carries the history behind them, whatever the manifest says now."""
    before = [{"run": "q1", "commands": ["a"], "steps": 100}]
    shipped = tool.RUNS / "shipped" / "q1-0123456789ab.pt"
    shipped.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "shipped_history": before}, shipped)
    later = _run(tool, "q1.1", 20, "runs/dcae-ship/shipped/q1-0123456789ab.pt")
    _manifest(tool, before + [{"run": "other", "commands": ["b"], "steps": 7}])
    assert tool._history(1) == before + [later]


def test_a_run_from_the_shipped_weights_credits_their_history(tmp_path, monkeypatch):
    """`continue --from-shipped`: the checkpoint of the package's weights, named by their checksum, carries
    the manifest's history, and a run started from it adds its own steps to that history once."""
    spec = importlib.util.spec_from_file_location("train_dcae", ROOT / "tools" / "train_dcae.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    from lgi_dictco.dcae import pretrained

    monkeypatch.setattr(tool, "ROOT", tmp_path)
    monkeypatch.setattr(tool, "RUNS", tmp_path / "runs" / "dcae-ship")
    start = tool._from_shipped(2)
    assert start.name == f"q2-{pretrained.get(2).sha256[:12]}.pt"
    shipped = tool._manifest_history(2)
    later = _run(tool, "q2.1", 20, str(start.relative_to(tmp_path)))
    assert tool._history(2) == shipped + [later]
    # The package ships other weights of level 2 since: the run still credits the ones it started from.
    manifest = json.loads(pretrained.MANIFEST.read_text())
    next(m for m in manifest["models"] if m["quality"] == 2)["history"].append({"run": "x", "steps": 9})
    monkeypatch.setattr(pretrained, "MANIFEST", tmp_path / "models.json")
    pretrained.MANIFEST.write_text(json.dumps(manifest))
    assert tool._history(2) == shipped + [later]


def test_stages_draw_their_own_crops(tool):
    seeds = [tool._seed(3, tool.RUNS / name) for name in ("q3", "q3.1", "q3.2", "q3.3")]
    assert seeds == [3, 103, 203, 303]
    assert len({tool._seed(q, tool.RUNS / f"q{q}.3") for q in (1, 2, 3, 4)}) == 4
