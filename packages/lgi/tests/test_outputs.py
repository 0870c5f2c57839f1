"""`lgi encode` / `lgi decode` outputs: checked before any work, read-only files kept, SIGTERM cleans up."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lgi.codec_cli import decode, encode


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("outputs") / "in.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)
    return path


def _one_line_error(res, needle):
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], res.output


def test_encode_finds_an_unwritable_output_before_fitting(image, tmp_path, pixel_decodes):
    (tmp_path / "a_file").write_text("x")
    # 10^6 steps would fit for hours: the refusal must come first, before the image is even read.
    res = CliRunner().invoke(encode, [str(image), "-o", str(tmp_path / "a_file" / "x.lgi"), "--gaussians", "20",
                                      "--steps", "1000000"])
    _one_line_error(res, "is not a folder")
    assert pixel_decodes == []
    res = CliRunner().invoke(encode, [str(image), "-o", str(tmp_path), "--gaussians", "20"])
    assert res.exit_code != 0 and not (tmp_path / "x.lgi").exists()


def test_read_only_outputs_are_refused_unless_forced(image, tmp_path):
    out = tmp_path / "ro.lgi"
    out.write_bytes(b"keep me")
    out.chmod(0o444)
    res = CliRunner().invoke(encode, [str(image), "-o", str(out), "--gaussians", "20", "--steps", "1000000"])
    _one_line_error(res, "read-only; pass --force")
    assert out.read_bytes() == b"keep me"
    res = CliRunner().invoke(encode, [str(image), "-o", str(out), "--gaussians", "20", "--steps", "10", "--force"])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:4] != b"keep" and (out.stat().st_mode & 0o777) == 0o444
    png = tmp_path / "ro.png"
    png.write_bytes(b"keep me")
    png.chmod(0o444)
    _one_line_error(CliRunner().invoke(decode, [str(out), "-o", str(png)]), "read-only; pass --force")
    assert CliRunner().invoke(decode, [str(out), "-o", str(png), "--force"]).exit_code == 0
    assert Image.open(png).size == (32, 24)


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has installed a SIGTERM handler (Linux: SigCgt in /proc/PID/status)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_ends_lgi_with_cleanup_and_status_143(image, tmp_path):
    out = tmp_path / "killed.lgi"
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from lgi.cli import main; sys.exit(main())",
                             "encode", str(image), "-o", str(out), "--gaussians", "20", "--steps", "1000000", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not _catches_sigterm(proc.pid) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(1.0)  # into the command itself
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    # the message names what ended it otherwise (a SIGABRT, -6, was seen once under load; stderr says why)
    assert proc.returncode == 143 and "Terminated." in err and "Traceback" not in err, (proc.returncode, err[-3000:])
    assert sorted(p.name for p in tmp_path.iterdir()) == []
