"""What `lgi app` shows, without the web page: one image through LGI and its peers at the same size,
zoomed views (LGI re-rendered at the zoomed resolution), the Gaussian overlay and the Kodak RD chart.

Encoding goes through :func:`lgi.api.encode_details` (what `lgi encode` runs) and decoding through
:mod:`lgi.decoding`, so the page's figures are the command line's. Only the standard library is
imported at module level.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).with_name("data")
SAMPLE = DATA / "sample.png"
#: Mean Kodak RD curves per codec (written by tools/make_figures.py from benchmarks/results).
RD_CURVES = DATA / "rd_kodak_curves.csv"
#: The app's default largest image: about 1 MP (a Kodak image at 0.5 bpp takes ~2 minutes on 2 cores).
DEFAULT_MAX_PIXELS = 1 << 20
PEER_NAMES = ("jpeg", "webp", "avif")
#: Views are at least this many pixels on the long side (small images are shown magnified) and at most
#: VIEW_MAX (larger images are shown reduced; the zoom shows their detail).
VIEW_MIN, VIEW_MAX = 384, 768


class AppInputError(ValueError):
    """An upload or a request the app refuses; the message is shown to the user as is."""


@dataclass
class Panel:
    """One codec's result on the image: its file and the decoded pixels."""

    name: str
    data: bytes
    image_u8: object            # [H, W, 3] uint8, decoded at the stored size
    psnr: float
    ms_ssim: float              # NaN below 161 px per side
    setting: str                # "235 Gaussians", "quality 42"

    @property
    def bytes(self) -> int:
        return len(self.data)


@dataclass
class Comparison:
    width: int
    height: int
    original_u8: object         # [H, W, 3] uint8
    lgi: Panel
    peers: list[Panel]
    report: dict                # what `lgi encode --json` prints, less the file names
    source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def panels(self) -> list[Panel]:
        return [self.lgi, *self.peers]


def check_image_size(path: str | Path, max_pixels: int) -> None:
    """Refuse an image above ``max_pixels`` from its header alone (before decoding it)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception:  # noqa: BLE001 - not an image: load_target gives the CLI's message for it
        return
    if w * h > max_pixels:
        raise AppInputError(f"{Path(path).name} is {w}x{h} = {w * h:,} pixels; this app encodes at most "
                            f"{max_pixels:,} (lgi app --max-pixels, or lgi encode on the command line)")


def load_image(path: str | Path, max_pixels: int):
    """[3, H, W] float32 target, with the CLI's rules (lgi_train.runs.load_target) plus the size limit."""
    from lgi_train.runs import ImageError, load_target

    if path is None:
        raise AppInputError("upload an image first (or pick the sample)")
    check_image_size(path, max_pixels)
    try:
        return load_target(path)
    except ImageError as exc:
        raise AppInputError(str(exc)) from None


def compare(target, *, bpp=None, quality=None, gaussians=None, steps=None, effort="default", device="cpu",
            seed=0, backend="auto", on_stage=None, peers=PEER_NAMES) -> Comparison:
    """Encode ``target`` [3, H, W] as `lgi encode` does and each peer at the largest size not above LGI's.

    Raises:
        AppInputError: flags the encoder refuses or a size it cannot reach (the CLI's message).
    """
    from lgi.api import encode_details, rate_request
    from lgi.codec_cli import research_tuning
    from lgi.decoding import decode
    from lgi.errors import LgiError
    from lgi.peers import decode_u8, peer_at_most, rgb_metrics
    from lgi_train.runs import to_uint8

    try:
        if steps is not None and steps < 1:
            raise AppInputError(f"fitting steps must be >= 1, got {steps}")
        encoded = encode_details(target, bpp=rate_request(bpp, None, quality, gaussians), gaussians=gaussians,
                                 effort=effort, device=device, seed=seed, backend=backend, progress=on_stage,
                                 max_pixels=target[0].numel(), tuning=research_tuning(effort, steps))
    except LgiError as exc:
        raise AppInputError(str(exc)) from None
    data, report = encoded.data, encoded.report()
    original = to_uint8(target)
    ours = to_uint8(decode(data, device=device, backend=backend).image)
    _, ms = rgb_metrics(ours, original)
    lgi = Panel("LGI", data, ours, report["psnr"], ms, f"{report['gaussians']} Gaussians")
    out = []
    for i, name in enumerate(peers):
        if on_stage is not None:
            on_stage("peers", i / len(peers))
        peer_data, q = peer_at_most(original, len(data), name)
        dec = decode_u8(peer_data)
        p, m = rgb_metrics(dec, original)
        out.append(Panel(name.upper() if name != "webp" else "WebP", peer_data, dec, p, m, f"quality {q}"))
    h, w = original.shape[:2]
    return Comparison(w, h, original, lgi, out, report)


def results_rows(c: Comparison) -> list[list[str]]:
    """The results table: codec, bytes, bpp, PSNR, MS-SSIM, setting (as strings for the page)."""
    px = c.width * c.height
    rows = [["original", "", "", "", "", f"{c.width}x{c.height}"]]
    for p in c.panels:
        ms = "—" if math.isnan(p.ms_ssim) else f"{p.ms_ssim:.4f}"
        rows.append([p.name, str(p.bytes), f"{p.bytes * 8 / px:.4f}", f"{p.psnr:.2f}", ms, p.setting])
    return rows


def view_size(width: int, height: int) -> tuple[int, int]:
    """(W, H) of the views: the image's aspect, long side within [VIEW_MIN, VIEW_MAX]."""
    long = max(width, height)
    f = min(max(1.0, VIEW_MIN / long), VIEW_MAX / long)
    return max(1, round(width * f)), max(1, round(height * f))


def window(cx: float, cy: float, zoom: float) -> tuple[float, float]:
    """Top-left (x0, y0) in the unit square of the 1/zoom window centred near (cx, cy), kept inside."""
    if not zoom >= 1:
        raise AppInputError(f"zoom must be >= 1, got {zoom}")
    half = 0.5 / zoom
    return (min(max(cx, half), 1 - half) - half, min(max(cy, half), 1 - half) - half)


def raster_view(image_u8, x0: float, y0: float, zoom: float, out_w: int, out_h: int):
    """The window of a raster image, magnified with nearest-neighbour (its pixels as they are)."""
    import numpy as np
    from PIL import Image

    h, w = image_u8.shape[:2]
    box = (x0 * w, y0 * h, (x0 + 1 / zoom) * w, (y0 + 1 / zoom) * h)
    return np.asarray(Image.fromarray(image_u8).resize((out_w, out_h), Image.Resampling.NEAREST, box=box))


def lgi_view(data: bytes, x0: float, y0: float, zoom: float, out_w: int, out_h: int, overlay: bool = False,
             device: str = "cpu", backend: str = "auto"):
    """The window of a .lgi file rendered at the view's resolution (not upsampled pixels); optionally
    with each Gaussian's 1-sigma ellipse drawn on it."""
    from lgi.decoding import decode_window
    from lgi_train.runs import to_uint8

    dec = decode_window(data, x0, y0, zoom, out_w, out_h, device=device, backend=backend)
    img = to_uint8(dec.image)
    return draw_ellipses(img, dec.params, x0, y0, zoom) if overlay else img


def draw_ellipses(image_u8, params: dict, x0: float, y0: float, zoom: float, max_ellipses: int = 20000):
    """1-sigma ellipses of the Gaussians (unit-square ``params`` from lgi_dictco dequantize) over a view
    of the window at (x0, y0), 1/zoom wide. The largest ``max_ellipses`` are drawn."""
    import numpy as np
    from PIL import Image, ImageDraw

    h, w = image_u8.shape[:2]
    means = np.asarray(params["means"], dtype=np.float64)
    scales = np.asarray(params["scales"], dtype=np.float64)
    rot = np.asarray(params["rotations"], dtype=np.float64).reshape(-1)
    if means.shape[0] > max_ellipses:
        keep = np.argsort(-scales.prod(1))[:max_ellipses]
        means, scales, rot = means[keep], scales[keep], rot[keep]
    t = np.linspace(0, 2 * np.pi, 25)
    circle = np.stack([np.cos(t), np.sin(t)])                                   # [2, T]
    c, s = np.cos(rot), np.sin(rot)
    # unit-square point: mean + R diag(scales) circle (the renderer's convention, lgi_gsplat2d)
    ex = scales[:, :1] * circle[0] * c[:, None] - scales[:, 1:] * circle[1] * s[:, None]
    ey = scales[:, :1] * circle[0] * s[:, None] + scales[:, 1:] * circle[1] * c[:, None]
    px = (means[:, :1] + ex - x0) * zoom * w
    py = (means[:, 1:] + ey - y0) * zoom * h
    visible = (px.max(1) >= 0) & (px.min(1) < w) & (py.max(1) >= 0) & (py.min(1) < h)
    layer = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for xs, ys in zip(px[visible], py[visible]):
        draw.line(list(zip(xs.tolist(), ys.tolist())), fill=(255, 230, 0, 150), width=1)
    out = Image.alpha_composite(Image.fromarray(image_u8).convert("RGBA"), layer)
    return np.asarray(out.convert("RGB"))


def load_rd_curves(path: Path = RD_CURVES) -> dict[str, list[tuple[float, float, float]]]:
    """codec → [(bpp, PSNR, MS-SSIM)] sorted by bpp, from the bundled CSV (comment lines skipped)."""
    curves: dict[str, list[tuple[float, float, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(line for line in f if not line.startswith("#")):
            curves.setdefault(row["codec"], []).append((float(row["bpp"]), float(row["psnr"]),
                                                        float(row["ms_ssim"])))
    return {k: sorted(v) for k, v in curves.items()}


def rd_source(path: Path = RD_CURVES) -> str:
    """The provenance line of the bundled curves (their first comment line)."""
    with open(path) as f:
        first = f.readline()
    return first.lstrip("# ").strip()


def rd_figure(c: Comparison | None = None, path: Path = RD_CURVES):
    """A matplotlib figure: the mean Kodak curves of every codec, with this image's points on them."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    curves = load_rd_curves(path)
    fig = Figure(figsize=(10, 3.8))
    axes = fig.subplots(1, 2)
    styles = {"lgi": ("o-", "C0"), "lgi-v2": ("o:", "C0"), "jpeg": ("s--", "C1"), "webp": ("^--", "C2"),
              "avif": ("v--", "C3"), "jxl": ("d--", "C4")}
    for name, pts in curves.items():
        style, color = styles.get(name, ("--", None))
        pts = [p for p in pts if p[0] <= 2.0]
        for ax, k in zip(axes, (1, 2)):
            ax.plot([p[0] for p in pts], [p[k] for p in pts], style, color=color, ms=3, lw=1,
                    label=f"{name.upper()} (Kodak)")
    if c is not None:
        px = c.width * c.height
        colors = {"LGI": "C0", "JPEG": "C1", "WebP": "C2", "AVIF": "C3"}
        for p in c.panels:
            axes[0].plot(p.bytes * 8 / px, p.psnr, "*", ms=13, color=colors.get(p.name), mec="black",
                         label=f"{p.name}: this image")
            if not math.isnan(p.ms_ssim):
                axes[1].plot(p.bytes * 8 / px, p.ms_ssim, "*", ms=13, color=colors.get(p.name), mec="black")
    axes[0].set_ylabel("PSNR-RGB (dB)")
    axes[1].set_ylabel("MS-SSIM")
    for ax in axes:
        ax.set_xlabel("bits per pixel")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle(rd_source(path).split(";")[0] + ("; stars: this image" if c is not None else ""), fontsize=9)
    fig.tight_layout()
    return fig
