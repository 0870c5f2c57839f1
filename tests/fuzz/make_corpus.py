"""Write the checked-in corpus of hostile `.lgi` files: tests/fuzz/corpus/lgi/*.lgi and expected.json.

    python tests/fuzz/make_corpus.py            # rewrite the corpus (deterministic: same bytes every run)

Each file is one hostile class (issue 14, and what the fuzz targets found worth keeping); expected.json
names the outcome under the default budgets of `lgi decode`: the start of the one-line error, or
"decodes" with the output size. test_fuzz_lgi.py replays them.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from corpus_files import write_corpus  # noqa: E402
from lgi_targets import container, covering_at_limit, head_bytes, payload_file, raw_stream  # noqa: E402

from lgi_dictco.bitio import write_varint  # noqa: E402
from lgi_dictco.entropy import encode_stream  # noqa: E402
from lgi_dictco.gauss import GAUSSIANS_PER_PIXEL, MIN_GAUSSIANS  # noqa: E402

OUT = HERE / "corpus" / "lgi"


def _frame(parts):
    return b"".join(write_varint(len(p)) + p for p in parts)


def _head(w=64, h=64, n=4, channels=3, lo_step=None, levels=4):
    lo_step = lo_step or [(0.0, 0.1)] * 3
    return head_bytes([w, h, channels, 0, 0, 10, n, 10, 10, 1, 0],
                      [(0, [(-8.0, 0.1)] * 3, [(0, [levels] * 3)]), (0, lo_step, [(0, [levels] * channels)])])


def _groups(n, channels=3):
    zeros = encode_stream(np.zeros(n, np.int64), 4)
    return (b"SHAP", _frame([b""] + [zeros] * 3)), (b"COLR", _frame([b""] + [zeros] * channels))


def corpus() -> dict[str, tuple[bytes, str]]:
    files = {}
    # Work: 131,072 identical Gaussians covering a Kodak-sized canvas, top-K and sum (~100 s and ~26 s
    # of rendering before budgets); at the tile-intersection cap, minutes and gigabytes. Refused by count.
    for mode in ("topk", "sum"):
        files[f"covering_131072_{mode}"] = (payload_file(131072, 768, 512, log_scale=(2, 2.01), mode=mode, same=True),
                                            "the file holds 131072 Gaussians, more than the limit of 65536")
    # 43,690 canvas-covering Gaussians, just under the old intersection limit (2^26): 12.7 s with sum
    # blending, ~30 s top-K (K = 32) at the old defaults. Within the count, refused by the work.
    for mode, k in (("sum", 10), ("topk", 32)):
        files[f"covering_43690_{mode}"] = (payload_file(43690, 768, 512, log_scale=(2, 2.01), mode=mode, k=k, same=True),
                                           "drawing 768x512 from 43690 Gaussians needs up to")
    # The default budget's ceilings (lgi_dictco.gauss.DecodeBudget), each just under and just over:
    # the Gaussian count from the header (at least MIN_GAUSSIANS; a quarter of the pixels of a large
    # canvas), and the work of canvas-covering Gaussians at 768x512 (top-K, K = 10).
    for n, outcome in ((MIN_GAUSSIANS, "decodes 64x64"), (MIN_GAUSSIANS + 1, f"the file holds {MIN_GAUSSIANS + 1} Gaussians")):
        files[f"count_{n}_of_64x64"] = (payload_file(n, 64, 64, log_scale=(-40, -39.9), same=True), outcome)
    most = int(GAUSSIANS_PER_PIXEL * 1024 * 1024)
    for n, outcome in ((most, "decodes 1024x1024"), (most + 1, f"the file holds {most + 1} Gaussians")):
        files[f"count_{n}_of_1024x1024"] = (payload_file(n, 1024, 1024, log_scale=(-40, -39.9), same=True), outcome)
    n = covering_at_limit(768, 512, 10)
    for m, outcome in ((n, "decodes 768x512"), (n + 1, f"drawing 768x512 from {n + 1} Gaussians needs up to")):
        files[f"work_covering_{m}_topk10"] = (payload_file(m, 768, 512, log_scale=(2, 2.01), same=True), outcome)
    # Memory: the largest stored canvas with K = 32 (11+ GB of top-K buffers unbanded); a few Gaussians.
    files["canvas_65536x2048_k32"] = (payload_file(8, 65536, 2048, k=32, log_scale=(-6, -5)), "decodes 65536x2048")
    # 2^21 Gaussians (the format's limit) in one cell, too small to see: parsing is the whole cost.
    files["max_gaussians_invisible"] = (payload_file(1 << 21, 64, 64, log_scale=(-60, -59.9), same=True),
                                        "the file holds 2097152 Gaussians, more than the limit of 65536")
    # Degenerate but finite scales: enormous (covering everything, radius capped) and vanishing.
    files["scales_enormous"] = (payload_file(40, 48, 32, log_scale=(38, 39)), "decodes 48x32")
    # Needles: axes up to e^8 apart, beyond float precision for the conic; rounding made q negative (to
    # -5e4) and exp(-q/2) overflowed: 3 NaN pixels before every renderer clamped the weight at 1
    # (found by the long lgi-values run, 2026-12-07).
    files["needles_beyond_float"] = (payload_file(200, 64, 64, log_scale=(-10, -2)), "decodes 64x64")
    # Opponent colours: a lo finite in the opponent space that overflows in the matrix product.
    files["opp_lo_overflows_in_transform"] = (
        payload_file(6, 32, 32, channels=3, color_space="opp", color_lo=3e38, color_step=1e30, color_levels=1),
        ".lgi colour values are not finite")
    files["colour_beyond_limit"] = (payload_file(6, 32, 32, color_lo=1e7), ".lgi colour values reach")
    # Classes at the limits: 3 classes dropping bits, step exponents of -16 and 4; +16 makes the shape
    # range overflow (exp of ~1500): refused after dequantization.
    files["classes_at_limits"] = (payload_file(200, 40, 40, drops=(6, 3, 0), exps=(-16, 4, 0)), "decodes 40x40")
    files["class_exponent_overflows_scales"] = (payload_file(200, 40, 40, drops=(6, 3, 0), exps=(16, -16, 0)),
                                                ".lgi shape values decode to non-finite or zero scales")
    # Streams: a bucketed POSN whose bit length is 64 (wrapped to a negative int64 before the fix).
    codes = [0] * 64 + [40]
    diffs = [b - a for a, b in zip(codes, codes[1:])]
    posn = raw_stream(1, 65, 0, diffs, bytes(8), raw=bytes(16))
    files["posn_bit_length_64"] = (container([(b"HEAD", _head(n=4)), (b"POSN", posn), *_groups(4)]),
                                   ".lgi positions: a value claims")
    # A header that claims 60,000 Gaussians (within the count budget) over empty streams.
    files["count_lies"] = (container([(b"HEAD", _head(n=60000)), (b"POSN", b"\x01\x00"), *_groups(4)]),
                           ".lgi positions: empty stream but")
    # Positions whose deltas run past the grid.
    big = encode_stream(np.array([1 << 19, 1 << 19, 1 << 19, 1 << 19], np.int64))
    files["positions_past_grid"] = (container([(b"HEAD", _head(n=4)), (b"POSN", big), *_groups(4)]),
                                    ".lgi positions run past the position grid")
    # A direct stream whose model claims 4097 symbols; a payload that lies about its length.
    files["alphabet_4097"] = (container([(b"HEAD", _head(n=4)), (b"POSN", raw_stream(0, 4097, 1, [0] * 8, bytes(8))),
                                         *_groups(4)]), "entropy model alphabet 4097 exceeds the limit 4096")
    files["payload_length_lies"] = (container([(b"HEAD", _head(n=4)),
                                               (b"POSN", raw_stream(0, 2, 5, [1], bytes(8), payload_len=1 << 31)),
                                               *_groups(4)]), ".lgi positions: value 2147483648 exceeds the limit")
    # Header floats: NaN lo, zero step, a range that overflows float32, levels 0 and 4097, sizes 2^32 - 1.
    files["nan_lo"] = (container([(b"HEAD", _head(lo_step=[(float("nan"), 0.1)] * 3)), (b"POSN", b"\x00\x00"),
                                  *_groups(0)]), ".lgi header: colour quantizer is not finite")
    files["range_overflows"] = (container([(b"HEAD", _head(lo_step=[(3e38, 3e38)] * 3, levels=4000)),
                                           (b"POSN", b"\x00\x00"), *_groups(0)]),
                                ".lgi header: colour quantizer range overflows float32")
    files["levels_4097"] = (container([(b"HEAD", _head(levels=4097)), (b"POSN", b"\x00\x00"), *_groups(0)]),
                            ".lgi header (shape levels)")
    files["size_2_32"] = (container([(b"HEAD", _head(w=(1 << 32) - 1, h=(1 << 32) - 1)), (b"POSN", b"\x00\x00"),
                                     *_groups(0)]), ".lgi header: image size")
    return files


def main() -> None:
    write_corpus(OUT, corpus(), ".lgi")


if __name__ == "__main__":
    main()
