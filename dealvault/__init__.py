"""DealVault: on-chain risk caps for a discount-arbitrage deal on Chain 138.

The Python harness, usable without the CLI::

    from dealvault import load_spec, run_deal, run_leg, read_status, open_record, deploy_vault

- the deal spec (``load_spec``, ``DealSpec``, ``SpecError``),
- the deal record, the audit trail (``open_record``, ``Record``),
- the orchestrator (``run_deal``, ``run_leg``, ``read_status``, ``DealReport``; the vault's views
  through its DealVaultLens: ``read_risk``, ``read_params``, ``register_lens``),
- the deploy pipeline (``deploy_vault``, ``verify_deployment``),
- the Chain 138 market kit (``start_kit``, ``install_mirror``, ``deploy_overlay``, ``fund``).

Money math is integer or ``Decimal``; never float. Names are imported lazily, so
``import dealvault`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_spec": "spec",
    "parse_spec": "spec",
    "DealSpec": "spec",
    "SpecError": "spec",
    "open_record": "record",
    "Record": "record",
    "run_deal": "run",
    "run_leg": "run",
    "read_status": "run",
    "read_risk": "run",
    "read_params": "run",
    "register_lens": "run",
    "DealReport": "run",
    "deploy_vault": "deploy",
    "verify_deployment": "deploy",
    "start_kit": "kit",
    "install_mirror": "kit.mirror",
    "deploy_overlay": "kit.overlay",
    "fund": "kit.funding",
}

__all__ = [
    "load_spec",
    "parse_spec",
    "DealSpec",
    "SpecError",
    "open_record",
    "Record",
    "run_deal",
    "run_leg",
    "read_status",
    "read_risk",
    "read_params",
    "register_lens",
    "DealReport",
    "deploy_vault",
    "verify_deployment",
    "start_kit",
    "install_mirror",
    "deploy_overlay",
    "fund",
]



def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dealvault' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
