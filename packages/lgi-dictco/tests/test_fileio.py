"""The one atomic writer: no half-written files, no surprise replacements, no temporaries left behind."""

from __future__ import annotations

import os
import stat
import time

import pytest

from lgi_dictco.fileio import (
    STALE_SECONDS,
    OutputError,
    atomic_open,
    atomic_write_bytes,
    check_output,
    sweep_stale_temporaries,
)


def _temporaries(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_read_only_output_is_refused_unless_forced_and_keeps_its_mode(tmp_path):
    out = tmp_path / "out.bin"
    out.write_bytes(b"old")
    out.chmod(0o444)
    with pytest.raises(OutputError, match="read-only; pass --force"):
        check_output(out)
    with pytest.raises(OutputError, match="read-only"):
        atomic_write_bytes(out, b"new")
    assert out.read_bytes() == b"old" and _temporaries(tmp_path) == []
    check_output(out, force=True)
    atomic_write_bytes(out, b"new", force=True)
    assert out.read_bytes() == b"new" and stat.S_IMODE(out.stat().st_mode) == 0o444


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    out = tmp_path / "out.bin"
    out.write_bytes(b"old")
    out.chmod(0o640)
    atomic_write_bytes(out, b"new")
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


def test_outputs_that_cannot_be_written_fail_before_any_work(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OutputError, match="is not a folder"):
        check_output(tmp_path / "a_file" / "sub" / "out.lgi")
    with pytest.raises(OutputError, match="is a folder"):
        check_output(tmp_path)
    assert check_output(tmp_path / "new" / "deeper" / "out.lgi") == tmp_path / "new" / "deeper" / "out.lgi"
    assert not (tmp_path / "new").exists()  # the check creates nothing
    assert _temporaries(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="not writable"):
            check_output(folder / "out.lgi")
    finally:
        folder.chmod(0o755)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "out.bin"
    out.write_bytes(b"old")
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with atomic_open(out) as f:
                f.write(b"half")
                raise exc
    assert out.read_bytes() == b"old" and _temporaries(tmp_path) == []


def test_stale_temporaries_of_killed_writers_are_swept_on_the_next_write(tmp_path):
    out = tmp_path / "out.bin"
    stale = tmp_path / ".out.bin.abc123.tmp"
    fresh = tmp_path / ".out.bin.def456.tmp"
    other = tmp_path / ".other.bin.abc123.tmp"
    for p in (stale, fresh, other):
        p.write_bytes(b"partial")
    old = time.time() - STALE_SECONDS - 60
    for p in (stale, other):
        os.utime(p, (old, old))
    atomic_write_bytes(out, b"data")
    # Only this output's temporaries, and only old ones: a fresh one may belong to a live writer.
    assert _temporaries(tmp_path) == [".other.bin.abc123.tmp", ".out.bin.def456.tmp"]
    assert sweep_stale_temporaries(tmp_path / "other.bin") == [other]
