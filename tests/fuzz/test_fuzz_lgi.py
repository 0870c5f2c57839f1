"""`.lgi` decoding under forged input: a brief property-based run (seconds) and the checked-in corpus.

The long run is ``nox -s fuzz`` (tests/fuzz/run_fuzz.py); ``LGI_FUZZ_EXAMPLES`` sets the examples per
target here too.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from lgi_targets import (  # noqa: E402
    FUZZ_PIXELS,
    check,
    edited_valid_file,
    forged_header_file,
    hostile_valid_file,
    outcome,
)

from lgi.decoding import MAX_OUTPUT_PIXELS, DecodeError, prepare  # noqa: E402
from lgi_dictco import LgiFormatError  # noqa: E402

CORPUS = HERE / "corpus" / "lgi"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())
_BRIEF = settings(max_examples=int(os.environ.get("LGI_FUZZ_EXAMPLES", "12")), deadline=None, derandomize=True,
                  database=None, suppress_health_check=list(HealthCheck))
_SCALE = st.sampled_from([None, None, 0.25, 2.5])
_BANDS = st.sampled_from([None, None, 1, 7])


@_BRIEF
@given(data=forged_header_file(), scale=_SCALE)
def test_forged_headers_and_streams(data, scale):
    check(data, scale=scale)


@_BRIEF
@given(data=hostile_valid_file(), scale=_SCALE, band_rows=_BANDS)
def test_hostile_values_in_valid_files(data, scale, band_rows):
    check(data, scale=scale, band_rows=band_rows)


@_BRIEF
@given(data=edited_valid_file())
def test_rewritten_chunks_with_valid_crcs(data):
    check(data)


@pytest.mark.slow  # builds the 2^21-Gaussian file: seconds
def test_the_corpus_is_what_make_corpus_writes():
    from make_corpus import corpus

    files = corpus()
    assert sorted(files) == sorted(EXPECTED)
    for name, (data, expected) in files.items():
        assert (CORPUS / f"{name}.lgi").read_bytes() == data, f"{name}: rerun tests/fuzz/make_corpus.py"
        assert EXPECTED[name] == expected


_SLOW: set[str] = set()  # (the 2^21-Gaussian file is refused from its header now: no parse)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW else n
                                  for n in sorted(EXPECTED)])
def test_corpus_file_under_the_default_budgets(name):
    """Each hostile class: its one-line error (refused before rendering) or a plan whose memory is bounded;
    the small ones also render, finite and in range."""
    data = (CORPUS / f"{name}.lgi").read_bytes()
    want = EXPECTED[name]
    if not want.startswith("decodes "):
        with pytest.raises((LgiFormatError, DecodeError)) as info:
            prepare(data)
        assert str(info.value).startswith(want) and "\n" not in str(info.value)
        return
    plan = prepare(data)
    assert f"decodes {plan.width}x{plan.height}" == want
    assert plan.width * plan.height <= MAX_OUTPUT_PIXELS
    assert plan.memory_bytes() < 1 << 30  # banded: the renderer never holds more than a band
    assert plan.work <= plan.limits[1] and plan.header.num_gaussians <= plan.limits[0]  # the default budget
    if plan.width * plan.height <= FUZZ_PIXELS and plan.header.num_gaussians <= 1 << 16:
        result = outcome(data, max_pixels=FUZZ_PIXELS, max_work=1 << 24)
        assert not isinstance(result, str), result
        image = result[1]
        assert torch.isfinite(image).all() and 0 <= image.min() and image.max() <= 1
