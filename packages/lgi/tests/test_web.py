"""lgi.js, the decoder for web pages, in a real browser (headless Chromium through Playwright): its decoded
integers against the Python decoder's (bit for bit), its WebGL2 and CPU renders against the native renderer,
its refusals against the Python decoder's on the hostile corpus and on mutated files, the <lgi-img> element,
and the site `lgi web` writes. Skipped, with the reason, where Playwright or Chromium is missing.
"""

from __future__ import annotations

import base64
import functools
import gzip
import http.server
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import lgi
from lgi.web_cli import module_source, web
from lgi_dictco import LgiFormatError
from lgi_dictco.container import chunk_sizes, write_container
from lgi_dictco.gauss import MAGIC, VERSION, GroupCoding, LgiHeader, LgiPayload, decode_lgi, encode_lgi

CORPUS = Path(__file__).resolve().parents[3] / "tests" / "fuzz" / "corpus" / "lgi"


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def payload_file(n=300, width=96, height=64, *, seed=0, channels=3, color_space="rgb", mode="topk", k=10,
                 drops=(0,), k_shape=8, k_color=16, own=0.3) -> bytes:
    """A valid file of n random Gaussians a few pixels wide, with codebooks, own values and precision classes."""
    rng = np.random.default_rng(seed)
    nk = len(drops)
    classes = rng.integers(0, nk, n)

    def group(dims, kk, lo, step, levels):
        lv = np.tile(np.asarray(levels), (nk, 1))
        exps = np.arange(nk) if nk > 1 else None
        cb = rng.integers(0, lv[0][None, :], (kk, dims))
        idx = rng.integers(0, kk + 1, n) if kk else None
        if kk:
            idx[rng.random(n) < own] = kk
        mine = np.ones(n, bool) if not kk else idx == kk
        sc = rng.integers(0, lv[classes[mine]])
        return GroupCoding(np.asarray(lo, np.float32), np.asarray(step, np.float32), lv if nk > 1 else lv[0],
                           cb, idx, sc, exps)

    # Shape features (m, u, v): log sigma1 + log sigma2 from 2 log(1/64) to 2 log(1/8), anisotropy up to 1.2.
    shape = group(3, k_shape, [-8.3, -1.2, -1.2], [4.2 / 63, 2.4 / 63, 2.4 / 63], [64, 64, 64])
    color = group(channels, k_color, [-0.1] * channels, [1.2 / 31] * channels, [32] * channels)
    if color_space == "opp":
        color.lo = np.array([0.0, -0.5, -0.5], np.float32)
        color.step = np.array([1.7 / 31, 1 / 31, 1 / 31], np.float32)
    bx, by = 11, 10
    d = np.asarray(drops)[classes]
    pos = np.stack([rng.integers(0, 1 << (bx - d)), rng.integers(0, 1 << (by - d))], axis=1)
    header = LgiHeader(width=width, height=height, channels=channels, color_space=color_space, render_mode=mode,
                       topk=k, num_gaussians=n, pos_bits=(bx, by), class_drop=tuple(drops))
    return encode_lgi(LgiPayload(header, pos, shape, color, classes=classes if nk > 1 else None))


VARIANTS = {
    "topk": {},
    "classes": {"drops": (0, 1, 3), "seed": 1},
    "no-codebooks": {"k_shape": 0, "k_color": 0, "seed": 2},
    "gray": {"channels": 1, "color_space": "gray", "seed": 3},
    "opp": {"color_space": "opp", "seed": 4},
    "sum": {"mode": "sum", "seed": 5},
    "topk-hard-k3": {"mode": "topk-hard", "k": 3, "seed": 6},
    "k32": {"k": 32, "n": 900, "seed": 7},
    "one": {"n": 1, "seed": 8},
    "empty": {"n": 0},
}


@pytest.fixture(scope="module")
def files(pictures) -> dict[str, bytes]:
    picture, as_u8 = pictures
    out = {name: payload_file(**kw) for name, kw in VARIANTS.items()}
    out["encoded"] = lgi.encode(as_u8(picture()), bpp=2.0, effort="fast")  # what `lgi encode` writes
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory, files):
    root = tmp_path_factory.mktemp("web")
    (root / "lgi.js").write_bytes(module_source())
    (root / "index.html").write_text("<!doctype html><meta charset=utf-8><title>t</title><body></body>")
    for name, data in files.items():
        (root / f"{name}.lgi").write_bytes(data)
    (root / "bad.lgi").write_bytes(b"\x89LGI\r\n\x1a\n\x02\x01not a real file")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def page(browser, site):
    ctx = browser.new_context()
    pg = ctx.new_page()
    errors = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(site[1] + "index.html")
    pg.evaluate("async () => { window.lgi = await import('/lgi.js'); }")
    yield pg
    ctx.close()
    assert not errors, errors


# Run in the page: decode base64 bytes, return the outcome as JSON-able data.
JS_PARSE = """(b64) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  try {
    const p = lgi.parse(bytes);
    const arr = (a) => (a ? Array.from(a) : null);
    return {positions: arr(p.positions), classes: arr(p.classes),
            shape: [arr(p.shape.codebook), arr(p.shape.indices), arr(p.shape.scalars)],
            color: [arr(p.color.codebook), arr(p.color.indices), arr(p.color.scalars)]};
  } catch (e) { return {error: e.message, name: e.name}; }
}"""

JS_DECODE = """([b64, options]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  try {
    const img = lgi.decode(bytes, options);
    let s = '';
    for (let i = 0; i < img.data.length; i += 8192) s += String.fromCharCode.apply(null, img.data.subarray(i, i + 8192));
    return {width: img.width, height: img.height, backend: img.backend, pixels: btoa(s)};
  } catch (e) { return {error: e.message, name: e.name, kind: e.kind}; }
}"""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def js_image(result: dict, channels: int) -> np.ndarray:
    rgba = np.frombuffer(base64.b64decode(result["pixels"]), np.uint8).reshape(result["height"], result["width"], 4)
    return rgba[..., :1] if channels == 1 else rgba[..., :channels]


def _python_ints(data: bytes) -> dict:
    p = decode_lgi(data)

    def ints(a):
        return None if a is None else np.asarray(a).ravel().tolist()

    return {"positions": ints(p.positions), "classes": ints(p.class_ids()),
            "shape": [ints(p.shape.codebook), ints(p.shape.indices), ints(p.shape.scalars)],
            "color": [ints(p.color.codebook), ints(p.color.indices), ints(p.color.scalars)]}


def test_decoded_integers_equal_the_python_decoders(page, files):
    for name, data in files.items():
        got = page.evaluate(JS_PARSE, b64(data))
        assert "error" not in got, (name, got)
        assert got == _python_ints(data), name


@pytest.mark.parametrize("backend", ["cpu", "webgl"])
def test_renders_match_the_native_renderer(page, files, backend):
    """At the stored size >= 45 dB against `lgi decode`; at 2x and 4x against `lgi decode --scale 2 / 4`, >= 40 dB."""
    if backend == "webgl" and page.evaluate("lgi.webglRenderer()") is None:
        pytest.skip("this Chromium has no WebGL2")
    for name, data in files.items():
        for scale, floor in ((1, 45.0), (2, 40.0), (4, 40.0)):
            if scale == 4 and name not in ("encoded", "topk", "classes"):
                continue  # keeps the test short: 4x on the files that matter
            got = page.evaluate(JS_DECODE, [b64(data), {"scale": scale, "backend": backend}])
            assert "error" not in got, (name, got)
            ref = lgi.decode(data, scale=scale)
            if decode_lgi(data).header.num_gaussians:  # an empty file is a blank image, drawn by neither
                assert got["backend"] == backend
            assert (got["height"], got["width"]) == ref.shape[:2], name
            db = psnr_u8(js_image(got, ref.shape[2]), ref)
            assert db >= floor, (name, scale, db)


def test_decode_async_draws_the_same_pixels_on_every_core(page, files):
    """decodeAsync shares the CPU draw out to one worker per core, in bands of tile rows: the same bytes as
    decode on the page's thread; its refusals are decode's."""
    for name in ("encoded", "classes", "sum"):
        got = page.evaluate("""async (b64) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const a = lgi.decode(bytes, {scale: 5, backend: 'cpu'});
          const b = await lgi.decodeAsync(bytes, {scale: 5, backend: 'cpu'});
          let same = a.width === b.width && a.height === b.height;
          for (let i = 0; same && i < a.data.length; i++) same = a.data[i] === b.data[i];
          return {same, workers: navigator.hardwareConcurrency, pixels: a.width * a.height};
        }""", b64(files[name]))
        assert got["same"] and got["pixels"] >= 65536, (name, got)
    refused = page.evaluate("""async (b64) => {
      try { await lgi.decodeAsync(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)), {scale: 5, maxWork: 10}); }
      catch (e) { return [e.name, e.kind, e.option]; } }""", b64(files["encoded"]))
    assert refused == ["LgiError", "limit", "maxWork"]


def test_hostile_corpus_gets_the_python_decoders_outcome(page):
    """Each file of tests/fuzz/corpus/lgi: the same one-line refusal as `lgi decode`, or the same planned size."""
    expected = json.loads((CORPUS / "expected.json").read_text())
    for name, want in sorted(expected.items()):
        data = (CORPUS / f"{name}.lgi").read_bytes()
        got = page.evaluate("""(b64) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          try { const p = lgi.prepare(bytes); return {plan: `decodes ${p.width}x${p.height}`, pixels: p.width * p.height}; }
          catch (e) { return {error: e.message, name: e.name}; }
        }""", b64(data))
        if want.startswith("decodes "):
            assert got.get("plan") == want, (name, got)
        else:
            assert got.get("name") == "LgiError" and got["error"].startswith(want) and "\n" not in got["error"], (name, got)


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk but END, in order (duplicates too, unlike read_container's dict)."""
    pos, out = len(MAGIC) + 2, []
    for name, length in chunk_sizes(data, MAGIC):
        if name != "END ":
            out.append((name.encode(), data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return out


def _frame(chunks: list[tuple[bytes, bytes]]) -> bytes:
    return write_container(MAGIC, VERSION, chunks)


def mutants(data: bytes, count: int, seed: int = 0) -> list[bytes]:
    """Mutated copies of a file: byte edits inside one chunk with its CRC made valid again (what gets past the
    container), raw flips, truncations and chunks dropped or doubled."""
    rng = np.random.default_rng(seed)
    chunks = _chunks(data)
    out = []
    for i in range(count):
        kind = i % 8
        if kind < 5:
            c = [list(x) for x in chunks]
            j = int(rng.integers(0, len(c)))
            body = bytearray(c[j][1])
            for _ in range(int(rng.integers(1, 4))):
                if not body:
                    break
                at = int(rng.integers(0, len(body)))
                op = rng.integers(0, 3)
                if op == 0:
                    body[at] ^= 1 << int(rng.integers(0, 8))
                elif op == 1:
                    body[at] = int(rng.choice([0, 1, 0x7F, 0x80, 0xFF]))
                else:
                    del body[at:at + int(rng.integers(1, 4))]
            c[j][1] = bytes(body)
            out.append(_frame([tuple(x) for x in c]))
        elif kind == 5:
            b = bytearray(data)
            b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
            out.append(bytes(b))
        elif kind == 6:
            out.append(data[:int(rng.integers(0, len(data)))])
        else:
            c = list(chunks)
            j = int(rng.integers(0, len(c)))
            c = c[:j] + c[j + 1:] if rng.random() < 0.5 else c[:j + 1] + c[j:]
            out.append(_frame(c))
    return out


def _python_outcome(data: bytes) -> str | None:
    """None when the Python decoder accepts the file (parse and dequantize), else its message."""
    from lgi_dictco.gauss import dequantize

    try:
        dequantize(decode_lgi(data))
    except LgiFormatError as exc:
        return str(exc)
    return None


def test_mutated_files_get_the_python_decoders_verdict(page, files):
    """Differential: on mutated real files, lgi.js refuses exactly the files the Python decoder refuses (an
    LgiError, one line) and reads the same integers from those it accepts."""
    cases = mutants(files["encoded"], 240, seed=1) + mutants(files["classes"], 160, seed=2)
    accepted = 0
    for data in cases:
        want = _python_outcome(data)
        got = page.evaluate(JS_PARSE, b64(data))
        got_err = got.get("error")
        if got_err is None:  # parse accepted: dequantization may still refuse (scales, colours)
            deq = page.evaluate("""(b64) => { try { lgi.dequantize(lgi.parse(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))));
                                   return null; } catch (e) { return e.message; } }""", b64(data))
            got_err = deq
        assert (want is None) == (got_err is None), (want, got_err)
        if want is None:
            accepted += 1
            assert got == _python_ints(data)
        else:
            assert got.get("name", "LgiError") == "LgiError" and "\n" not in got_err
    assert 0 < accepted < len(cases)  # both verdicts were exercised


def test_a_fuzz_run_in_the_page_neither_crashes_nor_stalls(page, files):
    """2,000 mutated files decoded in the page at 64 pixels wide: every one an image or an LgiError, none over
    2 s, and the page still answers afterwards."""
    cases = mutants(files["encoded"], 1000, seed=3) + mutants(files["k32"], 1000, seed=4)
    result = page.evaluate("""(list) => {
      let worst = 0, images = 0, refused = 0; const other = [];
      for (const s of list) {
        const bytes = Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
        const t0 = performance.now();
        try { lgi.decode(bytes, {width: 64}); images++; }
        catch (e) { if (e.name === 'LgiError' && !e.message.includes('\\n')) refused++; else other.push(String(e.stack || e)); }
        worst = Math.max(worst, performance.now() - t0);
      }
      return {worst, images, refused, other: other.slice(0, 3)};
    }""", [b64(d) for d in cases])
    assert result["other"] == [] and result["images"] + result["refused"] == len(cases), result
    assert result["worst"] < 2000, result
    assert page.evaluate("1 + 1") == 2


def test_budget_refusals_name_the_option(page, files):
    data = b64(files["encoded"])
    for options, option in (({"maxWork": 10}, "maxWork"), ({"maxGaussians": 5}, "maxGaussians"),
                            ({"width": 5000, "maxPixels": 1000}, "maxPixels"), ({"scale": 0}, "scale")):
        got = page.evaluate(JS_DECODE, [data, options])
        assert got["name"] == "LgiError" and got["kind"] == "limit" and f"`{option}`" in got["error"], got


def test_the_module_is_small():
    assert len(gzip.compress(module_source(), 9)) <= 60_000


ELEMENT_PAGE = """<!doctype html><meta charset=utf-8><body>
<lgi-img id="a" src="encoded.lgi" alt="a test picture"></lgi-img>
<lgi-img id="b" src="encoded.lgi" width="40"></lgi-img>
<lgi-img id="bad" src="bad.lgi" alt="a broken file"></lgi-img>
<lgi-img id="missing" src="nowhere.lgi"></lgi-img>
<script type="module">
  window.events = [];
  for (const el of document.querySelectorAll("lgi-img")) {
    el.addEventListener("load", () => events.push([el.id, "load"]));
    el.addEventListener("render", () => events.push([el.id, "render"]));
    el.addEventListener("error", (e) => events.push([el.id, "error", e.detail.message]));
  }
  await import("./lgi.js");
</script>"""


def test_the_element_sizes_like_img_draws_at_device_pixels_and_reports_errors(browser, site):
    root, url = site
    (root / "element.html").write_text(ELEMENT_PAGE)
    ctx = browser.new_context(device_scale_factor=2)
    pg = ctx.new_page()
    pg.goto(url + "element.html")
    pg.wait_for_function("events.filter(e => e[1] !== 'render').length >= 4", timeout=60_000)
    events = pg.evaluate("events")
    assert ["a", "load"] in events and ["b", "load"] in events
    bad = [e for e in events if e[0] == "bad"]
    assert bad[0][1] == "error" and bad[0][2].startswith(".lgi") and "\n" not in bad[0][2]
    assert [e[:2] for e in events if e[0] == "missing"] == [["missing", "error"]]
    # as <img> does, a picture that cannot be drawn shows its alt text
    assert pg.evaluate("document.getElementById('bad').shadowRoot.querySelector('span').textContent") == "a broken file"

    def size(i):
        return pg.evaluate(f"""(() => {{ const el = document.getElementById('{i}');
            const c = el.shadowRoot.querySelector('canvas');
            return [el.getBoundingClientRect().width, el.getBoundingClientRect().height, c.width, c.height,
                    el.getAttribute('role'), el.getAttribute('aria-label'), el.error]; }})()""")

    w, h, cw, ch, role, label, err = size("a")
    assert (w, h) == (80, 48) and (cw, ch) == (160, 96) and role == "img" and label == "a test picture" and err is None
    w, h, cw, ch, *_ = size("b")
    assert (w, h) == (40, 24) and (cw, ch) == (80, 48)  # the width attribute, the file's aspect ratio
    pg.evaluate("document.getElementById('a').style.width = '200px'")
    pg.wait_for_function("events.some(e => e[0] === 'a' && e[1] === 'render')", timeout=60_000)
    w, h, cw, ch, *_ = size("a")
    assert (w, h) == (200, 120) and (cw, ch) == (400, 240)  # drawn again at the new size, sharp
    ctx.close()


def test_lgi_web_writes_a_site_that_shows_every_file(browser, tmp_path, files, pictures):
    picture, as_u8 = pictures
    from PIL import Image

    (tmp_path / "in").mkdir()
    enc = tmp_path / "in" / "pic.lgi"
    enc.write_bytes(files["encoded"])
    other = tmp_path / "in" / "classes.lgi"
    other.write_bytes(files["classes"])
    Image.fromarray(as_u8(picture())).save(tmp_path / "in" / "pic.png")
    out = tmp_path / "site"
    runner = CliRunner()
    # Refusals write nothing: a count mismatch, a file that is not .lgi, an original of another size.
    bad = tmp_path / "in" / "bad.lgi"
    bad.write_bytes(b"not an lgi file")
    for args in ([str(enc), str(other), "--original", str(tmp_path / "in" / "pic.png")],
                 [str(bad)], [str(other), "--original", str(tmp_path / "in" / "pic.png")]):
        r = runner.invoke(web, [*args, "-o", str(out)])
        assert r.exit_code == 1 and not out.exists(), r.output
    r = runner.invoke(web, [str(enc), "--original", str(tmp_path / "in" / "pic.png"), "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["files"][0]["jpeg_bytes"] <= len(files["encoded"])
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "lgi.js", "pic.jpg", "pic.lgi"]
    r = runner.invoke(web, [str(other), "-o", str(out)])
    assert r.exit_code == 1 and "--force" in r.output and (out / "pic.jpg").exists()  # nothing lost
    r = runner.invoke(web, [str(enc), str(other), "-o", str(out), "--force"])
    assert r.exit_code == 0 and sorted(p.name for p in out.iterdir()) == ["classes.lgi", "index.html", "lgi.js", "pic.lgi"]
    handler = functools.partial(_QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        pg = browser.new_page()
        pg.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        pg.wait_for_function("[...document.querySelectorAll('lgi-img')].every(e => e.drawn || e.error)", timeout=60_000)
        assert pg.evaluate("[...document.querySelectorAll('lgi-img')].map(e => e.error)") == [None, None]
        pg.fill("#zoom", "2")
        pg.dispatch_event("#zoom", "input")
        pg.wait_for_function("document.querySelector('lgi-img').drawn[0] === 160", timeout=60_000)
        pg.close()
    finally:
        server.shutdown()


def test_lgi_web_keeps_the_old_site_when_the_new_one_cannot_be_put_in_place(tmp_path, files, monkeypatch):
    from pathlib import Path as _Path

    src = tmp_path / "pic.lgi"
    src.write_bytes(files["encoded"])
    out = tmp_path / "site"
    assert CliRunner().invoke(web, [str(src), "-o", str(out)]).exit_code == 0
    before = sorted((p.name, p.read_bytes()) for p in out.iterdir())
    rename = _Path.rename

    def failing(self, target):
        if _Path(target) == out and self.name.startswith(".lgi-web-"):  # the new site cannot move into place
            raise OSError("disk full")
        return rename(self, target)

    monkeypatch.setattr(_Path, "rename", failing)
    r = CliRunner().invoke(web, [str(src), "-o", str(out), "--force"])
    assert r.exit_code != 0
    monkeypatch.undo()
    assert sorted((p.name, p.read_bytes()) for p in out.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pic.lgi", "site"]  # no temporary folder left
