"""Running a deal: its legs against its DealVault, step by step, each leg recorded before it is sent.

    from dealvault.run import run_deal, Venues
    report = run_deal(spec, w3=w3, operator=signer, owner=owner_signer, record=rec, venues=venues)

Where things are:

=============  ==================================================================================
``deal``       :class:`DealRun` (a deal's state while it runs: the vault reading, the legs sent),
               :func:`run_deal` (preflight, pending legs, the steps, the report), :func:`run_leg`,
               :func:`read_status`
``steps``      the five steps by name: split, position, buy, monetize, close (``--until`` takes
               the number or the name)
``caps``       where a leg's caps are checked off-chain (the vault's parameters tightened by the
               spec; the math is :mod:`dealvault.vault.risk`)
``sender``     where a leg is sent: simulate, sign, persist, broadcast, wait, LegCompleted, record;
               pending legs reconciled (never sent twice)
``twap``       the TWAP window before a buy or a sell (the local clock moved, or waited for)
``history``    what the vault's logs say was done (legs, USDTz bought)
``venues``     the deal's addresses (:class:`Venues`) and the lens that reads its vault
``chain``      the node: network identity, RPC failures (exit 5), batches, the local clock
``errors``     how a run stops: DealError and its kinds, each with its ExitCode
``status``     the watch flags and rebuilding a record from the logs (``ape run deal_status``)
``report``     the report, for people (rich) and machines (JSON)
=============  ==================================================================================

Every leg: read the lens's ``riskView(vault)`` and ``params(vault)`` (one round trip); check the
same caps off-chain (fail fast, nothing sent); simulate (``eth_call``); sign locally; persist raw
tx + nonce + hash in the record BEFORE broadcasting; broadcast; wait for the receipt (and
confirmations); check ``LegCompleted`` (``legSeq`` = the previous one + 1); record the snapshot.
A failed tranche puts the vault in HOLDING: the run stops with exit code 3 and a message listing
the safe options. Reverts are decoded by name (:func:`dealvault.vault.explain`).

The chain is the source of truth: each step decides from the vault's state and its
``LegCompleted`` logs what is left to do, so a re-run (``resume=True``) continues from the first
leg not done, after the record's pending legs are reconciled.

Money: ints (wei, 6-dp units, 8-dp USD) and Decimal; never float.
"""

from __future__ import annotations

from dealvault.run.chain import check_network, genesis_hash, rpc_guard
from dealvault.run.deal import (
    DEFAULT_MAX_WAIT,
    HOLDING_OPTIONS,
    DealReport,
    DealRun,
    build_report,
    read_status,
    run_deal,
    run_leg,
)
from dealvault.run.errors import (
    EXIT_CHAIN,
    EXIT_ERROR,
    EXIT_HOLDING,
    EXIT_INPUT,
    EXIT_OK,
    EXIT_OWNER_ACTION,
    EXIT_REFUSED,
    CapError,
    ChainError,
    DealError,
    InputError,
    LegRejected,
    OwnerActionNeeded,
    WaitNeeded,
)
from dealvault.run.sender import REDEEM_MIN_GAS, LegResult
from dealvault.run.steps import STEPS, parse_until
from dealvault.run.venues import Venues, read_params, read_risk, read_twap, register_lens
from dealvault.vault import Leg, Phase, lens_abi, vault_abi

__all__ = [
    "PHASES",
    "LEGS",
    "STEPS",
    "EXIT_OK",
    "EXIT_ERROR",
    "EXIT_INPUT",
    "EXIT_HOLDING",
    "EXIT_OWNER_ACTION",
    "EXIT_CHAIN",
    "EXIT_REFUSED",
    "DealError",
    "InputError",
    "CapError",
    "LegRejected",
    "OwnerActionNeeded",
    "WaitNeeded",
    "ChainError",
    "Venues",
    "LegResult",
    "DealReport",
    "DealRun",
    "run_deal",
    "run_leg",
    "build_report",
    "read_status",
    "read_risk",
    "read_params",
    "read_twap",
    "check_network",
    "genesis_hash",
    "rpc_guard",
    "parse_until",
    "vault_abi",
    "lens_abi",
    "register_lens",
    "HOLDING_OPTIONS",
    "DEFAULT_MAX_WAIT",
    "REDEEM_MIN_GAS",
]

#: The phase and leg names by number, from dealvault.vault.enums (kept for older callers).
PHASES: tuple[str, ...] = tuple(p.name for p in Phase)
LEGS: tuple[str, ...] = tuple(leg.name for leg in Leg)
