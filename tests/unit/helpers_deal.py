"""A demo deal's vault on a kit (own anvil, chain id 138, mirror + overlay), for the tests that
drive deals: deployed through the real pipeline from deals/example.yaml, as `ape run deploy` does."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from dealvault.accounts import ape_account
from dealvault.deploy import AnvilSigner, deal_params, deploy_vault
from dealvault.kit import Kit, start_kit
from dealvault.kit.evm import revert, snapshot
from dealvault.paths import ROOT
from dealvault.run import Venues
from dealvault.signer import ApeAccountSigner
from dealvault.spec import load_spec
from dealvault.spec.netconfig import load_netconfig, write_local_config

EXAMPLE = ROOT / "deals" / "example.yaml"


def resolver(alias: str) -> str:
    """The address of an ape account alias (TEST::0 owner, TEST::1 operator, TEST::2 guardian)."""
    return str(ape_account(alias).address)


def signer(alias: str, w3) -> ApeAccountSigner:
    return ApeAccountSigner(ape_account(alias), w3)


def deploy_demo(kit, tmp: Path, spec_path: Path = EXAMPLE) -> SimpleNamespace:
    """Deploy the demo deal's vault (and its lens) on ``kit``; its spec, venues and deployment record."""
    cfg = write_local_config(kit.w3, kit.mirror, kit.overlay, tmp / "local" / "t.config.yaml")
    spec = load_spec(spec_path)
    res = deploy_vault(kit.w3, AnvilSigner(kit.w3, resolver("TEST::0")), load_netconfig(cfg), deal_params(spec, resolver),
                       deployments_dir=tmp / "dep", confirmations=1, poll=0.02)
    return SimpleNamespace(spec=spec, venues=Venues.from_deploy_record(res.record), record_file=res.record_path, tmp=tmp,
                           config=cfg)


@pytest.fixture(scope="module")
def kit() -> Iterator[Kit]:
    """A kit (anvil, mirror, overlay) for the module; import it into a test module to use it."""
    k = start_kit(overlay=True)
    yield k
    k.stop()


@contextlib.contextmanager
def reverted(w3) -> Iterator:
    """``w3``, its chain put back as it was when the block ends (an anvil snapshot)."""
    snap = snapshot(w3)
    try:
        yield w3
    finally:
        revert(w3, snap)


def reached_hook(p, gate: Path) -> str:
    """Wait until the process ``p`` stops at its DEALVAULT_TEST_HOOK (dealvault.run.sender); the hash it signed."""
    reached = Path(str(gate) + ".reached")
    deadline = time.monotonic() + 120
    while not reached.exists():
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return reached.read_text()
