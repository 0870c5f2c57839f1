"""``lgi preprocess``: content maps, placement map and SLIC init for image files.

Only click is imported at module level (``lgi --help`` imports this module); the pipeline, numpy and
rich load inside the command.
"""

from __future__ import annotations

import click

_MODES = ("overwrite", "skip", "update", "prompt")
# The largest image `lgi preprocess` takes by default (--max-pixels): every map of it costs about 110
# bytes a pixel, so 2^26 pixels (67 MP) stay within 8 GB (benchmarks/bench_memory.py, results/memory.csv).
PREPROCESS_MAX_PIXELS = 1 << 26


def _parse_maps(value: str) -> tuple[str, ...]:
    from lgi_preprocess.maps import MAP_NAMES

    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names or names == ("all",):
        return MAP_NAMES
    unknown = [n for n in names if n not in MAP_NAMES]
    if unknown:
        raise click.BadParameter(f"unknown map(s) {', '.join(unknown)}; choose from all, {', '.join(MAP_NAMES)}",
                                 param_hint="--maps")
    return names


def _parse_weights(value: str | None) -> dict[str, float] | None:
    if value is None:
        return None
    weights: dict[str, float] = {}
    for item in value.split(","):
        name, sep, number = item.partition("=")
        try:
            if not sep:
                raise ValueError
            weights[name.strip()] = float(number)
        except ValueError:
            raise click.BadParameter(f"expected NAME=WEIGHT[,NAME=WEIGHT...], got {item!r}",
                                     param_hint="--weights") from None
    return weights


def _parse_background(value: str) -> tuple[float, float, float]:
    named = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}
    if value in named:
        return named[value]
    try:
        rgb = tuple(float(v) for v in value.split(","))
    except ValueError:
        rgb = ()
    if len(rgb) != 3 or not all(0.0 <= v <= 1.0 for v in rgb):
        raise click.BadParameter(f"expected white, black or R,G,B in [0, 1], got {value!r}", param_hint="--background")
    return rgb  # type: ignore[return-value]


def _root_flags(ctx: click.Context) -> tuple[int, bool]:
    obj = ctx.find_root().obj
    obj = obj if isinstance(obj, dict) else {}
    return int(obj.get("verbose", 0)), bool(obj.get("quiet", False))


@click.command("preprocess")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Output folder (created if missing): <stem>_<map>.npy and <stem>.json per image.")
@click.option("--maps", "maps", default="all", show_default=True, metavar="LIST",
              help="Comma-separated maps to write: entropy, gradient, texture, saliency, segments, distance, "
                   "skeleton, placement (or all).")
@click.option("--mode", type=click.Choice(_MODES), default="overwrite", show_default=True,
              help="Existing outputs: overwrite; skip them; update when the input or parameters changed; "
                   "prompt (ask; needs a terminal).")
@click.option("--n-segments", type=click.IntRange(min=1), default=500, show_default=True, help="SLIC segments.")
@click.option("--compactness", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="SLIC compactness.")
@click.option("--sigma", type=click.FloatRange(min=0), default=1.0, show_default=True, help="SLIC smoothing.")
@click.option("--entropy-tile-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--texture-tile-size", type=click.IntRange(min=2), default=32, show_default=True,
              help="Haralick tile side (tiles overlap by half).")
@click.option("--weights", default=None, metavar="NAME=W,...",
              help="Placement weights (unlisted maps get 0). Default: entropy=0.3,gradient=0.25,texture=0.2,"
                   "saliency=0.15,distance=0.1.")
@click.option("--background", default="white", show_default=True, metavar="COLOR",
              help="Under transparent pixels: white, black or R,G,B in [0, 1].")
@click.option("--max-pixels", type=click.IntRange(min=1), default=PREPROCESS_MAX_PIXELS, show_default=True,
              help="Refuse larger images, from their header (the default keeps every map within 8 GB).")
@click.option("--use-gpu", is_flag=True, help="Sobel gradient through torch on CUDA (needs torch).")
@click.option("--slic-init", is_flag=True, help="Also write <stem>_slic_init.json: one Gaussian per superpixel.")
@click.option("--montage", is_flag=True, help="Also write <stem>_montage.png: the image and every map.")
@click.option("--json", "as_json", is_flag=True,
              help="Print machine-readable results on stdout (progress and logs stay on stderr).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and results.")
@click.pass_context
def preprocess(ctx: click.Context, images: tuple[str, ...], output: str, maps: str, mode: str, n_segments: int,
               compactness: float, sigma: float, entropy_tile_size: int, texture_tile_size: int,
               weights: str | None, background: str, max_pixels: int, use_gpu: bool, slic_init: bool,
               montage: bool, as_json: bool, quiet: bool) -> None:
    """Content maps, placement map and SLIC init for IMAGE files.

    Writes <stem>_<map>.npy for every map and <stem>.json (input path, SHA-256, size, parameters,
    versions, timings, output names) into the output folder. A bad image is reported in one line and
    skipped; the others are still processed, and the exit status is 1 if any failed.
    """
    import json
    import sys
    import time
    import traceback
    from pathlib import Path

    from lgi_preprocess.errors import PreprocessError
    from lgi_preprocess.pipeline import ImagePreprocessor, PreprocessConfig

    verbose, root_quiet = _root_flags(ctx)
    quiet = quiet or root_quiet
    config_kwargs = dict(maps=_parse_maps(maps), entropy_tile_size=entropy_tile_size,
                         texture_tile_size=texture_tile_size, texture_step=max(1, texture_tile_size // 2),
                         n_segments=n_segments, compactness=compactness, sigma=sigma,
                         background=_parse_background(background), use_gpu=use_gpu, slic_init=slic_init,
                         montage=montage)
    parsed_weights = _parse_weights(weights)
    if parsed_weights is not None:
        config_kwargs["weights"] = parsed_weights
    try:
        config = PreprocessConfig(**config_kwargs)
    except PreprocessError as exc:
        raise click.UsageError(str(exc)) from None
    if mode == "prompt" and not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise click.BadParameter("prompt needs an interactive terminal to ask before overwriting; "
                                 "use overwrite, skip or update", param_hint="--mode")

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    pre = ImagePreprocessor(config, max_pixels=max_pixels)
    steps = config.steps()
    results: list[dict] = []
    seen_stems: dict[str, str] = {}
    show_bar = not (quiet or mode == "prompt")  # a live bar would overwrite the questions
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, disable=not (show_bar and console.is_terminal), transient=True)

    def report_failure(path: str, message: str) -> None:
        console.print(f"lgi preprocess: error: {message}", markup=False)
        results.append({"input": path, "status": "failed", "error": message})

    with progress:
        images_task = progress.add_task("images", total=len(images))
        maps_task = progress.add_task("maps", total=len(steps))
        for path in images:
            stem = Path(path).stem
            progress.reset(maps_task, total=len(steps), description=f"  {Path(path).name}")
            if stem in seen_stems:
                report_failure(path, f"{path}: same output stem {stem!r} as {seen_stems[stem]}; "
                                     "its files would overwrite each other (rename one, or use another -o)")
                progress.advance(images_task)
                continue
            seen_stems[stem] = path
            if Path(path).is_dir():
                report_failure(path, f"{path} is a folder; give image files (e.g. {Path(path) / '*.png'})")
                progress.advance(images_task)
                continue
            t0 = time.perf_counter()
            try:
                run = pre.run(path, output, mode=mode, progress=lambda _step: progress.advance(maps_task))
            except PreprocessError as exc:
                report_failure(path, str(exc))
            except Exception as exc:  # noqa: BLE001 - one image's failure must not stop the others
                if verbose:
                    console.print(traceback.format_exc(), markup=False)
                report_failure(path, f"{path}: internal error: {type(exc).__name__}: {exc}")
            else:
                entry = {"input": path, "status": run.status, "reason": run.reason, "outputs": run.outputs,
                         "seconds": round(time.perf_counter() - t0, 3)}
                if run.metadata is not None:
                    entry["timings_s"] = run.metadata.get("timings_s", {})
                results.append(entry)
                if not quiet:  # a log line on stderr, also under --json
                    verb = "wrote" if run.status == "written" else "skipped"
                    console.print(f"{verb} {Path(path).name} ({run.reason}) -> {output}  "
                                  f"[{entry['seconds']:.2f} s]", markup=False)
            progress.advance(images_task)

    counts = {s: sum(r["status"] == s for r in results) for s in ("written", "skipped", "failed")}
    failed = [r["input"] for r in results if r["status"] == "failed"]
    if as_json:
        click.echo(json.dumps({"output": output, "results": results, **counts}, indent=2))
    # One image that failed has said so in its error line; a summary would only repeat it.
    if (failed or not quiet) and not (len(images) == 1 and failed):
        summary = f"{len(images)} image(s): {counts['written']} written, {counts['skipped']} skipped, " \
                  f"{counts['failed']} failed"
        console.print(summary + (f": {', '.join(failed)}" if failed else ""), markup=False)
    if failed:
        ctx.exit(1)
