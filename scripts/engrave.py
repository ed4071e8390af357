"""Engrave a MusicXML score to PNG for the docs: verovio (as the studio engraves it,
:func:`transcribe.studio.server.render_svg`) to SVG, Chromium (Playwright) to PNG.

    python scripts/engrave.py score.musicxml docs/score.png --page 1 --scale 1.5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def engrave(musicxml: Path, png: Path, page: int = 1, scale: float = 1.5, chromium: str = "/usr/bin/chromium") -> None:
    """Page ``page`` of the engraved score as a PNG (``scale`` device pixels per CSS pixel), on white."""
    from playwright.sync_api import sync_playwright

    from transcribe.files import atomic_write
    from transcribe.studio.server import render_svg

    pages = render_svg(musicxml)
    if not 1 <= page <= len(pages):
        raise ValueError(f"{musicxml}: page {page} of {len(pages)}")
    html = f"<html><body style='margin:0;background:white'><div id='s'>{pages[page - 1]}</div></body></html>"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            view = browser.new_page(viewport={"width": 1000, "height": 800}, device_scale_factor=scale)
            view.set_content(html)
            data = view.locator("#s > svg").screenshot(type="png")
            with atomic_write(png) as tmp:
                tmp.write_bytes(data)
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("musicxml", type=Path)
    ap.add_argument("png", type=Path)
    ap.add_argument("--page", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.5, help="device pixels per CSS pixel")
    ap.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium Playwright drives")
    args = ap.parse_args(argv)
    try:
        engrave(args.musicxml, args.png, args.page, args.scale, args.chromium)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
