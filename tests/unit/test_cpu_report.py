"""tests/cpu_report.py, the per-test CPU report: a test that computes, one whose child process
computes, one that sleeps; the report charges the first two and not the third, and sums per file."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.cpu_report import per_file

ROOT = Path(__file__).resolve().parents[2]


def test_the_report_charges_computing_and_children_not_sleeping(tmp_path):
    (tmp_path / "test_work.py").write_text(textwrap.dedent("""
        import subprocess, sys, time
        def test_compute():
            sum(range(15_000_000))
        def test_child_computes():
            subprocess.run([sys.executable, "-c", "sum(range(15_000_000))"], check=True)
        def test_sleep():
            time.sleep(0.5)
    """))
    report = tmp_path / "cpu.tsv"
    env = {**os.environ, "DEALVAULT_CPU_REPORT": str(report), "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_XDIST_WORKER", None)
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.cpu_report", "-p", "no:ape_test",
                        "-p", "no:cacheprovider", "test_work.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=120, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = {n.split("::")[1]: (float(c), float(w)) for n, c, w in (line.split("\t") for line in report.read_text().splitlines())}
    assert set(rows) == {"test_compute", "test_child_computes", "test_sleep"}
    assert rows["test_compute"][0] > 0.1 and rows["test_child_computes"][0] > 0.1
    assert rows["test_sleep"][0] < 0.1 and rows["test_sleep"][1] > 0.4  # half a second of wall, no CPU
    [(name, cpu, wall, n)] = per_file([str(report)])
    assert name == "test_work.py" and n == 3 and cpu == sum(c for c, _ in rows.values())
