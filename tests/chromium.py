"""Headless Chromium for the report tests: load a page with no network, report its script errors and how
each image decoded. Debian's `chromium` package (.ci/run installs it); tests skip where it is absent."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

# Registered first in <body>, so it sees every error of the page after it; on load it decodes every image
# and writes what it found into the DOM, which --dump-dom prints. An image that does not decode is 0 x 0.
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", e => window.__errors.push(String(e.message || e.type)));
window.addEventListener("load", () => {
  const images = [];
  for (const img of document.images) {
    let size = [0, 0];
    try {  // drawing decodes the whole image, synchronously (an async decode() may outlive --dump-dom)
      const canvas = document.createElement("canvas");
      canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
      canvas.getContext("2d").drawImage(img, 0, 0);
      canvas.getContext("2d").getImageData(0, 0, 1, 1);
      if (img.complete) size = [img.naturalWidth, img.naturalHeight];
    } catch (e) {}
    images.push([img.alt, ...size]);
  }
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({errors: window.__errors, images: images});
  document.body.appendChild(pre);
});
</script>"""

QUIET = [  # no network, no first-run work, a profile of its own
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("no chromium here (.ci/run installs Debian's chromium package)")
    return found


def _run(args: list[str], profile: str) -> str:
    cmd = [binary(), *QUIET, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


def probe(html: Path) -> dict:
    """{"errors": [script errors], "images": [[alt, width, height], ...]} of the page once loaded; an image
    that failed to decode has width and height 0. The page is probed from a copy with PROBE in it."""
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / html.name
        page.write_text(html.read_text(encoding="utf-8").replace("<body>", "<body>" + PROBE, 1), encoding="utf-8")
        dom = _run(["--virtual-time-budget=10000", "--dump-dom", page.as_uri()], str(Path(tmp) / "profile"))
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the page never finished loading"
    return json.loads(
        found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    )


def screenshot(html: Path, png: Path, size: str = "1400,3000") -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        _run([f"--window-size={size}", f"--screenshot={png}", html.as_uri()], str(Path(tmp) / "profile"))
    return png
