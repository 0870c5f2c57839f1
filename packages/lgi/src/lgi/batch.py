"""Whole folders through the codec (`lgi batch`): resumable, on a local process pool or a Ray cluster.

The driver (the `lgi batch` process) walks the input folder, reads each input, and asks the manifest
whether that item is already done: same input hash, same settings, and (for items with an output) the
output still there with the recorded hash. Work that is not done goes to a *task*: a pure function of
(item name, input bytes, settings) that returns the output's bytes and a report. Tasks run in this
process (``jobs=1``), in a local process pool, or as Ray tasks, and need no shared file system.

Only the driver writes: each output atomically (:func:`lgi_dictco.fileio.atomic_write_bytes`), then
one manifest line, flushed and fsynced. A kill -9 therefore loses at most the items in flight and never
leaves a partial output; a rerun redoes exactly what is not recorded as done with these settings.

Only the standard library is imported here at module level: worker processes import torch inside the
tasks.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = "lgi-batch.jsonl"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".avif", ".tif", ".tiff", ".bmp", ".gif", ".ppm", ".pgm",
                  ".pnm", ".tga")
DECODE_FLAGS = ("scale", "width", "device", "backend")
#: A task whose worker process died this many times is recorded as failed instead of retried.
POOL_ATTEMPTS = 2


class BatchError(ValueError):
    """The batch cannot start (bad folder, two inputs mapping to one output); the message says why."""


@dataclass(frozen=True)
class Item:
    """One unit of work: ``name`` is its path relative to the input folder (POSIX)."""

    name: str
    sources: dict[str, Path]   # role ("image", "lgi") → input file
    output: Path | None        # the file the driver writes, or None (eval)


@dataclass
class Outcome:
    """What a batch did; ``records`` are the manifest records of every item, in item order."""

    total: int = 0
    ran: int = 0
    skipped: int = 0
    failed: list[dict] = field(default_factory=list)        # failed in this run
    failed_before: list[dict] = field(default_factory=list)  # failed earlier, not retried
    records: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.failed_before


# -- items ---------------------------------------------------------------------------------------------

def collect(root: Path, suffixes: tuple[str, ...], pattern: str = "*", exclude: Path | None = None) -> list[Path]:
    """Files under ``root`` (recursive) whose name matches ``pattern`` and ends in one of ``suffixes``.

    Hidden files and folders (a leading dot: temporaries of the atomic writer among them) and anything
    under ``exclude`` (the output folder, when it lies inside the input) are left out. Sorted.
    """
    if not root.is_dir():
        raise BatchError(f"{root} is not a folder" if root.exists() else f"folder not found: {root}")
    exclude = exclude.resolve() if exclude is not None else None
    found = []
    for path in root.rglob(pattern):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or path.suffix.lower() not in suffixes:
            continue
        if exclude is not None and (exclude == path.resolve() or exclude in path.resolve().parents):
            continue
        if path.is_file():
            found.append(path)
    return sorted(found)


def mirror(root: Path, files: list[Path], out: Path, suffix: str, role: str) -> list[Item]:
    """One item per file, its output at the same relative path under ``out`` with ``suffix``."""
    items, seen = [], {}
    for path in files:
        rel = path.relative_to(root)
        target = rel.with_suffix(suffix)
        if target in seen:
            raise BatchError(f"{seen[target]} and {rel} would both be written to {out / target}; "
                             "rename one or narrow --glob")
        seen[target] = rel
        items.append(Item(rel.as_posix(), {role: path}, out / target))
    return items


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def settings_id(settings: dict) -> str:
    """A short hash of the settings: a record made under other settings is not "done"."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def codec_versions() -> dict[str, str]:
    """The versions that decide the bytes (a new codec release may encode differently)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for dist in ("lgi-train", "lgi-dictco", "lgi-gsplat2d"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "missing"
    return out


# -- the manifest --------------------------------------------------------------------------------------

class Manifest:
    """JSON Lines, append-only; the last record of an (op, item) is its state.

    A line cut short by a kill is ignored on reading, and the next append starts on a fresh line.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.last: dict[tuple[str, str], dict] = {}
        self.damaged = 0
        if self.path.exists():
            with open(self.path, "rb") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                        self.last[(rec["op"], rec["item"])] = rec
                    except (ValueError, KeyError, TypeError):
                        self.damaged += 1
        self._file = None

    def append(self, record: dict) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")
            if self._file.tell() > 0:
                with open(self.path, "rb") as f:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        self._file.write(b"\n")
        self._file.write(json.dumps(record, sort_keys=True).encode() + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.last[(record["op"], record["item"])] = record

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


# -- tasks (run in workers: pure functions of bytes and settings) --------------------------------------

class ItemError(ValueError):
    """An item that cannot be done (e.g. a .lgi of another size than its original); the message names it and says why."""


def _failure(exc: BaseException) -> dict:
    """A task's exception as a result: the message alone for the errors a user can cause."""
    from lgi.decoding import DecodeError
    from lgi.errors import LgiError, cli_text
    from lgi_dictco import LgiFormatError
    from lgi_train.runs import ImageError

    if isinstance(exc, (LgiError, DecodeError)):
        return {"ok": False, "error": cli_text(exc)}
    if isinstance(exc, (ImageError, LgiFormatError, ItemError)):
        return {"ok": False, "error": str(exc)}
    return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def encode_task(name: str, inputs: dict[str, bytes], settings: dict) -> dict:
    """An image's bytes → .lgi bytes and the `lgi encode --json` report, or the failure's message."""
    try:
        from lgi.api import encode_details, rate_request
        from lgi.codec_cli import research_tuning
        from lgi_train.runs import decode_target

        target = decode_target(inputs["image"], name, settings.get("max_pixels"))
        s = settings
        encoded = encode_details(target, bpp=rate_request(s["bpp"], s["size"], s["quality"], s["gaussians"]),
                                 size=s["size"], gaussians=s["gaussians"], effort=s["effort"], device=s["device"],
                                 seed=s["seed"], backend=s["backend"], tuning=research_tuning(s["effort"], s["steps"]),
                                 max_pixels=target[0].numel())
        data, report = encoded.data, encoded.report()
    except Exception as exc:  # noqa: BLE001 - a bad item is recorded, never stops the batch
        return _failure(exc)
    return {"ok": True, "data": data, "report": report}


def decode_task(name: str, inputs: dict[str, bytes], settings: dict) -> dict:
    """.lgi bytes → PNG bytes, as `lgi decode` writes them."""
    try:
        from lgi.decoding import decode, to_png_bytes

        t0 = time.perf_counter()
        decoded = decode(inputs["lgi"], **{k: settings[k] for k in DECODE_FLAGS})
        png = to_png_bytes(decoded.image)
        _, h, w = decoded.image.shape
        report = {"width": w, "height": h, "gaussians": decoded.header.num_gaussians,
                  "seconds": round(time.perf_counter() - t0, 4)}
    except Exception as exc:  # noqa: BLE001
        return _failure(exc)
    return {"ok": True, "data": png, "report": report}


def eval_task(name: str, inputs: dict[str, bytes], settings: dict) -> dict:
    """(original image, .lgi) → one row per codec: LGI and each peer at LGI's size."""
    try:
        from lgi.decoding import decode
        from lgi.peers import decode_u8, peer_at_most, rgb_metrics
        from lgi_train.runs import decode_target, to_uint8

        t0 = time.perf_counter()
        ref = to_uint8(decode_target(inputs["image"], name))
        lgi = inputs["lgi"]
        decoded = decode(lgi, device=settings["device"], backend=settings["backend"])
        ours = to_uint8(decoded.image)
        h, w = ref.shape[:2]
        if ours.shape != ref.shape:
            raise ItemError(f"{name}: the .lgi holds {ours.shape[1]}x{ours.shape[0]}, the original is {w}x{h}")
        rows = []
        for codec, data, quality, image in [("lgi", lgi, None, ours)] + [
                (peer, *peer_at_most(ref, len(lgi), peer), None) for peer in settings["peers"]]:
            psnr, msssim = rgb_metrics(decode_u8(data) if image is None else image, ref)
            rows.append({"codec": codec, "quality": quality, "bytes": len(data), "bpp": len(data) * 8 / (w * h),
                         "psnr": psnr, "ms_ssim": None if msssim != msssim else msssim})
        report = {"width": w, "height": h, "rows": rows, "seconds": round(time.perf_counter() - t0, 3)}
    except Exception as exc:  # noqa: BLE001
        return _failure(exc)
    return {"ok": True, "data": None, "report": report}


TASKS: dict[str, Callable[[str, dict, dict], dict]] = {"encode": encode_task, "decode": decode_task,
                                                        "eval": eval_task}


# -- runners: (key, name, inputs) calls in, (key, result) out, as results arrive ----------------------

Call = tuple[int, str, dict]


def _init_worker(threads: int) -> None:
    """Give each worker its share of the cores, so that jobs × threads does not oversubscribe them."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _call(task, threads: int, name: str, inputs: dict, settings: dict) -> dict:
    """A task as a Ray worker runs it (the worker is reused, so set its threads every time)."""
    import torch

    torch.set_num_threads(threads)
    return task(name, inputs, settings)


def run_inline(calls: Iterator[Call], task, settings: dict, threads: int) -> Iterator[tuple[int, dict]]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for key, name, inputs in calls:
            yield key, task(name, inputs, settings)
    finally:
        torch.set_num_threads(before)


def run_pool(calls: Iterator[Call], task, settings: dict, jobs: int, threads: int) -> Iterator[tuple[int, dict]]:
    """A local process pool (spawned workers: no forked torch state), at most 2 × jobs items in flight.

    A worker that dies (killed, out of memory) breaks the pool: it is replaced and the items that were
    in flight are run again, each at most :data:`POOL_ATTEMPTS` times in all.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    def new_pool():
        return ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                                   initargs=(threads,))

    pool = new_pool()
    pending: dict = {}   # future → (call, attempt)
    calls = iter(calls)
    more = True
    clean = False
    try:
        while True:
            while more and len(pending) < 2 * jobs:
                call = next(calls, None)
                if call is None:
                    more = False
                else:
                    pending[pool.submit(task, call[1], call[2], settings)] = (call, 1)
            if not pending:
                break
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            lost = []
            for fut in done:
                call, attempt = pending.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    lost.append((call, attempt))
                    continue
                yield call[0], result
            if lost:
                lost += [pending.pop(fut) for fut in list(pending)]   # the whole pool went down with it
                pool.shutdown(wait=True)
                pool = new_pool()
                for call, attempt in lost:
                    if attempt >= POOL_ATTEMPTS:
                        yield call[0], {"ok": False, "error": f"the worker process died {attempt} times on this item "
                                                              "(killed, or out of memory)"}
                    else:
                        pending[pool.submit(task, call[1], call[2], settings)] = (call, attempt + 1)
        clean = True
    finally:
        if clean:
            pool.shutdown(wait=True)
        else:   # interrupted: do not wait minutes for encodes whose results nobody will record
            kill = getattr(pool, "kill_workers", None)  # Python 3.14+; before, the pool's own table
            procs = [] if kill else list((getattr(pool, "_processes", None) or {}).values())
            if kill:
                kill()
            for proc in procs:
                proc.kill()
            pool.shutdown(wait=False, cancel_futures=True)


def run_ray(calls: Iterator[Call], task, settings: dict, address: str, threads: int, gpus: float,
            local_cpus: int) -> Iterator[tuple[int, dict]]:
    """One Ray task per item (``num_cpus=threads``, ``num_gpus=gpus``); a task whose worker dies is
    retried by Ray elsewhere (up to 3 times). ``address``: "auto" (the running cluster), "local" (start
    one here with ``local_cpus``) or a cluster address. A Ray session already started by the caller is
    used as it is."""
    import ray

    started = not ray.is_initialized()
    if started:
        kw = {"num_cpus": local_cpus} if address == "local" else {"address": address}
        try:
            ray.init(include_dashboard=False, log_to_driver=False, **kw)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise BatchError(f"--ray {address}: cannot start or join a Ray cluster: {first}") from None
    try:
        remote = ray.remote(_call).options(num_cpus=threads, num_gpus=gpus, max_retries=3)
        window = max(2, 2 * int(ray.cluster_resources().get("CPU", 1) // max(1, threads)))
        settings_ref = ray.put(settings)
        pending: dict = {}
        calls = iter(calls)
        more = True
        while True:
            while more and len(pending) < window:
                call = next(calls, None)
                if call is None:
                    more = False
                else:
                    pending[remote.remote(task, threads, call[1], call[2], settings_ref)] = call
            if not pending:
                break
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            call = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:
                first = (str(exc).strip().splitlines() or [""])[0]
                result = {"ok": False, "error": f"Ray: {type(exc).__name__}: {first}"}
            yield call[0], result
    finally:
        if started:
            ray.shutdown()


# -- the driver -----------------------------------------------------------------------------------------

def run_batch(op: str, items: list[Item], manifest_path: Path, settings: dict, *, options: dict | None = None,
              jobs: int = 1, threads: int = 1, ray: str | None = None, gpus: float = 0, retry_failed: bool = False, force: bool = False,
              on_event: Callable[[str, Item, dict], None] | None = None) -> Outcome:
    """Do ``op`` ("encode", "decode", "eval") on every item not already done; record each in the manifest.

    Args:
        op: the task to run (:data:`TASKS`).
        items: the work, e.g. from :func:`collect` and :func:`mirror`.
        manifest_path: the JSON Lines manifest (created; earlier records are honoured).
        settings: what decides the output (flags, codec versions); recorded, and passed to every task.
        options: more task options that do not change a finished output (``max_pixels``).
        jobs: parallel workers (1: in this process; more: a local process pool).
        threads: torch threads per worker (or CPUs per Ray task).
        ray: None for local, else a Ray address ("auto", "local", "ray://host:10001", ...).
        gpus: GPUs per Ray task.
        retry_failed: run items whose last record is a failure under these settings again.
        force: replace read-only outputs.
        on_event: called with ("skip" | "done" | "failed", item, record) as the batch goes.

    Returns:
        An :class:`Outcome`; ``outcome.ok`` is False when any item is failed (now or earlier, unretried).
    """
    from lgi_dictco.fileio import atomic_write_bytes

    t0 = time.perf_counter()
    task = TASKS[op]
    sid = settings_id(settings)
    task_settings = {**settings, **(options or {})}
    manifest = Manifest(manifest_path)
    outcome = Outcome(total=len(items))
    records: dict[int, dict] = {}
    hashes: dict[int, str] = {}
    emit = on_event or (lambda kind, item, record: None)
    base = manifest_path.parent

    def input_hash(item: Item) -> str:
        parts = [f"{role}:{sha256_file(path)}" for role, path in sorted(item.sources.items())]
        return parts[0].split(":", 1)[1] if len(parts) == 1 else hashlib.sha256("|".join(parts).encode()).hexdigest()

    def calls() -> Iterator[Call]:
        for key, item in enumerate(items):
            try:
                sha = input_hash(item)
            except OSError as exc:
                finish(key, {"ok": False, "error": f"{item.name}: cannot read ({exc.strerror or exc})"}, sha="")
                continue
            hashes[key] = sha
            prev = manifest.last.get((op, item.name))
            if prev and prev.get("input_sha256") == sha and prev.get("settings_id") == sid:
                if prev["status"] == "ok" and (item.output is None or (
                        item.output.is_file() and sha256_file(item.output) == prev.get("output_sha256"))):
                    records[key] = prev
                    outcome.skipped += 1
                    emit("skip", item, prev)
                    continue
                if prev["status"] == "failed" and not retry_failed:
                    records[key] = prev
                    outcome.failed_before.append(prev)
                    emit("skip", item, prev)
                    continue
            try:
                inputs = {role: path.read_bytes() for role, path in item.sources.items()}
            except OSError as exc:
                finish(key, {"ok": False, "error": f"{item.name}: cannot read ({exc.strerror or exc})"}, sha=sha)
                continue
            yield key, item.name, inputs

    def finish(key: int, result: dict, sha: str | None = None) -> None:
        item = items[key]
        record = {"op": op, "item": item.name, "input_sha256": hashes.get(key, sha), "settings_id": sid,
                  "settings": settings, "host": socket.gethostname(),
                  "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        report = result.get("report") or {}
        if result.get("ok") and item.output is not None:
            try:
                atomic_write_bytes(item.output, result["data"], force=force)
            except OSError as exc:
                result = {"ok": False, "error": str(exc)}
        if result.get("ok"):
            data = result.get("data")
            record.update(status="ok", error=None, seconds=report.get("seconds"), report=report,
                          output=None if item.output is None else _relative(item.output, base),
                          output_sha256=None if data is None else hashlib.sha256(data).hexdigest(),
                          bytes=None if data is None else len(data), bpp=report.get("bpp"), psnr=report.get("psnr"))
        else:
            record.update(status="failed", error=result.get("error", "unknown error"))
        manifest.append(record)
        records[key] = record
        outcome.ran += 1
        if record["status"] == "failed":
            outcome.failed.append(record)
        emit("done" if record["status"] == "ok" else "failed", item, record)

    try:
        if ray is not None:
            results = run_ray(calls(), task, task_settings, ray, threads, gpus, max(1, jobs * threads))
        elif jobs > 1:
            results = run_pool(calls(), task, task_settings, jobs, threads)
        else:
            results = run_inline(calls(), task, task_settings, threads)
        for key, result in results:
            finish(key, result)
    finally:
        manifest.close()
    outcome.records = [records[k] for k in sorted(records)]
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _relative(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


def default_workers(device: str, jobs: int | None, threads: int | None) -> tuple[int, int]:
    """(jobs, threads per job): by default one job per core on CPU (one thread each), one job on a GPU."""
    from lgi_gsplat2d.native import usable_cpus

    cores = usable_cpus()
    if jobs is None:
        jobs = cores if device == "cpu" else 1
    if threads is None:
        threads = max(1, cores // jobs)
    return jobs, threads
