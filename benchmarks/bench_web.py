"""lgi.js in headless Chromium (issue 43; docs/web.md): parse, render and module size against the goals.

    flock /tmp/bench.lock python benchmarks/bench_web.py --kodak DIR [--clic FILE.lgi...]

``--kodak``: a folder of the encoder's Kodak files at 0.5 bpp (``*_0.5.lgi``, e.g. from
``bench_encoder.py run --keep DIR``); ``--clic``: 2-megapixel CLIC files drawn 3840 pixels wide (4K; the height keeps the photo's aspect). In one page of the
system's Chromium (software WebGL: the renderer string is recorded) each file is parsed and priced (``prepare``:
container, entropy decoding, dequantization, the budget) and drawn at its stored size with the CPU renderer and
with WebGL2, timed as the median of warm repeats; the native renderer (``lgi.decode``, the Python decoder, 2 cores)
draws the same files in the same run as the peer. Writes results/web_decode.csv and .png.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, cpu_name, write_csv  # noqa: E402

GOALS_MS = {"parse": 10.0, "render_768x512": 30.0, "render_4k": 500.0}
GOAL_GZ_BYTES = 60_000

TIMER = """async ([name, options, repeats]) => {
  const m = await import('/lgi.js');
  const bytes = new Uint8Array(await (await fetch('/' + name)).arrayBuffer());
  const times = {parse: [], cpu: [], webgl: []};
  let plan = null;
  for (let i = 0; i < repeats + 1; i++) {            // the first round warms the JIT and is dropped
    const t0 = performance.now(); plan = m.prepare(bytes, options); const t1 = performance.now();
    if (i) times.parse.push(t1 - t0);
  }
  for (const be of ['cpu', 'webgl']) {
    const n = be === 'webgl' ? Math.max(1, Math.min(repeats, 3)) : repeats;
    for (let i = 0; i < n + 1; i++) {
      const t0 = performance.now();
      const px = be === 'cpu' ? m.renderCpu(plan) : m.renderWebgl(plan);
      const t1 = performance.now();
      if (px === null) { times[be] = null; break; }
      if (i) times[be].push(t1 - t0);
    }
  }
  times.cores = [];                                   // decodeAsync: parse, budget, CPU draw on every core
  for (let i = 0; i < repeats + 1; i++) {
    const t0 = performance.now(); await m.decodeAsync(bytes, {...options, backend: 'cpu'}); const t1 = performance.now();
    if (i) times.cores.push(t1 - t0);
  }
  return {times, cores: navigator.hardwareConcurrency, width: plan.width, height: plan.height, gaussians: plan.header.gaussians,
          intersections: plan.cost.intersections, bytes: bytes.length};
}"""


def median(xs):
    return statistics.median(xs) if xs else float("nan")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kodak", type=Path, required=True, help="folder of Kodak .lgi files at 0.5 bpp")
    ap.add_argument("--clic", type=Path, nargs="*", default=[], help="2 MP .lgi files drawn 3840 pixels wide")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS / "web_decode.csv")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    import lgi
    from lgi.web_cli import module_source

    kodak = sorted(args.kodak.glob("*_0.5.lgi"))
    if not kodak:
        sys.exit(f"no *_0.5.lgi files in {args.kodak}")
    src = module_source()
    root = Path(tempfile.mkdtemp(prefix="bench-web-"))
    (root / "lgi.js").write_bytes(src)
    (root / "index.html").write_text("<!doctype html><meta charset=utf-8><title>bench</title>")
    jobs = [(p, {}, "kodak") for p in kodak] + [(p, {"width": 3840}, "clic-4k") for p in args.clic]
    for p, _, _ in jobs:
        shutil.copy(p, root / p.name)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    chromium = os.environ.get("LGI_CHROMIUM") or shutil.which("chromium")
    rows = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        renderer = page.evaluate("async () => (await import('/lgi.js')).webglRenderer()")
        version = browser.version
        for path, options, kind in jobs:
            reps = args.repeats if kind == "kodak" else 2
            r = page.evaluate(TIMER, [path.name, options, reps])
            data = path.read_bytes()
            native = []
            for _ in range(reps + 1):
                t0 = time.perf_counter()
                lgi.decode(data, width=options.get("width"))
                native.append(1000 * (time.perf_counter() - t0))
            t = r["times"]
            row = {"file": path.name, "kind": kind, "bytes": r["bytes"], "gaussians": r["gaussians"],
                   "width": r["width"], "height": r["height"], "intersections": r["intersections"],
                   "parse_ms": round(median(t["parse"]), 2), "cpu_ms": round(median(t["cpu"]), 1),
                   "cpu_all_cores_ms": round(median(t["cores"]), 1), "cores": r["cores"],
                   "webgl_ms": round(median(t["webgl"]), 1) if t["webgl"] else "",
                   "native_python_ms": round(median(native[1:]), 1), "webgl_renderer": renderer,
                   "chromium": version, "cpu": cpu_name()}
            rows.append(row)
            print(f"{path.name} {kind}: parse {row['parse_ms']} ms, cpu {row['cpu_ms']} ms, "
                  f"decodeAsync on {row['cores']} cores {row['cpu_all_cores_ms']} ms, webgl {row['webgl_ms']} ms, "
                  f"native (python) {row['native_python_ms']} ms", flush=True)
        browser.close()
    server.shutdown()
    shutil.rmtree(root, ignore_errors=True)
    gz = len(gzip.compress(src, 9))
    write_csv(args.out, rows)
    summary = {
        "parse (Kodak 0.5 bpp)": ([r["parse_ms"] for r in rows if r["kind"] == "kodak"], GOALS_MS["parse"]),
        "CPU 768x512": ([r["cpu_ms"] for r in rows if r["kind"] == "kodak"], GOALS_MS["render_768x512"]),
        "decodeAsync, all cores, 768x512": ([r["cpu_all_cores_ms"] for r in rows if r["kind"] == "kodak"],
                                            GOALS_MS["render_768x512"]),
        "WebGL 768x512": ([r["webgl_ms"] for r in rows if r["kind"] == "kodak" and r["webgl_ms"] != ""],
                          GOALS_MS["render_768x512"]),
        "native 768x512": ([r["native_python_ms"] for r in rows if r["kind"] == "kodak"], None),
        "CPU 4K (CLIC)": ([r["cpu_ms"] for r in rows if r["kind"] == "clic-4k"], GOALS_MS["render_4k"]),
        "decodeAsync, all cores, 4K (CLIC)": ([r["cpu_all_cores_ms"] for r in rows if r["kind"] == "clic-4k"],
                                              GOALS_MS["render_4k"]),
        "WebGL 4K (CLIC)": ([r["webgl_ms"] for r in rows if r["kind"] == "clic-4k" and r["webgl_ms"] != ""],
                            GOALS_MS["render_4k"]),
        "native 4K (CLIC)": ([r["native_python_ms"] for r in rows if r["kind"] == "clic-4k"], None),
    }
    print(f"renderer: {renderer}; Chromium {version}; {cpu_name()}")
    print(f"module: {len(src)} bytes, {gz} gzip-compressed (goal <= {GOAL_GZ_BYTES}, unminified)")
    for name, (vals, goal) in summary.items():
        if vals:
            verdict = "" if goal is None else (" reached" if median(vals) <= goal else " NOT reached")
            print(f"{name}: median {median(vals):.1f} ms, max {max(vals):.1f} ms over {len(vals)} files"
                  + ("" if goal is None else f" (goal <= {goal:g} ms:{verdict})"))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k, (v, _) in summary.items() if v]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(range(len(names)), [median(summary[k][0]) for k in names], color="C0")
    for i, k in enumerate(names):
        if summary[k][1] is not None:
            ax.hlines(summary[k][1], i - 0.4, i + 0.4, colors="C3")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("median ms (red: goal)")
    ax.set_title(f"lgi.js in headless Chromium ({'software WebGL' if renderer and 'SwiftShader' in renderer else renderer})")
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=120)


if __name__ == "__main__":
    main()
