"""The HTML page in a real headless browser: it renders from disk, offline, with its tables and plots.

Needs Chromium (Debian: ``apt-get install -y chromium``); skipped with that hint when it is not installed.
"""

from __future__ import annotations

import shutil
import subprocess

import imageio.v3 as iio
import numpy as np
import pytest

from apgbench.report import build_report
from apgbench.report.plots import method_colour
from apgbench.runner import run_benchmark

from .conftest import write_crafted, write_record

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium)"
)


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def page(tmp_path, config_dir, roots):
    root = tmp_path / "results"
    write_crafted(root)
    run_benchmark("synthetic-nuclei", "classic", results_root=root, limit=2, show_progress=False)
    result = build_report(root, tmp_path / "report", n_boot=100)
    return result.html


def test_page_renders_with_tables_and_plots(tmp_path, page):
    dom = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert '<table class="fig2">' in html and html.count('class="top1"') == 5  # 4 datasets, u20s with a tie
    for section in (
        "fig2",
        "fig1b",
        "fig3",
        "paper",
        "intervals",
        "thresholds",
        "paired",
        "resources",
        "qualitative",
    ):
        assert f'<section id="{section}">' in html
    # fig2 x2 domains, ranks, fig3, intervals, thresholds, qualitative (synthetic-nuclei: dsb is not prepared)
    assert html.count('<img src="data:image/png;base64,') == 2 + 1 + 1 + 1 + 1 + 1
    assert "APG − AIS" in html and "paper: 0.665" in html

    shot = tmp_path / "page.png"
    result = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,3000", page.as_uri())
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    pixels = iio.imread(shot)[..., :3].astype(int)
    assert pixels.shape[:2] == (3000, 1400)

    def count(hex_colour: str) -> int:
        rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
        return int((np.abs(pixels - rgb).max(axis=-1) <= 4).sum())

    assert count("#1f77b4") > 200  # the table's shaded best cells (CSS)
    # the opaque bar of cellpose-sam, best on dsb in the Fig. 2 plot: only there if the inline PNG was decoded
    assert count(method_colour("cellpose-sam")) > 500


def test_no_table_overflows_at_1400_px(tmp_path, config_dir):
    """Four domains, eleven methods and a variant with a long label: every table fits a 1400 px window."""
    root = tmp_path / "results"
    domains = {
        "synthetic-nuclei": "nuclei-fluo",
        "synthetic-cells": "cells-fluo",
        "synthetic-labelfree": "cells-labelfree",
        "synthetic-histo": "nuclei-histo",
    }
    methods = (
        "amg",
        "sam2-amg",
        "sam3",
        "cellsam",
        "cellpose3",
        "cellpose-sam",
        "ais",
        "apg-ref",
        "apg-bd",
        "apg",
        "classic",
    )
    for k, (dataset, domain) in enumerate(domains.items()):
        for j, method in enumerate(methods):
            write_record(root, dataset, method, domain, {"a": 0.3 + 0.05 * j, "b": 0.35 + 0.02 * k})
        write_record(root, dataset, "apg", domain, {"a": 0.5, "b": 0.5}, run_key="p-0123456789")
    page = build_report(root, tmp_path / "report", formats=("html",), n_boot=20).html
    probe = tmp_path / "probe.html"
    script = (
        "<script>document.body.setAttribute('data-overflow', [...document.querySelectorAll('.scroll')]"
        ".filter(d => d.scrollWidth > d.clientWidth + 1).map(d => d.closest('section').id).join(','));"
        "</script></body>"
    )
    probe.write_text(page.read_text().replace("</body>", script))
    dom = chromium(tmp_path, "--window-size=1400,3000", "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-overflow=""' in dom.stdout, dom.stdout[dom.stdout.index("<body") :][:300]
