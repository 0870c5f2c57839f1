"""`lgi app`: the codec in a web page (Gradio). Only click is imported here; Gradio and torch load in
the command body, and a missing Gradio is one line saying how to install it."""

from __future__ import annotations

import click

from lgi.compare import DEFAULT_MAX_PIXELS


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve on (0.0.0.0: every interface).")
@click.option("--port", type=int, default=7860, show_default=True)
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N], for encoding and rendering.")
@click.option("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Largest image (width x height) the page encodes or decodes to.")
@click.option("--steps", type=int, help="Default fitting steps on the page (as lgi encode --steps; the page can change it).")
def app(host, port, device, max_pixels, steps):
    """Serve a web page: upload an image, encode it, compare with JPEG/WebP/AVIF at the same size."""
    from lgi_dictco.clitools import check_device

    check_device(device)
    if max_pixels < 1:
        raise click.BadParameter(f"--max-pixels must be >= 1, got {max_pixels}", param_hint="'--max-pixels'")
    if steps is not None and steps < 1:
        raise click.BadParameter(f"--steps must be >= 1, got {steps}", param_hint="'--steps'")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise click.ClickException("lgi app needs Gradio, which is not installed: pip install 'lgi[app]'") from None
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise click.ClickException(f"--device {device}: no CUDA GPU is available on this machine")
    from lgi.app import launch

    launch(host=host, port=port, device=device, max_pixels=max_pixels, steps=steps)
