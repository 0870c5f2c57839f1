"""The `lgi app` web page (Gradio Blocks): encode an uploaded image, compare it with JPEG, WebP and AVIF at
the same size, zoom (LGI re-rendered at the zoomed resolution), the Gaussian overlay, the Kodak RD
chart, download the .lgi; decode an uploaded .lgi and show its `lgi info` fields.

The computing is in :mod:`lgi.compare` (no Gradio there); this module only lays out the page. Needs the
``app`` extra: ``pip install 'lgi[app]'``.
"""

from __future__ import annotations

import html
import shutil
import tempfile
from pathlib import Path

import gradio as gr

from lgi.compare import (
    DEFAULT_MAX_PIXELS,
    SAMPLE,
    AppInputError,
    compare,
    lgi_view,
    load_image,
    raster_view,
    rd_figure,
    results_rows,
    view_size,
    window,
)

TITLE = "LGI: a Gaussian image codec"
VIEWS = ("Original", "LGI", "JPEG", "WebP", "AVIF")
# the stages the encoder reports (lgi_train.encode.STAGES), then the peers; "done" ends the encode
STAGES = ("initialise", "fit", "select", "quantize", "finetune", "entropy-code", "done", "peers")
TARGETS = ("bits per pixel", "quality preset")
ZOOMS = (1, 2, 4, 8)


def _user_error(message: str) -> gr.Error:
    """A message for the page; the server's console gets no traceback for a user's mistake."""
    return gr.Error(message, print_exception=False)


def results_html(c) -> str:
    """The results table (id ``lgi-results``; one row per codec, ``data-codec`` naming it)."""
    head = "".join(f"<th>{h}</th>" for h in ("codec", "bytes", "bpp", "PSNR (dB)", "MS-SSIM", "setting"))
    body = "".join(f"<tr data-codec='{html.escape(r[0].lower())}'>" + "".join(f"<td>{html.escape(v)}</td>" for v in r)
                   + "</tr>" for r in results_rows(c))
    return f"<table id='lgi-results'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _views(c, zoom, cx, cy, overlay, device, backend) -> list:
    """The five synced views of one window: originals' pixels magnified, LGI rendered at that size."""
    out_w, out_h = view_size(c.width, c.height)
    zoom = float(zoom)
    x0, y0 = window(float(cx), float(cy), zoom)
    arrays = [raster_view(c.original_u8, x0, y0, zoom, out_w, out_h),
              lgi_view(c.lgi.data, x0, y0, zoom, out_w, out_h, overlay=overlay, device=device, backend=backend)]
    arrays += [raster_view(p.image_u8, x0, y0, zoom, out_w, out_h) for p in c.peers]
    return arrays


def build_app(device: str = "cpu", max_pixels: int = DEFAULT_MAX_PIXELS, steps: int | None = None,
              backend: str = "auto") -> gr.Blocks:
    """The page. ``steps`` pre-fills the fitting-steps field (as `lgi encode --steps`; tests use few)."""
    workdir = Path(tempfile.mkdtemp(prefix="lgi-app-"))

    def use_sample():
        dest = workdir / "sample" / SAMPLE.name
        dest.parent.mkdir(exist_ok=True)
        shutil.copyfile(SAMPLE, dest)
        return str(dest)

    def on_encode(path, target_kind, bpp, quality, effort, steps_value, zoom, cx, cy, overlay,
                  progress=gr.Progress()):  # noqa: B008 - Gradio's progress injection
        try:
            if steps_value is not None and steps_value < 0:
                raise AppInputError(f"fitting steps must be >= 1 (or 0 for the effort's), got {steps_value:g}")
            target = load_image(path, max_pixels)

            def on_stage(name: str, frac: float) -> None:
                i = STAGES.index(name) if name in STAGES else STAGES.index("done")
                progress((i + min(1.0, frac)) / len(STAGES), desc=name)

            by_bpp = target_kind == TARGETS[0]
            c = compare(target, bpp=float(bpp) if by_bpp else None, quality=None if by_bpp else quality,
                        steps=int(steps_value) if steps_value else None, effort=effort, device=device,
                        backend=backend, on_stage=on_stage)
        except AppInputError as exc:
            raise _user_error(str(exc)) from None
        out = Path(tempfile.mkdtemp(dir=workdir)) / f"{Path(path).stem}.lgi"  # one folder per encode
        out.write_bytes(c.lgi.data)
        r = c.report
        asked = (f"{float(bpp):g} bpp" if by_bpp else f"quality {quality}") + f", effort {effort}, " + (
            f"{int(steps_value)} fitting steps" if steps_value else "the effort's fitting steps")
        status = (f"**{Path(path).name}** ({asked}): {c.width}x{c.height}, LGI {r['bytes']} bytes ({r['bpp']:.4f} bpp), "
                  f"PSNR {r['psnr']:.2f} dB, {r['gaussians']} Gaussians; encoded in {r['seconds']:.1f} s "
                  f"({', '.join(f'{k} {v:.1f} s' for k, v in r['stage_seconds'].items())}). Peers at the largest "
                  f"quality not above LGI's size.")
        return (c, status, results_html(c), str(out), *_views(c, zoom, cx, cy, overlay, device, backend),
                rd_figure(c))

    def on_view(c, zoom, cx, cy, overlay):
        if c is None:
            return [gr.skip()] * len(VIEWS)
        return _views(c, zoom, cx, cy, overlay, device, backend)

    def on_select(c, zoom, cx, cy, overlay, evt: gr.SelectData):
        if c is None or evt.index is None:
            return [gr.skip()] * (2 + len(VIEWS))
        out_w, out_h = view_size(c.width, c.height)
        x0, y0 = window(float(cx), float(cy), float(zoom))
        nx = min(1.0, max(0.0, x0 + evt.index[0] / out_w / float(zoom)))
        ny = min(1.0, max(0.0, y0 + evt.index[1] / out_h / float(zoom)))
        return [nx, ny, *_views(c, zoom, nx, ny, overlay, device, backend)]

    def on_decode(path, scale):
        from lgi.decoding import DecodeError, decode, info_report, output_size
        from lgi_dictco import LgiFormatError
        from lgi_train.runs import to_uint8

        if path is None:
            raise _user_error("upload a .lgi file first")
        name = Path(path).name
        data = Path(path).read_bytes()
        try:
            info = info_report(data)
            w, h = output_size(info["width"], info["height"], float(scale), None)
            if w * h > max_pixels:
                raise DecodeError(f"{w}x{h} at scale {scale:g} is above this app's limit of {max_pixels:,} pixels "
                                  "(lgi app --max-pixels; lgi decode has no such limit)")
            decoded = decode(data, scale=float(scale), device=device, backend=backend)
        except (LgiFormatError, DecodeError) as exc:
            raise _user_error(f"{name}: {exc}") from None
        text = (f"**{name}**: LGI {info['width']}x{info['height']}, {info['gaussians']} Gaussians, "
                f"{info['bytes']} bytes ({info['bpp']:.4f} bpp, {info['bits_per_gaussian']:.1f} bits per Gaussian); "
                f"shown at {w}x{h}")
        return to_uint8(decoded.image), text, info

    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        state = gr.State(None)
        gr.Markdown(f"# {TITLE}\nUpload an image, encode it, and compare it with JPEG, WebP and AVIF at the "
                    f"same file size. One encode runs at a time (others wait in the queue); images up to "
                    f"{max_pixels:,} pixels.")
        with gr.Tab("Encode"):
            with gr.Row():
                with gr.Column(scale=1, min_width=260):
                    upload = gr.File(label="Image (PNG, JPEG, TIFF, WebP, ...)", type="filepath", elem_id="upload")
                    sample = gr.Button("Use the sample image (kodim23)", size="sm", elem_id="sample")
                    target_kind = gr.Radio(list(TARGETS), value=TARGETS[0], label="Target", elem_id="target")
                    bpp = gr.Slider(0.1, 3.0, value=0.5, step=0.05, label="Bits per pixel (at or under)",
                                    elem_id="bpp")
                    quality = gr.Radio(["low", "medium", "high", "max"], value="medium",
                                       label="Quality preset: 0.25 / 0.5 / 1.0 / 1.5 bpp", elem_id="quality")
                    effort = gr.Radio(["fast", "default", "max"], value="default", elem_id="effort",
                                      label="Effort: fast, default or max (longer encodes, better quality)")
                    with gr.Accordion("Advanced", open=False):
                        steps_box = gr.Number(value=steps or 0, precision=0, minimum=0, elem_id="steps",
                                              label="Fitting steps (0: the effort's), as lgi encode --steps")
                    encode = gr.Button("Encode", variant="primary", elem_id="encode")
                with gr.Column(scale=2):
                    status = gr.Markdown("Results appear here.", elem_id="status")
                    table = gr.HTML(elem_id="results")
                    download = gr.File(label="Download the .lgi", interactive=False, elem_id="download")
            with gr.Row():
                zoom = gr.Radio(list(ZOOMS), value=1, label="Zoom (click a picture to centre it)", elem_id="zoom")
                cx = gr.Slider(0, 1, value=0.5, step=0.01, label="Centre x", elem_id="cx")
                cy = gr.Slider(0, 1, value=0.5, step=0.01, label="Centre y", elem_id="cy")
                overlay = gr.Checkbox(label="Gaussian overlay (1-sigma ellipses) on LGI", elem_id="overlay")
            gr.Markdown("LGI's view is rendered from the Gaussians at the zoomed resolution; the others show "
                        "their pixels magnified.")
            with gr.Row():
                views = [gr.Image(label=n, type="numpy", format="png", interactive=False, elem_id=f"view-{n.lower()}",
                                  buttons=["download", "fullscreen"], min_width=120) for n in VIEWS]
            plot = gr.Plot(value=rd_figure(), label="This image on the Kodak RD curves", elem_id="rd")
        with gr.Tab("Decode a .lgi"):
            with gr.Row():
                with gr.Column(scale=1):
                    lgi_file = gr.File(label=".lgi file", type="filepath", elem_id="lgi-upload")
                    scale = gr.Slider(0.25, 4.0, value=1.0, step=0.25, label="Scale (any resolution)",
                                      elem_id="scale")
                    decode_btn = gr.Button("Decode", variant="primary", elem_id="decode")
                with gr.Column(scale=2):
                    decoded_text = gr.Markdown(elem_id="decoded-text")
                    decoded = gr.Image(label="Decoded", type="numpy", format="png", interactive=False,
                                       elem_id="decoded")
                    info = gr.JSON(label="lgi info", elem_id="info")

        sample.click(use_sample, outputs=upload)
        view_inputs = [state, zoom, cx, cy, overlay]
        encode.click(on_encode, inputs=[upload, target_kind, bpp, quality, effort, steps_box, zoom, cx, cy, overlay],
                     outputs=[state, status, table, download, *views, plot], concurrency_id="codec",
                     concurrency_limit=1)
        for trigger in (zoom.change, overlay.change, cx.release, cy.release):
            trigger(on_view, inputs=view_inputs, outputs=views)
        for v in views:
            v.select(on_select, inputs=view_inputs, outputs=[cx, cy, *views])
        decode_btn.click(on_decode, inputs=[lgi_file, scale], outputs=[decoded, decoded_text, info],
                         concurrency_id="codec", concurrency_limit=1)
    demo.queue(default_concurrency_limit=1)
    return demo


def launch(host: str = "127.0.0.1", port: int = 7860, device: str = "cpu", max_pixels: int = DEFAULT_MAX_PIXELS,
           steps: int | None = None, **kwargs) -> gr.Blocks:
    """Build the page and serve it (blocks unless ``prevent_thread_lock=True`` is passed)."""
    demo = build_app(device=device, max_pixels=max_pixels, steps=steps)
    demo.launch(server_name=host, server_port=port, show_error=True, max_file_size="200mb", **kwargs)
    return demo
