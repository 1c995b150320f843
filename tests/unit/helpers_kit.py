"""The example deal's vault deployed on a kit by the deploy pipeline (shared by the unit tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dealvault.accounts import ape_account
from dealvault.deploy import AnvilSigner, deal_params, deploy_vault
from dealvault.kit import Kit, start_kit
from dealvault.paths import ROOT
from dealvault.run import Venues
from dealvault.spec import load_spec
from dealvault.spec.netconfig import load_netconfig, write_local_config

EXAMPLE = ROOT / "deals" / "example.yaml"


def resolver(alias: str) -> str:
    return str(ape_account(alias).address)


def deploy_example(kit: Any, tmp: Path) -> SimpleNamespace:
    """deals/example.yaml's vault and lens on ``kit`` (owner TEST::0): spec, venues, record_file, tmp."""
    cfg = write_local_config(kit.w3, kit.mirror, kit.overlay, tmp / "local" / "t.config.yaml")
    spec = load_spec(EXAMPLE)
    res = deploy_vault(kit.w3, AnvilSigner(kit.w3, resolver("TEST::0")), load_netconfig(cfg), deal_params(spec, resolver),
                       deployments_dir=tmp / "dep", confirmations=1, poll=0.02)
    return SimpleNamespace(spec=spec, venues=Venues.from_deploy_record(res.record), record_file=res.record_path, tmp=tmp)


@pytest.fixture(scope="module")
def kit() -> Iterator[Kit]:
    """A kit (anvil, mirror, overlay) for the module; import it into a test module to use it."""
    k = start_kit(overlay=True)
    yield k
    k.stop()
