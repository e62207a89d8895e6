"""Screenshot a running demo with Debian's headless Chromium and check that the page rendered the app.

    python demo/check_screenshot.py --url http://127.0.0.1:7860 --output demo.png

Checks (exit 0 when all hold, 1 otherwise, each failure printed): Chromium produced a PNG of the requested size; the
page is not blank (many distinct colours, visible contrast); and the DOM Chromium rendered (after the page's
JavaScript ran) holds the app's title and its "Classify" button. Exit 2 when Chromium is missing or the page does not
load.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

TITLE = "mlic_hf: multi-label image classification"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                  "--virtual-time-budget=15000", "--run-all-compositor-stages-before-draw"]


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError("no Chromium found: install Debian's chromium (apt-get install chromium)")


def run_chromium(url: str, extra: list[str], timeout: float) -> subprocess.CompletedProcess:
    command = [find_chromium(), *CHROMIUM_FLAGS, *extra, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def check(url: str, output: Path, width: int, height: int, timeout: float = 120) -> list[str]:
    """The failed checks (empty when the page rendered the app)."""
    import numpy as np
    from PIL import Image

    output.parent.mkdir(parents=True, exist_ok=True)
    run_chromium(url, [f"--screenshot={output}", f"--window-size={width},{height}"], timeout)
    if not output.is_file():
        return [f"Chromium wrote no screenshot to {output}"]
    failures = []
    image = Image.open(output).convert("RGB")
    if image.size != (width, height):
        failures.append(f"screenshot is {image.size}, expected {(width, height)}")
    pixels = np.asarray(image)
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    if colours < 50 or float(pixels.std()) < 5:
        failures.append(f"the page looks blank ({colours} colours, std {pixels.std():.1f})")
    dom = run_chromium(url, ["--dump-dom"], timeout).stdout
    for needle in (TITLE, "Classify"):
        if needle not in dom:
            failures.append(f"the rendered page has no {needle!r}")
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:7860")
    parser.add_argument("--output", type=Path, default=Path("demo_screenshot.png"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args(argv)
    try:
        failures = check(args.url, args.output, args.width, args.height)
    except (FileNotFoundError, subprocess.TimeoutExpired) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for failure in failures:
        print(f"FAIL: {failure}")
    if not failures:
        print(f"OK: {args.url} rendered the app ({args.output})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
