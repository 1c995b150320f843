"""Everything about talking to the vault, in one place:

- ``enums``: Phase, Leg, OracleStatus, Param and the phase masks (the leg x phase table);
- ``params``: each risk parameter once (unit, hard limit, floor, which way is tighter);
- ``risk``: the cap math, RiskLib's integer arithmetic in Python;
- ``client``: VaultClient (typed reads through the lens in one round trip, events) and the
  dataclasses RiskView, Params, Twap, Setup, Snapshot;
- ``revert``: revert data in words (the vault's custom errors, Aave's numeric codes);
- ``abi``: the vault's and the lens's ABIs.
"""

from __future__ import annotations

from dealvault.vault.abi import core_abi, lens_abi, merged_abi, vault_abi
from dealvault.vault.client import Event, Params, Reading, RiskView, Setup, Snapshot, Twap, VaultClient, Venues
from dealvault.vault.enums import LEG_PHASES, RISK_ADDING, Leg, OracleStatus, Param, Phase, Phases, rung_number
from dealvault.vault.revert import decode_error, explain, reason_text, revert_data

__all__ = [
    "VaultClient", "RiskView", "Params", "Twap", "Setup", "Venues", "Snapshot", "Event", "Reading",
    "Phase", "Leg", "OracleStatus", "Param", "Phases", "LEG_PHASES", "RISK_ADDING", "rung_number",
    "vault_abi", "lens_abi", "core_abi", "merged_abi", "decode_error", "explain", "reason_text", "revert_data",
]
