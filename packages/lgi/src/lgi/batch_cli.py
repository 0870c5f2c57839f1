"""`lgi batch encode | decode | eval`: whole folders, resumable, on a local process pool or Ray.

Only click is imported here; the library is :mod:`lgi.batch` (docs/batch.md).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from lgi.api import ENCODE_MAX_PIXELS, QUALITIES
from lgi_dictco.clitools import check_device

MANIFEST_HELP = "a manifest (lgi-batch.jsonl) in the output folder records every item"


def _common(f):
    """The options every batch command shares (the same meaning as in `lgi encode`)."""
    for opt in reversed([
        click.option("--glob", "pattern", default="*", show_default=True,
                     help="Only files whose name matches this pattern (e.g. '*.png'), in every subfolder."),
        click.option("-j", "--jobs", type=int, help="Parallel workers (default: one per core on CPU, 1 on a GPU)."),
        click.option("--threads", type=int, help="Torch threads per worker (default: cores / jobs); with --ray, "
                                                 "CPUs per task (default 1)."),
        click.option("--ray", "ray_address", metavar="auto|local|ADDRESS",
                     help="Run the items as Ray tasks: auto (the running cluster), local (start one here) or a "
                          "cluster address. Needs `pip install 'lgi[ray]'`."),
        click.option("--retry-failed", is_flag=True, help="Run items that failed last time (with these settings) again."),
        click.option("--force", is_flag=True, help="Replace outputs even if they are read-only."),
        click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON."),
        click.option("-q", "--quiet", is_flag=True, help="No progress output."),
    ]):
        f = opt(f)
    return f


class _Progress:
    """A rich bar (ETA, throughput) on a terminal; one line per item otherwise; nothing with -q."""

    def __init__(self, total: int, verb: str, quiet: bool):
        self.total, self.verb, self.quiet = total, verb, quiet
        self.seen = self.ran = 0
        self.t0 = time.perf_counter()
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn(f"[bold]{verb}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[speed]}"), TimeElapsedColumn(),
                                TextColumn("ETA {task.fields[eta]}"), console=Console(stderr=True))
            self.task = self.bar.add_task(verb, total=total, speed="", eta="?")

    def __enter__(self):
        if self.bar is not None:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, kind: str, item, record: dict) -> None:
        self.seen += 1
        if kind != "skip":
            self.ran += 1
        elapsed = time.perf_counter() - self.t0
        rate = self.ran / elapsed if self.ran else 0.0
        eta = (self.total - self.seen) / rate if rate else None
        speed = f"{rate * 60:.1f} items/min" if rate else ""
        eta_text = "?" if eta is None else time.strftime("%H:%M:%S", time.gmtime(eta))
        if self.bar is not None:
            self.bar.update(self.task, completed=self.seen, speed=speed, eta=eta_text)
            if kind == "failed":
                from rich.markup import escape

                self.bar.console.print(f"[red]failed[/red] {escape(_message(record))}", highlight=False)
        elif not self.quiet and kind != "skip":   # a rerun of 10 000 done items prints only its summary
            what = f"FAILED {_message(record)}" if kind == "failed" else f"{item.name}: {record.get('seconds') or 0:.1f} s"
            click.echo(f"[{self.seen}/{self.total}] {what}  ({speed}, ETA {eta_text})", err=True)


def _workers(device: str, jobs, threads, ray_address):
    import importlib.util

    from lgi.batch import default_workers

    for name, value in (("--jobs", jobs), ("--threads", threads)):
        if value is not None and value < 1:
            raise click.BadParameter(f"{name} must be >= 1, got {value}", param_hint=f"'{name}'")
    if ray_address is not None:
        if importlib.util.find_spec("ray") is None:
            raise click.ClickException("--ray needs Ray, which is not installed here: pip install 'lgi[ray]'")
        return default_workers(device, jobs, threads or 1)
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise click.ClickException(f"--device {device}: no CUDA GPU is available on this machine")
    return default_workers(device, jobs, threads)


def _run(op: str, items, out: Path, settings: dict, *, options=None, device: str, jobs, threads, ray_address,
         retry_failed, force, quiet, as_json, verb: str):
    from lgi.batch import MANIFEST, BatchError, run_batch
    from lgi_dictco.clitools import preflight

    preflight(out / MANIFEST)
    jobs, threads = _workers(device, jobs, threads, ray_address)
    gpus = 1 if device.startswith("cuda") else 0
    with _Progress(len(items), verb, quiet or as_json) as progress:
        try:
            outcome = run_batch(op, items, out / MANIFEST, settings, options=options, jobs=jobs, threads=threads,
                                ray=ray_address, gpus=gpus, retry_failed=retry_failed, force=force,
                                on_event=progress)
        except BatchError as exc:
            raise click.ClickException(str(exc)) from None
    return outcome, jobs, threads


def _finish(ctx, op: str, src: Path, out: Path, outcome, jobs: int, threads: int, as_json: bool, extra=None) -> None:
    from lgi.batch import MANIFEST

    failed = outcome.failed + outcome.failed_before
    if as_json:
        items = [{k: r.get(k) for k in ("item", "status", "output", "bytes", "bpp", "psnr", "seconds", "error")}
                 for r in outcome.records]
        click.echo(json.dumps({"op": op, "input": str(src), "output": str(out), "manifest": str(out / MANIFEST),
                               "jobs": jobs, "threads": threads, "total": outcome.total, "ran": outcome.ran,
                               "skipped": outcome.skipped, "failed": len(failed),
                               "seconds": round(outcome.seconds, 3), "items": items, **(extra or {})}, indent=2))
    else:
        done = outcome.ran - len(outcome.failed)
        skipped_ok = outcome.skipped
        click.echo(f"{out}: {outcome.total} items: {done} {op}d now, {skipped_ok} already done, {len(failed)} failed "
                   f"({outcome.seconds:.1f} s, {jobs} job(s) x {threads} thread(s))")
        for rec in failed:
            click.echo(f"failed: {_message(rec)}", err=True)
        if outcome.failed_before:
            click.echo(f"{len(outcome.failed_before)} of them failed in an earlier run; --retry-failed runs them "
                       "again", err=True)
    if failed:
        ctx.exit(1)


@click.group()
def batch():
    """Encode, decode or evaluate whole folders; resumable; local process pool or Ray."""


@batch.command()
@click.argument("source", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help=f"Output folder: each image's .lgi at its relative path; {MANIFEST_HELP}.")
@click.option("--bpp", type=float, help="Target bits per pixel (each file lands at or under it).")
@click.option("--size", type=int, help="Target file size in bytes, for every image.")
@click.option("--quality", type=click.Choice(list(QUALITIES)), help="Preset: low 0.25, medium 0.5, high 1.0, max 1.5 bpp.")
@click.option("--gaussians", type=int, help="Fixed number of Gaussians (no rate control).")
@click.option("--effort", type=click.Choice(["fast", "default", "max"]), default="default", show_default=True,
              help="Encoding effort, as in `lgi encode`.")
@click.option("--steps", type=int, help="Fitting steps (overrides the effort's).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--backend", type=click.Choice(["auto", "cpu", "cuda", "torch"]), default="auto", show_default=True)
@click.option("--max-pixels", type=int, default=ENCODE_MAX_PIXELS, show_default=True,
              help="Refuse (record as failed) images with more pixels than this (the limit of `lgi encode`).")
@_common
@click.pass_context
def encode(ctx, source, output, bpp, size, quality, gaussians, effort, steps, device, seed, backend, max_pixels,
           pattern, jobs, threads, ray_address, retry_failed, force, as_json, quiet):
    """Encode every image under SOURCE into a .lgi under --output (same relative paths)."""
    from lgi.batch import IMAGE_SUFFIXES, BatchError, codec_versions, collect, mirror
    from lgi.codec_cli import _check_request

    check_device(device)
    if steps is not None and steps < 1:
        raise click.BadParameter(f"--steps must be >= 1, got {steps}", param_hint="'--steps'")
    if max_pixels < 1:
        raise click.BadParameter(f"--max-pixels must be >= 1, got {max_pixels}", param_hint="'--max-pixels'")
    # The flags are checked once here; targets an image is too small for fail per item.
    _check_request(bpp, size, quality, gaussians, None)
    try:
        items = mirror(source, collect(source, IMAGE_SUFFIXES, pattern, _inner(output, source)), output, ".lgi", "image")
    except BatchError as exc:
        raise click.ClickException(str(exc)) from None
    settings = {"op": "encode", "bpp": bpp, "size": size, "quality": quality, "gaussians": gaussians,
                "effort": effort, "steps": steps, "device": device, "seed": seed, "backend": backend,
                "versions": codec_versions()}
    outcome, jobs, threads = _run("encode", items, output, settings, options={"max_pixels": max_pixels},
                                  device=device, jobs=jobs, threads=threads, ray_address=ray_address,
                                  retry_failed=retry_failed, force=force, quiet=quiet, as_json=as_json, verb="encode")
    _finish(ctx, "encode", source, output, outcome, jobs, threads, as_json)


@batch.command()
@click.argument("source", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help=f"Output folder: each .lgi's PNG at its relative path; {MANIFEST_HELP}.")
@click.option("--scale", type=float, help="Output size relative to the stored size.")
@click.option("--width", type=int, help="Output width in pixels (the aspect ratio is kept).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--backend", type=click.Choice(["auto", "cpu", "cuda", "torch"]), default="auto", show_default=True)
@_common
@click.pass_context
def decode(ctx, source, output, scale, width, device, backend, pattern, jobs, threads, ray_address, retry_failed,
           force, as_json, quiet):
    """Decode every .lgi under SOURCE to a PNG under --output (same relative paths)."""
    from lgi.batch import BatchError, codec_versions, collect, mirror
    from lgi.decoding import DecodeError, output_size

    check_device(device)
    try:
        output_size(64, 64, scale, width)
    except DecodeError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        items = mirror(source, collect(source, (".lgi",), pattern, _inner(output, source)), output, ".png", "lgi")
    except BatchError as exc:
        raise click.ClickException(str(exc)) from None
    settings = {"op": "decode", "scale": scale, "width": width, "device": device, "backend": backend,
                "versions": codec_versions()}
    outcome, jobs, threads = _run("decode", items, output, settings, device=device, jobs=jobs, threads=threads,
                                  ray_address=ray_address, retry_failed=retry_failed, force=force, quiet=quiet,
                                  as_json=as_json, verb="decode")
    _finish(ctx, "decode", source, output, outcome, jobs, threads, as_json)


@batch.command(name="eval")
@click.argument("originals", type=click.Path(file_okay=False, path_type=Path))
@click.argument("encoded", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              help="Report folder: eval.csv, eval_summary.md, eval.png and the manifest (default: ENCODED).")
@click.option("--peers", default="jpeg,webp,avif", show_default=True,
              help="Classical codecs to compare at each image's LGI size (Pillow).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--backend", type=click.Choice(["auto", "cpu", "cuda", "torch"]), default="auto", show_default=True)
@_common
@click.pass_context
def evaluate(ctx, originals, encoded, output, peers, device, backend, pattern, jobs, threads, ray_address,
             retry_failed, force, as_json, quiet):
    """Compare each image under ORIGINALS with its .lgi under ENCODED, and with peers at the same size.

    Per image: bpp, PSNR and MS-SSIM (8-bit RGB) of LGI and of JPEG / WebP / AVIF at their highest
    quality no larger than the .lgi; a summary table and an RD plot of the collection.
    """
    from lgi.batch import IMAGE_SUFFIXES, BatchError, Item, codec_versions, collect
    from lgi.batch_report import eval_rows, summarize, table, write_report
    from lgi.peers import PEERS

    check_device(device)
    chosen = [p.strip() for p in peers.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PEERS]
    if unknown:
        raise click.BadParameter(f"unknown peer {', '.join(unknown)}; choose from {', '.join(PEERS)}",
                                 param_hint="'--peers'")
    output = output or encoded
    if not encoded.is_dir():
        raise click.ClickException(f"folder not found: {encoded}")
    try:
        images = collect(originals, IMAGE_SUFFIXES, pattern, _inner(encoded, originals))
    except BatchError as exc:
        raise click.ClickException(str(exc)) from None
    items, missing = [], []
    for path in images:
        rel = path.relative_to(originals)
        lgi = encoded / rel.with_suffix(".lgi")
        if lgi.is_file():
            items.append(Item(rel.as_posix(), {"image": path, "lgi": lgi}, None))
        else:
            missing.append(rel.as_posix())
    if missing:
        click.echo(f"{len(missing)} image(s) under {originals} have no .lgi under {encoded} and are not evaluated"
                   + (f" (e.g. {missing[0]})" if missing else ""), err=True)
    if not items:
        raise click.ClickException(f"no image under {originals} has a .lgi at the same relative path under {encoded}")
    settings = {"op": "eval", "peers": chosen, "device": device, "backend": backend, "versions": codec_versions()}
    outcome, jobs, threads = _run("eval", items, output, settings, device=device, jobs=jobs, threads=threads,
                                  ray_address=ray_address, retry_failed=retry_failed, force=force, quiet=quiet,
                                  as_json=as_json, verb="eval")
    rows = eval_rows(outcome.records)
    extra = {"missing": missing}
    if rows:
        paths = write_report(rows, output, f"{originals} vs {encoded}: {len(rows) // (1 + len(chosen))} images")
        summary = summarize(rows)
        extra.update(summary=summary, files={k: str(v) for k, v in paths.items()})
        if not as_json:
            click.echo("\n".join(table(summary)))
            click.echo(f"per image: {paths['csv']}; plot: {paths['plot']}")
    _finish(ctx, "evaluate", originals, output, outcome, jobs, threads, as_json, extra)


def _message(record: dict) -> str:
    """"item: error", without naming the item twice (image errors already name their file)."""
    error = record["error"]
    return error if error.startswith(record["item"] + ":") else f"{record['item']}: {error}"


def _inner(out: Path, src: Path) -> Path | None:
    """``out`` when it is a folder inside ``src`` (its files are not inputs), else None."""
    try:
        o, s = out.resolve(), src.resolve()
    except OSError:
        return None
    return out if o != s and s in o.parents else None
