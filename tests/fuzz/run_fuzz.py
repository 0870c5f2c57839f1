"""The long fuzz run (``nox -s fuzz``): every `.lgi` target of lgi_targets.py and the `.dcae` targets of
packages/lgi-dictco/tests/test_dcae_fuzz.py, each for many examples in a process of its own.

    python tests/fuzz/run_fuzz.py --examples 100000 [--minutes 60] [--targets lgi-headers,dcae-headers] [--json out.json]

Reports per target: inputs run, images and refusals, crashes (a property violation, an unexpected
exception, or the process dying on a signal), hangs (an input slower than ``--hang`` seconds), the
slowest input, and the process's peak resident memory. Exit status 1 if any target crashed or hung.
The input of a crash (the last one to fail: Hypothesis's shrunk example) is kept whole in
``crash-<target>.lgi``, its arguments in ``crash-<target>.json``, beside ``--json`` (or in the working
folder): ``python tests/fuzz/run_fuzz.py --replay crash-lgi-values.json`` runs it again.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DCAE_TESTS = ROOT / "packages" / "lgi-dictco" / "tests" / "test_dcae_fuzz.py"
LGI_TARGETS = ("lgi-headers", "lgi-values", "lgi-edits")
DCAE_TARGETS = ("dcae-payloads", "dcae-headers")


class _OutOfTime(BaseException):
    """Raised once a target's ``--minutes`` are spent: not an Exception, so Hypothesis stops at once
    instead of treating it as a failure to shrink."""


class Hang(Exception):
    """One input ran past the alarm: reported as a hang (and the target stops, like a crash)."""


class _Stats:
    def __init__(self, hang: float, minutes: float | None):
        self.hang, self.inputs, self.kinds, self.hangs, self.slowest, self.slowest_cpu = hang, 0, {}, 0, 0.0, 0.0
        self.minutes, self.deadline = minutes, None
        self.failed: tuple[bytes, dict] | None = None  # the last input that raised, and its arguments

    def timed(self, fn, *args, **kwargs):
        if self.minutes is not None and self.deadline is None:  # the clock starts at the first input
            self.deadline = time.monotonic() + 60 * self.minutes
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _OutOfTime()
        signal.alarm(max(60, int(self.hang * 12)))  # an input that never returns ends as a hang
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            result = fn(*args, **kwargs)
        except Exception:
            if args and isinstance(args[0], bytes):
                self.failed = (args[0], kwargs)
            raise
        finally:
            signal.alarm(0)
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            self.inputs += 1
            self.slowest, self.slowest_cpu = max(self.slowest, dt), max(self.slowest_cpu, cpu)
            # CPU seconds: under nice on a shared machine, wall time measures the neighbours.
            self.hangs += cpu > self.hang
        # lgi_targets.check returns "image" / "error"; the .dcae _check an image or None.
        kind = result if isinstance(result, str) else ("error" if result is None else "image")
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        return result


def _lgi_test(target: str, stats: _Stats, examples: int):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    sys.path.insert(0, str(HERE))
    import lgi_targets as t

    cfg = settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    scale, bands = st.sampled_from([None, None, 0.25, 2.5]), st.sampled_from([None, None, 1, 7])
    strategy = {"lgi-headers": t.forged_header_file(), "lgi-values": t.hostile_valid_file(),
                "lgi-edits": t.edited_valid_file()}[target]

    t.check(t.payload_file(4, 16, 16))  # warm up (imports, the native renderer) outside the timings

    @cfg
    @given(data=strategy, scale=scale, band_rows=bands)
    def run(data, scale, band_rows):
        stats.timed(t.check, data, scale=scale, band_rows=band_rows if target == "lgi-values" else None)

    return run


def _dcae_test(target: str, stats: _Stats, examples: int):
    import torch
    from hypothesis import HealthCheck, settings

    from lgi_dictco.dcae import build_model

    spec = importlib.util.spec_from_file_location("test_dcae_fuzz", DCAE_TESTS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    check = mod._check
    mod._check = lambda *a, **k: stats.timed(check, *a, **k)  # count and time every decode pair
    torch.manual_seed(0)  # the tests' tiny_model fixture (conftest.py)
    model = build_model("dcae-tiny").eval()
    model.update()
    try:  # warm up (imports, first decode) outside the timings
        check(model, b"")
    except Exception:  # noqa: BLE001 - only the warm-up
        pass
    fn = {"dcae-payloads": mod.test_forged_payloads_in_a_consistent_header,
          "dcae-headers": mod.test_forged_headers_with_a_valid_crc}[target]
    # The tests pin 20 derandomized examples; a long run wants many random ones. Hypothesis reads this
    # attribute when the test is called (re-decorating with @settings is refused).
    fn._hypothesis_internal_use_settings = settings(
        fn._hypothesis_internal_use_settings, max_examples=examples, derandomize=False, database=None,
        suppress_health_check=list(HealthCheck))
    return lambda: fn(model=model)


def worker(target: str, examples: int, hang: float, minutes: float | None = None) -> dict:
    def on_alarm(signum, frame):
        raise Hang(f"an input ran past {max(60, int(hang * 12))} s")

    signal.signal(signal.SIGALRM, on_alarm)
    stats = _Stats(hang, minutes)
    test = _lgi_test(target, stats, examples) if target in LGI_TARGETS else _dcae_test(target, stats, examples)
    t0, crash = time.perf_counter(), None
    try:
        test()
    except _OutOfTime:
        pass
    except Exception as exc:  # noqa: BLE001 - a falsified property or anything unexpected: report it
        import traceback

        where = traceback.extract_tb(exc.__traceback__)[-1]
        notes = " ".join(getattr(exc, "__notes__", []))  # Hypothesis's falsifying example
        crash = f"{type(exc).__name__}: {str(exc)[:1000]} at {Path(where.filename).name}:{where.lineno} " \
                f"({where.line}); {notes[:3000]}"
    failed = None
    if crash is not None and stats.failed is not None:
        data, kwargs = stats.failed
        failed = {"hex": data.hex(), "kwargs": kwargs}
    return {"target": target, "inputs": stats.inputs, "outcomes": stats.kinds, "crashes": int(crash is not None),
            "crash": crash, "failed_input": failed, "hangs": stats.hangs, "slowest_s": round(stats.slowest, 3),
            "slowest_cpu_s": round(stats.slowest_cpu, 3),
            "seconds": round(time.perf_counter() - t0, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=int(os.environ.get("LGI_FUZZ_EXAMPLES", "2000")),
                    help="examples per target (default: $LGI_FUZZ_EXAMPLES or 2000)")
    ap.add_argument("--targets", default=",".join(LGI_TARGETS + DCAE_TARGETS))
    ap.add_argument("--hang", type=float, default=2.0,
                    help="CPU seconds above which an input counts as a hang (wall time is reported too)")
    ap.add_argument("--minutes", type=float, help="stop running inputs of a target after this many minutes")
    ap.add_argument("--json", type=Path, help="also write the report here")
    ap.add_argument("--replay", type=Path, help="run the kept input of a crash again (crash-<target>.json)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.replay:
        return replay(args.replay)
    if args.worker:
        args.out.write_text(json.dumps(worker(args.worker, args.examples, args.hang, args.minutes)))
        return 0
    results = []
    for target in [t for t in args.targets.split(",") if t]:
        if target not in LGI_TARGETS + DCAE_TARGETS:
            ap.error(f"unknown target {target!r}; known: {', '.join(LGI_TARGETS + DCAE_TARGETS)}")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "r.json"
            cmd = [sys.executable, __file__, "--worker", target, "--examples", str(args.examples),
                   "--hang", str(args.hang), "--out", str(out)]
            proc = subprocess.run(cmd + (["--minutes", str(args.minutes)] if args.minutes else []))
            if out.exists():
                r = json.loads(out.read_text())
            else:  # died: a segfault or the kernel's OOM killer is a crash too
                r = {"target": target, "inputs": None, "crashes": 1, "hangs": 0,
                     "crash": f"the worker died with status {proc.returncode}"}
        kept = r.pop("failed_input", None)
        if kept is not None:
            stem = (args.json.parent if args.json else Path.cwd()) / f"crash-{target}"
            stem.with_suffix(".lgi").write_bytes(bytes.fromhex(kept["hex"]))
            stem.with_suffix(".json").write_text(json.dumps({"target": target, "kwargs": kept["kwargs"]}) + "\n")
            r["crash_input"] = str(stem.with_suffix(".lgi"))
        results.append(r)
        print(json.dumps(r), flush=True)
    summary = {"examples_per_target": args.examples, "targets": results,
               "inputs": sum(r["inputs"] or 0 for r in results), "crashes": sum(r["crashes"] for r in results),
               "hangs": sum(r["hangs"] for r in results),
               "peak_rss_mib": max((r.get("peak_rss_mib", 0) for r in results), default=0)}
    print(f"fuzz: {summary['inputs']} inputs, {summary['crashes']} crashes, {summary['hangs']} hangs "
          f"(> {args.hang:g} s), peak RSS {summary['peak_rss_mib']} MiB")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 1 if summary["crashes"] or summary["hangs"] else 0


def replay(path: Path) -> int:
    """Run the check of a kept crash input (``path``'s ``.lgi`` sibling) again, with the arguments it failed with."""
    kept = json.loads(path.read_text())
    if not kept["target"].startswith("lgi-"):
        raise SystemExit(f"{path}: only the .lgi targets keep their inputs")
    sys.path.insert(0, str(HERE))
    import lgi_targets as t

    print(t.check(path.with_suffix(".lgi").read_bytes(), **kept["kwargs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
