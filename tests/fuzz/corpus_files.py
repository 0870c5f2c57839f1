"""Writing a checked-in corpus: each file's bytes and, in expected.json, the start of its one-line error."""

from __future__ import annotations

import json
from pathlib import Path


def write_corpus(out: Path, files: dict[str, tuple[bytes, str]], suffix: str) -> None:
    """Write ``NAME{suffix}`` for every entry of ``files`` (name -> (bytes, expected error)) and expected.json."""
    out.mkdir(parents=True, exist_ok=True)
    for name, (data, _) in files.items():
        (out / f"{name}{suffix}").write_bytes(data)
    expected = {name: outcome for name, (_, outcome) in files.items()}
    (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                                       encoding="utf-8")
    total = sum(len(data) for data, _ in files.values())
    print(f"{len(files)} files, {total} bytes in {out}")
