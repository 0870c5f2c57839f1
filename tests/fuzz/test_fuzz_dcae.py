"""The checked-in corpus of hostile `.dcae` files: each refused with its one-line error from the bytes alone,
before torch or compressai is imported, through the check, the command line and the decoder.

The property-based `.dcae` targets are packages/lgi-dictco/tests/test_dcae_fuzz.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from lgi_dictco.dcae import build_model, decode, save_checkpoint  # noqa: E402
from lgi_dictco.errors import LgiFormatError  # noqa: E402

CORPUS = HERE / "corpus" / "dcae"
EXPECTED = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))

# Run in a fresh interpreter: lgi_dictco's check, then `lgi dictco decompress` on every file, then which
# heavy modules got imported along the way. Prints one JSON object.
_REFUSE_ALL = """
import contextlib, io, json, sys
from pathlib import Path
from lgi.cli import main
from lgi_dictco.dcae.format import check_file
from lgi_dictco.errors import LgiFormatError
corpus, out, checkpoint = (Path(a) for a in sys.argv[1:4])
results = {}
for path in sorted(corpus.glob("*.dcae")):
    try:
        check_file(path.read_bytes())
        check = None
    except LgiFormatError as exc:
        check = str(exc)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stderr):
        rc = main(["dictco", "decompress", str(path), "-o", str(out), "--checkpoint", str(checkpoint)])
    results[path.stem] = {"check": check, "rc": rc, "output": stderr.getvalue(), "written": out.exists()}
print(json.dumps({"results": results, "loaded": [m for m in ("torch", "compressai", "compressai.ans")
                                                  if m in sys.modules]}))
"""


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model("dcae-tiny").eval()
    m.update()
    return m


def test_the_corpus_is_what_make_dcae_corpus_writes():
    from make_dcae_corpus import corpus

    files = corpus()
    assert sorted(files) == sorted(EXPECTED) == sorted(p.stem for p in CORPUS.glob("*.dcae"))
    for name, (data, expected) in files.items():
        assert (CORPUS / f"{name}.dcae").read_bytes() == data, f"{name}: rerun tests/fuzz/make_dcae_corpus.py"
        assert EXPECTED[name] == expected


def test_every_corpus_file_is_refused_before_torch_loads(model, tmp_path):
    """A real checkpoint is given: the refusal comes from the file's bytes, before the model (or torch) loads."""
    checkpoint, out = tmp_path / "tiny.pt", tmp_path / "out.png"
    save_checkpoint(checkpoint, model, lmbda=0.0035, metric="mse")
    res = subprocess.run([sys.executable, "-c", _REFUSE_ALL, str(CORPUS), str(out), str(checkpoint)],
                         capture_output=True, text=True, env=os.environ, timeout=120)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["loaded"] == [], "the refusals imported " + ", ".join(report["loaded"])
    assert sorted(report["results"]) == sorted(EXPECTED)
    for name, got in report["results"].items():
        message = got["check"]
        assert message is not None, f"{name} passed the checks"
        assert message.startswith(EXPECTED[name]) and "\n" not in message, (name, message)
        path = CORPUS / f"{name}.dcae"
        assert got["rc"] == 1 and not got["written"], (name, got)
        assert got["output"].splitlines() == [f"Error: {path}: {message}"], (name, got["output"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_decoder_refuses_every_corpus_file_alike(model, name):
    """Defence in depth: decoding with a model refuses each file with the same one-line error."""
    with pytest.raises(LgiFormatError) as info:
        decode(model, (CORPUS / f"{name}.dcae").read_bytes())
    assert str(info.value).startswith(EXPECTED[name]) and "\n" not in str(info.value)
