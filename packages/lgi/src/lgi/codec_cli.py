"""`lgi encode`, `lgi decode`, `lgi info`: the codec's commands. Only click and lgi.api (which imports nothing
heavy) are imported here."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from lgi.api import ENCODE_MAX_PIXELS, ENCODE_STAGES, QUALITIES
from lgi_dictco.clitools import FORCE, check_device, check_input_file, check_suffix, preflight
from lgi_dictco.fileio import atomic_write_bytes as atomic_write

# The v2 baseline's stages and their shares of its time (v3's: lgi.api.ENCODE_STAGES).
ENCODE_STAGES_V2 = (("fit", 55.0), ("rate-search", 6.0), ("quantize", 1.0), ("finetune", 34.0),
                    ("entropy-code", 4.0), ("done", 0.0))
ENCODERS = ("v3", "v2")


def _progress(label: str, quiet: bool, encoder: str = "v3"):
    """One overall progress display for an encode, on stderr (also under --json): a bar with the
    stage and an ETA on a terminal, a line per stage and every 10 s elsewhere; nothing with -q."""
    from lgi_dictco.progress import StageProgress

    progress = StageProgress(label, ENCODE_STAGES if encoder == "v3" else ENCODE_STAGES_V2, quiet=quiet)
    return progress, progress.update


def _check_request(bpp, size, quality, gaussians, lam):
    """The size flags (:func:`lgi.api.rate_request`) and ``--lambda`` checked as both encoders take them;
    returns the bits per pixel asked for (a ``--quality`` preset's, or None)."""
    from lgi.api import rate_request
    from lgi.errors import OptionError

    if lam is not None and not lam >= 0:
        raise click.BadParameter(f"--lambda must be >= 0 dB per bpp, got {lam}", param_hint="'--lambda'")
    try:
        return rate_request(bpp, size, quality, gaussians)
    except OptionError as exc:
        raise api_failure(exc) from None


def research_tuning(effort="default", steps=None, lam=None):
    """The effort's tuning changed by the hidden research flags (None: unchanged). ``steps`` rescales the
    effort's fit plan to that many steps at every rate; ``lam`` sets the fine-tuning's rate price at
    0.5 bpp (scaled as 1/bpp with the target)."""
    if steps is None and lam is None:
        return None
    from lgi_train.encode import TUNINGS
    from lgi_train.encode.fitting import scaled_plan

    tuning = TUNINGS[effort]
    if steps is not None:
        tuning = tuning.replace(fit=scaled_plan(tuning.fit, steps / tuning.fit_steps()), steps_at_1bpp=1.0)
    if lam is not None:
        tuning = tuning.replace(rate_db=lam)
    return tuning


def api_failure(exc) -> click.ClickException:
    """An error of LGI's API as the command line's one-line error (its flags named as flags)."""
    from lgi.errors import OptionError, cli_text

    if isinstance(exc, OptionError) and exc.option:
        return click.BadParameter(cli_text(exc), param_hint=f"'--{exc.option.replace('_', '-')}'")
    return click.ClickException(cli_text(exc))


def encode_options(image_hw, bpp, size, quality, gaussians, steps, device, seed, backend, effort="default",
                   lam=None, tile=None, tile_above=None):
    """Turn the flags into the v2 baseline encoder's EncodeOptions (raises click errors for impossible
    combinations)."""
    from lgi_train.compress.encoder import EncodeOptions, RateError, target_bytes_for, with_effort

    bpp = _check_request(bpp, size, quality, gaussians, lam)
    if bpp is None and size is None and gaussians is None:
        bpp = 0.5  # --quality medium
    try:
        target = target_bytes_for(bpp, size, *image_hw)
    except RateError as exc:
        raise click.BadParameter(str(exc)) from None
    opts = with_effort(EncodeOptions(num_gaussians=gaussians, target_bytes=target), effort)
    opts.fit = opts.fit.replace(device=device, seed=seed, backend=backend)
    if steps is not None:
        opts.fit_steps = steps
        opts.fit_steps_at_1bpp = 1.0  # the steps asked for, at any rate
    if lam is not None:
        opts.rate_db = lam
    _check_tiles(tile, tile_above)
    if tile is not None:
        opts.tile = tile
    if tile_above is not None:
        opts.tile_above = tile_above
    return opts


def _check_tiles(tile, tile_above) -> None:
    if tile is not None and tile < 16:
        raise click.BadParameter(f"--tile must be >= 16 pixels, got {tile}", param_hint="'--tile'")
    if tile_above is not None and tile_above < 0:
        raise click.BadParameter(f"--tile-above must be >= 0 pixels, got {tile_above}", param_hint="'--tile-above'")


def encode_target(target, *, bpp=None, size=None, quality=None, gaussians=None, steps=None, device="cpu", seed=0,
                  backend="auto", effort="default", lam=None, tile=None, tile_above=None,
                  on_stage=None, encoder="v3") -> tuple[bytes, dict]:
    """Encode a loaded image as `lgi encode` does (shared with `lgi batch encode`): v3 through
    :func:`lgi.api.encode_details`, with the command's research flags and its errors.

    Args:
        target: [3, H, W] float32 in [0, 1] (``lgi_train.runs.load_target``); gray (three equal
            channels) is coded as one channel.
        bpp, size, quality, gaussians, steps, device, seed, backend, effort, lam: the command's flags
            (``lam``: ``--lambda``); tile, tile_above: ``--tile``, ``--tile-above`` (None: the encoder's).
        on_stage: progress callback ``(stage, fraction)``.
        encoder: "v3" (lgi_train.encode) or "v2", the baseline kept for comparison
            (lgi_train.compress.encoder); tile and tile_above apply to v2 only.

    Returns:
        (the .lgi bytes, the report that ``lgi encode --json`` prints, less the file names).

    Raises:
        click.ClickException: impossible flags or a target the encoder cannot reach.
    """
    if encoder == "v3":
        from lgi.api import encode_details
        from lgi.errors import LgiError

        bpp = _check_request(bpp, size, quality, gaussians, lam)
        _check_tiles(tile, tile_above)
        if tile is not None or tile_above is not None:
            raise click.UsageError("--tile and --tile-above apply to --encoder v2 only (the encoder fits large "
                                   "images whole, rendering them in bands of rows)")
        try:
            encoded = encode_details(target, bpp=bpp, size=size, gaussians=gaussians, effort=effort, device=device,
                                     seed=seed, max_pixels=target.shape[1] * target.shape[2], progress=on_stage,
                                     tuning=research_tuning(effort, steps, lam), backend=backend)
        except LgiError as exc:
            raise api_failure(exc) from None
        return encoded.data, encoded.report()

    from lgi_train.compress.encoder import RateError, encode_image
    from lgi_train.fit import is_grayscale
    from lgi_train.metrics import psnr, quantize_8bit

    if target.shape[0] == 3 and is_grayscale(target):
        target = target[:1].contiguous()  # gray coded as one channel, as lgi.api.encode_details does
    opts = encode_options(target.shape[1:], bpp, size, quality, gaussians, steps, device, seed, backend, effort,
                          lam, tile, tile_above)
    try:
        result = encode_image(target.to(device), opts, on_stage)
    except RateError as exc:
        raise click.ClickException(str(exc)) from None
    h, w = target.shape[1:]
    report = {
        "width": w, "height": h, "bytes": len(result.data),
        "bpp": len(result.data) * 8 / (w * h), "target_bytes": opts.target_bytes,
        "psnr": psnr(quantize_8bit(result.image.cpu()), target), "gaussians": result.num_gaussians,
        "seconds": round(result.seconds, 3), "stage_seconds": {k: round(v, 3) for k, v in result.stage_seconds.items()},
    }
    return result.data, report


@click.command()
@click.argument("image", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Output .lgi file.")
@click.option("--bpp", type=float, help="Target bits per pixel (the file lands at or under it).")
@click.option("--size", type=int, help="Target file size in bytes (at or under).")
@click.option("--quality", type=click.Choice(list(QUALITIES)), help="Preset: low 0.25, medium 0.5, high 1.0, max 1.5 bpp.")
@click.option("--gaussians", type=int, help="Fixed number of Gaussians (no rate control).")
@click.option("--effort", type=click.Choice(["fast", "default", "max"]), default="default", show_default=True,
              help="Encoding effort: a Kodak image on 2 cores takes about 6 s fast, 14 s default, 1-2 min max "
                   "(docs/encoder.md).")
# Research flags, not shown in --help (docs/encoder.md lists them).
@click.option("--steps", type=int, hidden=True, help="Fit steps: the effort's plan rescaled to this many, at any rate.")
@click.option("--lambda", "lam", type=float, metavar="DB", hidden=True,
              help="The fine-tuning's rate price in dB per bit per pixel at 0.5 bpp (0: off).")
@click.option("--encoder", type=click.Choice(ENCODERS), default="v3", show_default=True,
              help="v2: the encoder before this one, about 4x slower and 0.4 dB better at equal size on Kodak.")
@click.option("--tile", type=int, metavar="PIXELS", hidden=True, help="v2: side of the tiles of a large image's fit.")
@click.option("--tile-above", type=int, metavar="PIXELS", hidden=True, help="v2: fit in tiles above this many pixels.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=ENCODE_MAX_PIXELS, show_default=True,
              help="Refuse larger images, from their header (the default keeps the encoder within 8 GB).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--backend", type=click.Choice(["auto", "cpu", "cuda", "torch"]), default="auto", hidden=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress (it goes to stderr, also with --json).")
@FORCE
def encode(image, output, bpp, size, quality, gaussians, effort, steps, lam, encoder, tile, tile_above, max_pixels,
           device, seed, backend, as_json, quiet, force):
    """Encode IMAGE into a .lgi file of fitted, quantized, entropy-coded Gaussians."""
    check_input_file(image, "image")
    check_suffix(output, (".lgi",), "a .lgi file")
    check_device(device)
    if steps is not None and steps < 1:
        raise click.BadParameter(f"--steps must be >= 1, got {steps}", param_hint="'--steps'")
    preflight(output, force)

    from lgi_train.runs import ImageError, load_target

    try:
        target = load_target(image, max_pixels)
    except ImageError as exc:
        raise click.ClickException(str(exc)) from None
    progress, on_stage = _progress("lgi encode", quiet, encoder)
    with progress:
        data, report = encode_target(target, bpp=bpp, size=size, quality=quality, gaussians=gaussians, steps=steps,
                                     device=device, seed=seed, backend=backend, effort=effort, lam=lam,
                                     tile=tile, tile_above=tile_above, on_stage=on_stage, encoder=encoder)
    atomic_write(output, data, force=force)
    report = {"input": str(image), "output": str(output), **report}
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(f"{output}: {report['bytes']} bytes, {report['bpp']:.4f} bpp, PSNR {report['psnr']:.2f} dB, "
                   f"{report['gaussians']} Gaussians, {report['seconds']:.1f} s")


# The budget's defaults are lgi_dictco.gauss's (not imported here: `lgi --help` loads click only);
# test_decode_budgets.py checks that these texts name them.
_MAX_PIXELS_HELP = ("Refuse outputs of more pixels than this (default 268435456 = 2^28). Large outputs render in "
                    "bands of rows, so memory stays bounded.")
_MAX_GAUSSIANS_HELP = ("Refuse files of more Gaussians than this, from the header (default: 0.125 per pixel of "
                       "the larger of the stored and the output size, at least 65536).")
_MAX_WORK_HELP = ("Refuse files whose drawing needs more work than this: Gaussian-tile intersections, an upper "
                  "bound computed before rendering, times 4 for top-K files (default: 1536 per 16x16 output "
                  "tile + 16 per Gaussian).")


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Output PNG.")
@click.option("--scale", type=float, help="Output size relative to the stored size (e.g. 2.0, 0.5).")
@click.option("--width", type=int, help="Output width in pixels; the height keeps the aspect ratio.")
@click.option("--max-pixels", type=click.IntRange(min=1), help=_MAX_PIXELS_HELP)
@click.option("--max-gaussians", type=click.IntRange(min=1), help=_MAX_GAUSSIANS_HELP)
@click.option("--max-work", type=click.IntRange(min=1), help=_MAX_WORK_HELP)
@click.option("--device", default="cpu", show_default=True)
@click.option("--backend", type=click.Choice(["auto", "native", "cpu", "cuda", "torch"]), default="auto",
              show_default=True, help="Renderer: auto = the torch-free native library on the CPU where it loads, "
              "else torch's kernels (cpu / cuda); torch = the pure-PyTorch reference.")
@click.option("--json", "as_json", is_flag=True)
@click.option("-q", "--quiet", is_flag=True, help="Only errors and the result (this command shows no progress).")
@FORCE
def decode(source, output, scale, width, max_pixels, max_gaussians, max_work, device, backend, as_json, quiet, force):
    """Decode a .lgi file to a PNG, at any resolution."""
    from lgi.decoding import MAX_OUTPUT_PIXELS, DecodeError, prepare, write_png
    from lgi.errors import cli_text
    from lgi_dictco import LgiFormatError
    from lgi_dictco.fileio import OutputError, atomic_open

    data = _read(source)
    check_suffix(output, (".png",), "a PNG image")
    check_device(device)
    preflight(output, force)
    t0 = time.perf_counter()
    try:
        # Priced and refused here, before torch loads and before the output is opened.
        plan = prepare(data, scale, width, max_pixels=max_pixels or MAX_OUTPUT_PIXELS, max_gaussians=max_gaussians,
                       max_work=max_work)
        t_parsed = time.perf_counter()
        drawn_by, startup = _load_renderer(device, backend)  # timed apart: start-up, not the decode
        t1 = time.perf_counter()
        with atomic_open(output, force=force) as f:
            write_png(plan, f, device=device, backend=backend)
    except (LgiFormatError, DecodeError) as exc:
        raise click.ClickException(f"{source}: {cli_text(exc)}") from None
    except OutputError as exc:
        raise click.ClickException(str(exc)) from None
    decode_s = (t_parsed - t0) + (time.perf_counter() - t1)  # parse, dequantize, render, write the PNG
    out_w, out_h = plan.width, plan.height
    if as_json:
        click.echo(json.dumps({"input": str(source), "output": str(output), "width": out_w, "height": out_h,
                               "seconds": round(decode_s + startup, 4), "decode_seconds": round(decode_s, 4),
                               "startup_seconds": round(startup, 4), "renderer": drawn_by, "work": plan.work,
                               "work_limit": plan.limits[1], "gaussian_limit": plan.limits[0],
                               "bands": len(plan.bands),
                               "memory_estimate_bytes": plan.memory_bytes()}))
    else:
        bands = f", {len(plan.bands)} bands" if len(plan.bands) > 1 else ""
        click.echo(f"{output}: {out_w}x{out_h} from {plan.header.num_gaussians} Gaussians in {decode_s * 1000:.0f} ms"
                   f"{bands} (+{startup:.1f} s start-up: loading "
                   + ("the native renderer)" if drawn_by == "native" else "torch and its kernels)"))


def _load_renderer(device: str, backend: str) -> tuple[str, float]:
    """Load the renderer a decode will use (what the first render would do): the torch-free native
    library on the CPU where it loads, else torch and its kernels. Returns (its name, the seconds it took)."""
    from lgi.decoding import renderer

    t0 = time.perf_counter()
    name = renderer(device, backend)  # DecodeError where --backend native cannot load
    if name == "torch":
        import lgi_gsplat2d

        try:
            lgi_gsplat2d.load_kernels(backend, device)
        except (ValueError, lgi_gsplat2d.BackendUnavailable):
            pass  # the render raises it, with its own message
    return name, time.perf_counter() - t0


def _read(path: Path) -> bytes:
    check_input_file(path, ".lgi")
    return path.read_bytes()


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@click.option("-q", "--quiet", is_flag=True, help="Only errors and the report (this command shows no progress).")
def info(source, as_json, quiet):
    """Header, counts and per-stream sizes of a .lgi file."""
    from lgi.decoding import info_report
    from lgi.errors import cli_text
    from lgi_dictco import LgiFormatError

    data = _read(source)
    try:
        report = {"file": str(source), **info_report(data)}
    except LgiFormatError as exc:
        raise click.ClickException(f"{source}: {exc}") from None
    r = report
    groups, counts = r["groups"], r["classes"]["counts"]
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{source}: LGI {r['width']}x{r['height']}, {r['channels']} channel(s) {r['color_space']}, "
               f"{r['gaussians']} Gaussians, {r['render_mode']}" + (f" K={r['topk']}" if r["render_mode"] != "sum" else ""))
    click.echo(f"  {len(data)} bytes, {report['bpp']:.4f} bpp, {report['bits_per_gaussian']:.1f} bits per Gaussian")
    click.echo(f"  positions: {r['position_bits'][0]}x{r['position_bits'][1]}-bit grid (finest class)")
    if counts is not None and len(counts) > 1:
        click.echo(f"  precision classes: {len(counts)}, Gaussians per class {counts}, position bits dropped "
                   f"{r['classes']['position_drop']}")
    for name, g in (groups or {}).items():
        kind = f"codebook of {g['codebook']}" if g["codebook"] else "no codebook"
        steps = ", ".join(f"{s:.4g}" for s in g["step"])
        exps = f", class step exponents {g['class_exp']} (x2^(e/2))" if len(counts) > 1 else ""
        click.echo(f"  {name}: {kind}, {g['own_values']} own values, steps ({steps}){exps}")
    click.echo("  chunks: " + ", ".join(f"{k.strip()} {v} B" for k, v in report["chunks"].items()))
    d = r["decode"]
    if d["error"]:
        click.echo(f"  decode: refused ({cli_text(d['error'])})")
    else:
        click.echo(f"  decode at stored size: {d['work']} units of work of the default limit {d['work_limit']} "
                   f"({d['intersections']} Gaussian-tile intersections), {d['bands']} band(s), about "
                   f"{d['memory_bytes'] / 2**20:.0f} MiB")
