"""The umbrella CLI: plugin discovery, broken-plugin containment, versions, speed of --help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points, version
from pathlib import Path

import pytest
from click.testing import CliRunner

import lgi
from lgi.cli import cli, main

LGI_EXE = Path(sys.executable).with_name("lgi")
PACKAGES = {
    "lgi": "lgi",
    "lgi-preprocess": "lgi_preprocess",
    "lgi-gsplat2d": "lgi_gsplat2d",
    "lgi-fused-ssim": "lgi_fused_ssim",
    "lgi-dictco": "lgi_dictco",
    "lgi-train": "lgi_train",
}


def _run_lgi(*args: str, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "lgi.cli", *args], capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture
def broken_plugin(tmp_path: Path) -> Path:
    """A fake installed distribution registering two commands: one whose module raises, one that works."""
    dist = tmp_path / "lgi_fake_plugin-0.0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lgi-fake-plugin\nVersion: 0.0.1\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""
        [lgi.commands]
        exploding = lgi_fake_plugin_mod:command
        working = lgi_fake_plugin_ok:hello
    """))
    (tmp_path / "lgi_fake_plugin_mod.py").write_text("raise ImportError('libfoo.so: cannot open shared object')\n")
    (tmp_path / "lgi_fake_plugin_ok.py").write_text(textwrap.dedent("""
        import click
        @click.command()
        def hello():
            '''A plugin command that works.'''
            click.echo('hello from a plugin')
    """))
    return tmp_path


def test_version_flag_matches_metadata():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"lgi {version('lgi')}"


@pytest.mark.parametrize("dist,module", sorted(PACKAGES.items()))
def test_version_metadata_consistent(dist, module):
    mod = __import__(module)
    assert mod.__version__ == version(dist), f"{module}.__version__ disagrees with the installed {dist} metadata"


def test_umbrella_pins_the_released_set():
    from importlib.metadata import requires

    pins = {r.split("==")[0]: r.split("==")[1].split(";")[0].strip() for r in requires("lgi") if "==" in r}
    for dist in PACKAGES:
        if dist != "lgi":
            assert pins.get(dist) == version(dist), f"lgi must pin {dist}=={version(dist)}"


def test_registered_commands_load():
    eps = [ep for ep in entry_points(group="lgi.commands") if ep.dist and ep.dist.name.startswith("lgi")]
    import click

    for ep in eps:
        assert isinstance(ep.load(), click.Command), ep.value


def test_help_lists_builtin_versions():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "versions" in result.output


def test_versions_reports_everything():
    result = CliRunner().invoke(cli, ["versions", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(PACKAGES) <= set(report["packages"])
    assert report["packages"]["lgi"] == lgi.__version__
    import torch

    assert report["torch"]["version"] == torch.__version__
    assert report["torch"]["cuda_available"] == torch.cuda.is_available()
    assert report["python"].endswith(sys.version.split()[0])
    text = CliRunner().invoke(cli, ["versions"]).output
    assert "native kernels:" in text and "torch" in text


def test_broken_plugin_is_listed_and_contained(broken_plugin):
    help_run = _run_lgi("--help", extra_path=broken_plugin)
    assert help_run.returncode == 0, help_run.stderr
    line = next(ln for ln in help_run.stdout.splitlines() if "exploding" in ln)
    assert "[broken]" in line and "ImportError" in line
    assert "working" in help_run.stdout

    # The broken command explains itself and fails; nothing else is affected.
    bad = _run_lgi("exploding", "--some-flag", extra_path=broken_plugin)
    assert bad.returncode == 1
    assert "broken" in bad.stderr and "libfoo.so" in bad.stderr
    assert "Traceback" not in bad.stderr
    good = _run_lgi("working", extra_path=broken_plugin)
    assert good.returncode == 0 and "hello from a plugin" in good.stdout
    versions = _run_lgi("versions", extra_path=broken_plugin)
    assert versions.returncode == 0 and "lgi-fake-plugin" in versions.stdout


def test_broken_plugin_traceback_with_verbose(broken_plugin):
    bad = _run_lgi("-v", "exploding", extra_path=broken_plugin)
    assert bad.returncode == 1
    assert "Traceback" in bad.stderr


def test_unknown_command_is_one_clear_error(capsys):
    assert main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_help_imports_nothing_heavy():
    """`lgi --help` stays fast by what it imports: checked as a count of modules, not a clock, so it holds
    on a busy machine (its time is a benchmark's figure)."""
    heavy = ("torch", "numpy", "matplotlib", "compressai", "cv2", "skimage", "scipy", "gradio", "ray", "rich")
    code = ("import sys; from lgi.cli import main; main(['--help']); "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "versions" in run.stdout
    assert run.stdout.strip().splitlines()[-1] == "[]"
