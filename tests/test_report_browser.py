"""The HTML report in a real headless browser: every image loads and nothing overflows a 1,280 px window.

Needs Chromium (Debian: ``apt-get install chromium``); skipped where it is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from conftest import fit_deep

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
# without these, Chromium keeps trying to reach Google's services, which this closed network refuses
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const overflow = document.documentElement.scrollWidth - window.innerWidth;
  document.title = `probe images=${images.length} broken=${broken} overflow=${overflow}`;
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium_without_overflow(tmp_path):
    run = fit_deep(tmp_path, {"unet3d": {"n_trials": 1, "max_epochs": 2, "min_epochs": 1, "iterations": 2,
                                         "widths": [8], "depths": [3], "batch_sizes": [2], "tta": False}})
    html = (run.folder / "report.html").read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    profile = tmp_path / "profile"
    common = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1600", "--virtual-time-budget=10000"]
    dom = subprocess.run([*common, "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120).stdout
    found = re.search(r"probe images=(\d+) broken=(\d+) overflow=(-?\d+)", dom)
    assert found, dom[:500]
    images, broken, overflow = map(int, found.groups())
    assert images >= 5 and broken == 0 and overflow <= 0
    shot = tmp_path / "report.png"
    subprocess.run([*common, f"--screenshot={shot}", (run.folder / "report.html").as_uri()], capture_output=True,
                   timeout=120, check=True)
    from PIL import Image

    assert Image.open(shot).size == (1280, 1600)
