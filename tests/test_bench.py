"""bench/run.py, where the speed claims come from, runs end to end at smoke size and writes its report."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow   # end to end: seconds per test (selected with -m slow, run by default)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bench/run.py measures peak RSS with GNU time "
                    "(/usr/bin/time -f %M) and reads the load average: Linux only")
def test_bench_quick_writes_a_report(tmp_path):
    report, raw = tmp_path / "benchmarks.md", tmp_path / "raw.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--output", str(report),
                           "--json", str(raw)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    text = report.read_text()
    assert "## Ratios (lower is better)" in text and "## Absolute figures" in text and "cores" in text
    assert "null sink" in text and "cache on / --no-cache" in text and "ms round trip" in text
    assert "resumable_upload" in text and "min-max" in text
    assert "raw sendfile POST" in text and "stat-and-print floor" in text and "range over pairs" in text
    assert figures_are_limits(text)
    figures = json.loads(raw.read_text())
    assert figures["batch"]["cache_hit_requests"] == 0
    assert figures["cache"]["entries_after"] == figures["cache"]["cached"] + figures["cache"]["new"]
    # peak RSS is the child's own (GNU time), far below the SDK that holds the whole file in memory
    assert 0 < figures["big"]["ours"]["peak_rss_mib"] < figures["big"]["sdk"]["peak_rss_mib"]
    assert figures["probe"]["probe"]["median"] > 0 and figures["oss_resumable"]["ours"]["median"] > 0
    assert figures["hits"]["requests"] == 0 and figures["sink"]["sendfile"]["median"] > 0


def figures_are_limits(text: str) -> bool:
    """The rows measured against a limit say so (the README quotes them)."""
    rows = [line for line in text.splitlines() if line.startswith("| ") and "| limit |" in line]
    return len(rows) == 6
