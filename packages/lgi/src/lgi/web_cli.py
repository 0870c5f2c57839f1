"""`lgi web FILE.lgi... -o DIR`: a self-contained static site that shows `.lgi` files in a web page.

DIR gets ``lgi.js`` (the ES module of this package's ``web/`` folder: the decoder, its WebGL2 and CPU
renderers and the ``<lgi-img>`` element; docs/web.md), the files themselves, ``index.html`` showing each in an
``<lgi-img>`` with a zoom slider, and, where the original image is given, a JPEG of at most the same size beside
it. Any static server can serve DIR (``python -m http.server -d DIR``); browsers do not run modules from file://.
"""

from __future__ import annotations

import html
import json
import shutil
import tempfile
from importlib import resources
from pathlib import Path

import click

MODULE = "lgi.js"


def module_source() -> bytes:
    """The bytes of the shipped ES module (``lgi/web/lgi.js`` in the wheel)."""
    return resources.files("lgi").joinpath("web", MODULE).read_bytes()


def _unique_names(paths: list[Path]) -> list[str]:
    """A file name per input, made unique with -2, -3... where two inputs share a name."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        stem = p.stem
        k = seen.get(stem.lower(), 0) + 1
        seen[stem.lower()] = k
        out.append(stem if k == 1 else f"{stem}-{k}")
    return out


def _page(items: list[dict]) -> str:
    figures = []
    for it in items:
        name = html.escape(it["name"])
        w, h = it["width"], it["height"]
        cells = [f'<figure><lgi-img src="{name}.lgi" width="{w}" height="{h}" alt="{name}"></lgi-img>'
                 f'<figcaption>LGI: {it["bytes"]:,} bytes, {it["bpp"]:.3f} bpp, {it["gaussians"]:,} Gaussians'
                 f' <span class="status"></span></figcaption></figure>']
        if it.get("jpeg_bytes"):
            cells.append(f'<figure><img src="{name}.jpg" width="{w}" height="{h}" alt="{name} as JPEG">'
                         f'<figcaption>JPEG quality {it["jpeg_quality"]}: {it["jpeg_bytes"]:,} bytes, '
                         f'{8 * it["jpeg_bytes"] / (w * h):.3f} bpp</figcaption></figure>')
        figures.append(f'<section data-width="{w}"><h2>{name} ({w}&times;{h})</h2><div class="row">'
                       + "".join(cells) + "</div></section>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>LGI images</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
.row {{ display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }}
figure {{ margin: 0; overflow: auto; max-width: 100%; }}
figcaption {{ font-size: 0.85rem; color: #555; margin-top: 0.3rem; }}
.status.error {{ color: #b00020; }}
img {{ image-rendering: auto; }}
</style></head>
<body>
<h1>LGI images</h1>
<p>Each image is drawn by <code>lgi.js</code> from its Gaussians at the size it is shown, times the screen's
pixel ratio: zoom in and it is drawn again, sharp. <label>Zoom <input id="zoom" type="range" min="0.25" max="4"
step="0.25" value="1"> <output id="zoom-value">1&times;</output></label></p>
{"".join(figures)}
<script type="module">
import "./lgi.js";
const zoom = document.getElementById("zoom");
const apply = () => {{
  const z = Number(zoom.value);
  document.getElementById("zoom-value").textContent = `${{z}}\\u00d7`;
  for (const s of document.querySelectorAll("section")) {{
    const w = Number(s.dataset.width) * z;
    for (const el of s.querySelectorAll("lgi-img, img")) {{ el.style.width = `${{w}}px`; el.style.height = "auto"; }}
  }}
}};
zoom.addEventListener("input", apply);
for (const el of document.querySelectorAll("lgi-img")) {{
  const status = el.closest("figure").querySelector(".status");
  el.addEventListener("load", () => {{ status.textContent = `(drawn with ${{el.backend}})`; }});
  el.addEventListener("error", (e) => {{ status.textContent = e.detail.message; status.classList.add("error"); }});
}}
</script>
</body></html>
"""


def write_site(files: list[Path], out: Path, originals: list[Path] | None = None, force: bool = False) -> list[dict]:
    """Write the site for ``files`` into ``out`` (see the module docstring); returns one dict per file.

    Raises:
        click.ClickException: a file that is not a readable ``.lgi``, an original of another size or not an
            image, or an ``out`` that holds files and ``force`` is not given. Nothing is written then.
    """
    from lgi.peers import peer_at_most
    from lgi_dictco.errors import LgiFormatError
    from lgi_dictco.gauss import read_header
    from lgi_dictco.pixels import to_uint8
    from lgi_preprocess import ImageTooLarge, load_image

    if originals and len(originals) != len(files):
        raise click.ClickException(f"{len(originals)} --original images for {len(files)} files: give one per file, "
                                   "in the same order")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
        raise click.ClickException(f"{out} exists and is not an empty folder (use --force to replace what it holds)")
    items, blobs = [], {}
    for i, (path, name) in enumerate(zip(files, _unique_names(files))):
        try:
            data = path.read_bytes()
            h = read_header(data)
        except OSError as exc:
            raise click.ClickException(f"cannot read {path}: {exc.strerror or exc}") from None
        except LgiFormatError as exc:
            raise click.ClickException(f"{path}: {exc}") from None
        item = {"name": name, "source": str(path), "width": h.width, "height": h.height, "bytes": len(data),
                "bpp": 8 * len(data) / (h.width * h.height), "gaussians": h.num_gaussians}
        blobs[f"{name}.lgi"] = data
        if originals:
            try:
                image = load_image(originals[i], max_pixels=h.width * h.height)
            except ImageTooLarge:
                image = None
            except (OSError, ValueError) as exc:  # not an image, a broken one
                raise click.ClickException(f"{originals[i]}: not a readable image ({exc})") from None
            if image is None or image.shape[:2] != (h.height, h.width):
                raise click.ClickException(f"{originals[i]} is not {h.width}x{h.height}, the size of {path}")
            jpeg, q = peer_at_most(to_uint8(image.transpose(2, 0, 1)), len(data), "jpeg")
            blobs[f"{name}.jpg"] = jpeg
            item.update(jpeg_bytes=len(jpeg), jpeg_quality=q)
        items.append(item)
    # Written beside `out` (the same file system), then renamed into place; a folder it replaces is moved
    # aside first and removed only once the new one is in place, so a failure leaves the old site whole.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".lgi-web-", dir=out.parent))
    old = None
    try:
        (tmp / MODULE).write_bytes(module_source())
        for fname, data in blobs.items():
            (tmp / fname).write_bytes(data)
        (tmp / "index.html").write_text(_page(items), encoding="utf-8")
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=".lgi-web-old-", dir=out.parent))
            out.rename(old / out.name)
        tmp.rename(out)
    except BaseException:
        if old is not None and not out.exists():
            (old / out.name).rename(out)
        raise
    finally:
        for leftover in (tmp, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    return items


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The folder to write the site into (created; must be empty unless --force).")
@click.option("--original", "originals", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The original image of each file, in the same order: a JPEG of at most the same size is shown "
                   "beside it.")
@click.option("--force", is_flag=True, help="Replace what the output folder holds.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def web(files, output, originals, force, as_json):
    """Write a static web page that shows .lgi FILES, drawn in the browser by lgi.js.

    The folder holds lgi.js (the decoder as an ES module, with the <lgi-img> element), index.html and the
    files. Serve it with any static server, e.g. `python -m http.server -d DIR`, and open the page.
    """
    items = write_site(list(files), output, list(originals) or None, force)
    if as_json:
        click.echo(json.dumps({"output": str(output), "files": items}, indent=2))
    else:
        click.echo(f"wrote {output}/index.html, {MODULE} and {len(items)} file(s); serve it with: "
                   f"python -m http.server -d {output}")
