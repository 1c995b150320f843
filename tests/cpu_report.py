"""Where a test run's CPU goes: ``-p tests.cpu_report`` with ``DEALVAULT_CPU_REPORT=<file>`` appends
one line per test, ``<nodeid> TAB <cpu s> TAB <wall s>``, to ``<file>`` (``<file>.<xdist worker>``
under xdist). CPU is this process's user + system time over the test's setup, call and teardown,
plus its children's: those reaped during the test (``RUSAGE_CHILDREN``) and the live descendants'
growth (``/proc``: the session's anvil, a kit's node, a guard the test started). Linux only.

    PYTHONPATH=. DEALVAULT_CPU_REPORT=/tmp/cpu.tsv ape test tests/unit -n 2 --dist loadfile -p tests.cpu_report
    python -m tests.cpu_report /tmp/cpu.tsv*     # seconds per test file, the largest first
"""

from __future__ import annotations

import os
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

_TICK = os.sysconf("SC_CLK_TCK")


def _descendants_cpu(root: int) -> dict[int, float]:
    """pid -> user + system seconds of every live descendant of ``root`` (from /proc)."""
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        parent[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    out: dict[int, float] = {}
    for pid, seconds in cpu.items():
        p = parent.get(pid)
        while p and p != root:
            p = parent.get(p)
        if p == root and pid != root:
            out[pid] = seconds
    return out


def _own_cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    out = os.environ.get("DEALVAULT_CPU_REPORT")
    if not out:
        yield
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    path = Path(f"{out}.{worker}" if worker else out)
    me = os.getpid()
    own0, live0, t0 = _own_cpu(), _descendants_cpu(me), time.monotonic()
    yield
    own1, live1, wall = _own_cpu(), _descendants_cpu(me), time.monotonic() - t0
    grown = sum(c - live0.get(pid, 0.0) for pid, c in live1.items())
    with path.open("a") as f:
        f.write(f"{item.nodeid}\t{own1 - own0 + grown:.2f}\t{wall:.2f}\n")


def per_file(paths: list[str]) -> list[tuple[str, float, float, int]]:
    """(test file, CPU s, wall s, tests) from report files, the most CPU first."""
    acc: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for p in paths:
        for line in Path(p).read_text().splitlines():
            nodeid, cpu, wall = line.split("\t")
            a = acc[nodeid.split("::")[0]]
            a[0] += float(cpu)
            a[1] += float(wall)
            a[2] += 1
    return sorted(((k, v[0], v[1], int(v[2])) for k, v in acc.items()), key=lambda r: -r[1])


if __name__ == "__main__":
    rows = per_file(sys.argv[1:])
    for name, cpu, wall, n in rows:
        print(f"{cpu:8.1f} s CPU {wall:8.1f} s wall {n:4d} tests  {name}")
    print(f"{sum(r[1] for r in rows):8.1f} s CPU {sum(r[2] for r in rows):8.1f} s wall {sum(r[3] for r in rows):4d} tests  total")
