"""Two Python environments taking turns at `lgi decode` share one kernel cache and never rebuild it.

Issue 13 found two environments with the same torch version rebuilding the shared JIT cache in turn
(their include paths differ, so ninja saw a changed command line). The build folders are now keyed by
the torch installation and the source tree (lgi_gsplat2d._backend._source_hash), and the native
renderer by its sources, flags and compiler. Here a second virtual environment on the same interpreter
sees this environment's packages through a ``.pth`` file, and the two decode the same file in turn with
the native renderer and with torch's extension: after the first build, nobody builds again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

DECODE = "import sys; from lgi.cli import main; main(sys.argv[1:])"


def _second_environment(tmp_path: Path) -> Path:
    """The python of a new virtual environment whose packages are this environment's."""
    env = tmp_path / "env-b"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # `import` lines of a .pth run at start-up: addsitedir also reads this environment's own .pth
    # files (the editable installs of the packages).
    here = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "lgi_env_a.pth").write_text(f"import site; site.addsitedir({here!r})\n")
    return python


@pytest.fixture(scope="module")
def lgi_file(tmp_path_factory) -> Path:
    import torch

    from lgi_train.compress.codec import CodecSettings
    from lgi_train.compress.encoder import EncodeOptions, encode_image

    g = torch.Generator().manual_seed(0)
    opts = EncodeOptions(num_gaussians=40, codec=CodecSettings(finetune_steps=5), fit_steps=10, refit_steps=0)
    path = tmp_path_factory.mktemp("two-envs") / "small.lgi"
    path.write_bytes(encode_image(torch.rand(3, 24, 32, generator=g), opts).data)
    return path


@pytest.mark.parametrize("backend,turns", [("native", 10), ("cpu", 4)])
def test_two_environments_alternating_never_rebuild(tmp_path, lgi_file, backend, turns):
    pythons = [Path(sys.executable), _second_environment(tmp_path)]
    cache = os.environ.get("LGI_EXTENSIONS_DIR") or str(tmp_path / "cache")
    env = dict(os.environ, LGI_EXTENSIONS_DIR=cache)
    prefixes, builds = set(), []
    for turn in range(turns):
        python = pythons[turn % 2]
        out = tmp_path / f"out{turn}.png"
        res = subprocess.run([str(python), "-c", DECODE, "decode", str(lgi_file), "-o", str(out), "--backend", backend],
                             env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-3000:]
        assert out.stat().st_size > 0
        builds.append("lgi: building" in res.stderr)
        prefixes.add(subprocess.run([str(python), "-c", "import sys; print(sys.prefix)"], capture_output=True,
                                    text=True, check=True).stdout.strip())
    assert len(prefixes) == 2  # two environments did take turns
    assert not any(builds[1:]), builds  # at most the very first decode built anything
