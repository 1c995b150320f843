"""The fuzzer runs on its own anvil (tests/fuzz/harness.py), with no ape fixture.

tests/conftest.py's autouse session fixture ``lens`` deploys a lens on ape's chain through ape's
``project`` / ``deployer`` fixtures, which do not exist under ``pytest -p no:ape_test``: it is
overridden here by a no-op (the harness deploys its own lens on its own chain). At the end of the
session the fuzzer's statistics (the attacker's gains, the loss budget, the timelock, the owner's
exit dry runs) are printed.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def lens():
    """No ape lens here: the harness deploys the fuzzer's own (see tests/fuzz/harness.py)."""
    return None


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    from .test_invariants import STATS

    if not STATS["sequences"]:
        return
    tr = terminalreporter
    tr.section("DealVault fuzz statistics")
    usd = lambda v: f"{v / 1e6:,.2f} USD"  # noqa: E731
    for k, v in STATS.items():
        tr.write_line(f"{k:38s} {usd(v) if k.endswith('_usd6') else v}")
