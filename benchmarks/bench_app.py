"""Page load time of `lgi app` in headless Chromium (the system's, through Playwright).

    flock /tmp/lgi-bench.lock python benchmarks/bench_app.py [--repeats 10]

Serves the page on a free local port, opens it once to warm up, then times `page.goto` until the
Encode button is visible, in a fresh browser context each time (no cache). Writes
benchmarks/results/app_page_load.csv (one row per repeat) and prints the median.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import socket
import statistics
import sys
import time

from _common import RESULTS, cpu_name


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    import gradio
    from playwright.sync_api import sync_playwright

    from lgi.app import build_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    demo = build_app()
    build_s = time.perf_counter() - t0
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        for i in range(args.repeats + 1):
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            t0 = time.perf_counter()
            page.goto(url)
            page.locator("#encode").wait_for()
            if i > 0:  # the first is the warm-up
                times.append(time.perf_counter() - t0)
            ctx.close()
        version = browser.version
        browser.close()
    demo.close()
    out = RESULTS / "app_page_load.csv"
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["repeat", "load_s", "build_app_s", "gradio", "chromium", "cpu"])
        for i, t in enumerate(times):
            w.writerow([i, f"{t:.4f}", f"{build_s:.3f}", gradio.__version__, version, cpu_name()])
    print(f"page load (goto until the Encode button shows), {len(times)} repeats: median "
          f"{statistics.median(times):.2f} s, min {min(times):.2f} s, max {max(times):.2f} s; "
          f"build_app {build_s:.2f} s; wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
