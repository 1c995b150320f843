"""The deal orchestrator: runs a deal's legs against its DealVault, step 0 to step 4.

    from dealvault.run import run_deal, Venues
    report = run_deal(spec, w3=w3, operator=signer, owner=owner_signer, record=rec, venues=venues)

Steps (``--until STEP`` takes the number or the name):

====  ==========  =====================================================================
0     split       (owner funds the vault on local chains) -> ``split``
1     position    ``supply`` the working bucket as collateral -> ``borrow`` to the target LTV
2     buy         ``buy`` USDTz below par, sized so the price stays within the discount limit
3     monetize    the redemption ladder, tranche by tranche (``redeem``; or ``sell``)
4     close       ``repay`` the debt from the books -> ``close`` (PnL)
====  ==========  =====================================================================

Every leg: read the lens's ``riskView(vault)``; check the same caps off-chain with the numbers
(fail fast, nothing sent); simulate (``eth_call``); sign locally; persist raw tx + nonce + hash in
the record BEFORE broadcasting; broadcast; wait for the receipt (and confirmations); check
``LegCompleted`` (``legSeq`` = the previous one + 1); record the snapshot. A failed tranche puts
the vault in HOLDING: the run stops with exit code 3 and a message listing the safe options.

Views come from the chain's DealVaultLens (``Venues.lens``: the deployment record's lens, or the
network config's ``venues.lens``); the legs go to the vault with the whole vault ABI (IDealVault).

The buy needs the vault's TWAP observation (taken at ``split``) to be ``twapWindow`` old
(``lens.twap(vault, stable)``): on a local chain (the spec's network is local, or a dry run's fork)
the orchestrator advances the chain's clock (``evm_increaseTime`` + ``evm_mine``) and says so; on a
real network it waits until then, printing the wait, at most ``max_wait`` seconds (else it stops
with exit code 4, nothing sent: re-run with ``--resume`` once the time has come). A pair whose spot
price is more than ``max_slippage_bps`` above its TWAP refuses the buy before sending (exit 6),
naming both prices. Reverts are decoded by name from the vault's ABI (every custom error of
IDealVault: LossBudgetExceeded, PriceAboveTwap, TwapWindowShort, TrancheBelowMinimum, ...).

The chain is the source of truth: each step decides from the vault's state and its
``LegCompleted`` logs what is left to do, so a re-run (``resume=True``) continues from the first
leg not done. Pending legs of the record (signed or broadcast, not confirmed) are reconciled first:
a known hash is finalized from its receipt; an unknown hash whose nonce is unused is rebroadcast
from the same raw transaction; a nonce used by another transaction marks the leg failed. So a leg
is never sent twice.

Money: ints (wei, 6-dp units, 8-dp USD) and Decimal; never float.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from eth_utils import to_checksum_address
from web3 import Web3

from dealvault.record import DealLocked, Record, RecordError, open_record
from dealvault.signer import ImpersonatingSender, SignedTx, SignerError
from dealvault.spec import BPS, DealSpec, check_against_vault

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
    "read_status",
    "read_risk",
    "read_params",
    "read_twap",
    "check_network",
    "parse_until",
    "vault_abi",
    "lens_abi",
    "register_lens",
    "HOLDING_OPTIONS",
    "DEFAULT_MAX_WAIT",
    "REDEEM_MIN_GAS",
]

log = logging.getLogger("dealvault.run")

PHASES = ("FUNDED", "SPLIT", "WORKING", "POSITIONED", "MONETIZING", "HOLDING", "CLOSED")
LEGS = ("Split", "Supply", "Borrow", "Buy", "Redeem", "Sell", "Repay", "OwnerRepay", "AddCollateral",
        "WithdrawCollateral", "Deleverage", "Close", "Hold", "Resume", "Fund")
ORACLE = ("Fresh", "Stale", "Invalid", "Unread")  # Unread: a LegCompleted snapshot of a leg that read no marks
STEPS = {0: "split", 1: "position", 2: "buy", 3: "monetize", 4: "close"}

# phase masks (bit i = Phase i), from the IDealVault leg x phase table
_MASK = {
    "fund": 0x01, "split": 0x01, "supply": 0x1E, "borrow": 0x1C, "buy": 0x1C, "redeem": 0x38, "sell": 0x38,
    "repay": 0x3C, "close": 0x3E,
}
_RISK_ADDING = {"supply", "borrow", "buy"}
_NEEDS_FRESH = _RISK_ADDING | {"split"}  # split books the capital's value at the oracle price

# redeem reverts GasTooLow below this gasleft() at its check (DealVault.REDEEM_GAS: the desk's and
# the approves' fixed gas x 64/63 + what the leg needs after them); the transaction's gas limit
# must also cover the intrinsic gas and the leg's work before the check
REDEEM_MIN_GAS = 567_301
_GAS_FLOOR = {"redeem": REDEEM_MIN_GAS + 150_000}
DEFAULT_MAX_WAIT = 3_600  # seconds the orchestrator waits for the TWAP observation on a real network

EXIT_OK = 0
EXIT_ERROR = 1          # unexpected failure (a reverted leg, a bug): read the message and the record
EXIT_INPUT = 2          # bad input: spec, network, account, vault phase; nothing was sent
EXIT_HOLDING = 3        # a tranche failed: the vault is in HOLDING (safe options in the message)
EXIT_OWNER_ACTION = 4   # waiting for an owner action (fund, repay...: `ape run owner_tx`) or for time (the TWAP
                        # observation): nothing sent; re-run with --resume
EXIT_CHAIN = 5          # the chain could not be reached: the record is intact, re-run with --resume
EXIT_REFUSED = 6        # an off-chain cap check or the simulation refused a leg; nothing sent for it

HOLDING_OPTIONS = (
    "the vault is in HOLDING (a redemption tranche failed). Safe options:\n"
    "  1. owner resume (`ape run owner_tx resume`), then `ape run execute_deal --resume {deal}` to retry the ladder from rung 1;\n"
    "  2. sell USDTz on the router above the floor (risk-reducing, allowed in HOLDING);\n"
    "  3. deleverage (sell collateral to repay debt, the LTV may not rise);\n"
    "  4. owner repay with the owner's own stablecoin (`ape run owner_tx ownerRepay`);\n"
    "  5. repay and close with the remaining USDTz written off at cost (`--resume {deal}` runs step 4 once debt can be repaid)."
)


# --------------------------------------------------------------------------------------------
# errors


class DealError(RuntimeError):
    exit_code = EXIT_ERROR


class InputError(DealError):
    """Bad input (spec, network, account, vault phase); nothing was sent."""

    exit_code = EXIT_INPUT


class CapError(DealError):
    """An off-chain cap check refused the next leg (before anything was sent for it)."""

    exit_code = EXIT_REFUSED


class LegRejected(DealError):
    """The simulation (eth_call) of the next leg reverted; nothing was sent for it."""

    exit_code = EXIT_REFUSED


class OwnerActionNeeded(DealError):
    exit_code = EXIT_OWNER_ACTION


class WaitNeeded(OwnerActionNeeded):
    """The next leg needs time to pass (the TWAP observation) beyond the allowed wait; nothing was
    sent for it: re-run with --resume after the time given. Exit code 4, like an owner action."""


class ChainError(DealError):
    """RPC failure (connection refused, timeout, node stopped); the record is resumable."""

    exit_code = EXIT_CHAIN


# --------------------------------------------------------------------------------------------
# ABI / venues


_ABI_CACHE: list | None = None
_LENS_ABI_CACHE: list | None = None


def vault_abi() -> list:
    """The whole vault's ABI (IDealVault: the core's legs and the extension's functions at the one
    address), plus the few errors only the builds declare (SafeCast, SafeERC20), so every revert
    decodes by name."""
    global _ABI_CACHE
    if _ABI_CACHE is None:
        from dealvault.artifacts import own
        from dealvault.deploy import merged_abi

        extra = [x for c in ("DealVault", "DealVaultExtension") for x in own(c).abi if x.get("type") == "error"]
        _ABI_CACHE = merged_abi(own("IDealVault").abi, extra)
    return _ABI_CACHE


def lens_abi() -> list:
    """DealVaultLens's ABI (riskView, params, twap, stableOf... of any vault)."""
    global _LENS_ABI_CACHE
    if _LENS_ABI_CACHE is None:
        from dealvault.artifacts import own

        _LENS_ABI_CACHE = own("DealVaultLens").abi
    return _LENS_ABI_CACHE


# vault -> the lens its deal reads through (set by Venues with a lens, or register_lens)
_LENSES: dict[str, str] = {}


def register_lens(vault: str, lens: str) -> None:
    """Remember ``lens`` as the DealVaultLens to read ``vault`` through (read_risk's default)."""
    _LENSES[to_checksum_address(vault)] = to_checksum_address(lens)


def lens_for(vault: str, lens: str | None = None) -> str:
    if lens:
        return to_checksum_address(lens)
    found = _LENSES.get(to_checksum_address(vault))
    if found is None:
        raise InputError(f"no DealVaultLens known for the vault {vault}: the deployment record (lens.address) or the "
                         "network config (venues.lens) names it; pass it (lens=...)")
    return found


_ROUTER_ABI = [
    {"type": "function", "name": "getAmountsOut", "stateMutability": "view",
     "inputs": [{"name": "amountIn", "type": "uint256"}, {"name": "path", "type": "address[]"}],
     "outputs": [{"name": "amounts", "type": "uint256[]"}]},
]


@dataclass(frozen=True)
class Venues:
    """Addresses a deal's legs need: the vault and what it was built with."""

    vault: str
    weth9: str
    weth10: str
    cusdt: str
    cusdc: str
    usdtz: str
    router: str
    pool: str
    desk: str
    feed: str
    deploy_block: int = 0
    buckets: tuple[int, int, int] | None = None  # the vault's (core, working, opportunistic) bps if known
    lens: str | None = None        # the DealVaultLens the deal reads its views through
    lens_code_hash: str | None = None  # its runtime's keccak as the deployment record has it (checked before a run)

    def __post_init__(self) -> None:
        if self.lens:
            register_lens(self.vault, self.lens)

    def wrapper(self, spec: DealSpec) -> str:
        return self.weth9 if spec.wrapper == "WETH9" else self.weth10

    def stable(self, spec: DealSpec) -> str:
        return self.cusdt if spec.stablecoin == "cUSDT" else self.cusdc

    @classmethod
    def from_deploy_record(cls, rec: Mapping[str, Any], *, lens: str | None = None) -> "Venues":
        """From a deployment record (``deployments/<network>/<deal>.json`` or DeployResult.record);
        the lens is the record's (``lens.address``) unless ``lens`` is given (the network config's)."""
        c = rec["constructor_args"]["decoded"]
        rec_lens = rec.get("lens") or {}
        code_hash = rec_lens.get("runtime_bytecode_hash") if not lens or lens == rec_lens.get("address") else None
        lens = lens or rec_lens.get("address")
        risk = c.get("risk") or {}
        buckets = None
        if all(k in risk for k in ("coreBps", "workingBps", "opportunisticBps")):
            buckets = (int(risk["coreBps"]), int(risk["workingBps"]), int(risk["opportunisticBps"]))
        cs = to_checksum_address
        return cls(vault=cs(rec["address"]), weth9=cs(c["weth9"]), weth10=cs(c["weth10"]), cusdt=cs(c["cusdt"]),
                   cusdc=cs(c["cusdc"]), usdtz=cs(c["usdtz"]), router=cs(c["router"]), pool=cs(c["pool"]),
                   desk=cs(c["desk"]), feed=cs(c["ethUsdFeed"]), deploy_block=int(rec.get("block_number") or 0),
                   buckets=buckets, lens=cs(lens) if lens else None, lens_code_hash=code_hash)

    @classmethod
    def from_netconfig(cls, net: Any, vault: str, *, pool: str | None = None, deploy_block: int = 0,
                       lens: str | None = None) -> "Venues":
        """From a network config (a spec with a vault address): the lens is the config's
        ``venues.lens`` unless given."""
        t = net.tokens
        p = pool or net.venues.pool
        missing = [k for k, v in (("usdtz", t["usdtz"].address), ("pool", p), ("router", net.venues.router), ("desk", net.venues.desk)) if v is None]
        if missing:
            raise InputError(f"network config {getattr(net, 'path', '')}: {', '.join(missing)} unknown (null); the deal needs them")
        cs = to_checksum_address
        return cls(vault=cs(vault), weth9=cs(t["weth9"].address), weth10=cs(t["weth10"].address), cusdt=cs(t["cusdt"].address),
                   cusdc=cs(t["cusdc"].address), usdtz=cs(t["usdtz"].address), router=cs(net.venues.router), pool=cs(p),
                   desk=cs(net.venues.desk), feed=cs(net.feed.address), deploy_block=deploy_block,
                   lens=cs(lens or net.venues.lens) if (lens or getattr(net.venues, "lens", None)) else None)


# --------------------------------------------------------------------------------------------
# results


@dataclass
class LegResult:
    step: int
    leg: str
    args: dict[str, Any]
    sender: str
    tx_hash: str | None = None
    nonce: int | None = None
    leg_seq: int | None = None
    block_number: int | None = None
    gas_used: int | None = None
    effective_gas_price: int | None = None
    snapshot: dict[str, Any] | None = None       # LegCompleted snapshot
    risk_before: dict[str, Any] | None = None
    risk_after: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    status: str = "confirmed"  # confirmed | reverted | simulated
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        from dealvault.run.report import jsonable

        return jsonable({k: v for k, v in self.__dict__.items() if k not in ("risk_before",)})


@dataclass
class DealReport:
    deal_id: str
    status: str                    # completed | holding | stopped | owner-action | waiting | dry-run
    exit_code: int
    message: str
    vault: str
    network: str
    chain_id: int
    legs: list[LegResult]          # legs sent (or simulated) by this run
    all_legs: list[dict[str, Any]]  # the record's confirmed legs of the deal (audit trail)
    risk: dict[str, Any]           # the vault's riskView at the end
    tranches: list[dict[str, Any]]
    stats: dict[str, Any]
    spec: DealSpec | None = None
    dry_run: bool = False
    seconds: float = 0.0
    eth_price: int = 0             # 8 dp, at the end

    def to_json(self) -> dict[str, Any]:
        from dealvault.run.report import report_json

        return report_json(self)


# --------------------------------------------------------------------------------------------
# reading


def _contract(w3: Web3, address: str, abi: str = "vault"):
    # building a Contract from an ABI costs ~5-10 ms of Python (bench/harness.py) and read_risk
    # runs it twice a leg: cache it on the Web3 instance (same lifetime, no chain state)
    cache = w3.__dict__.setdefault("_dealvault_contracts", {})
    address = to_checksum_address(address)
    c = cache.get((address, abi))
    if c is None:
        c = cache[(address, abi)] = w3.eth.contract(address=address, abi=vault_abi() if abi == "vault" else lens_abi())
    return c


def _lens(w3: Web3, vault: str, lens: str | None = None):
    """The lens contract ``vault`` is read through (see :func:`lens_for`)."""
    return _contract(w3, lens_for(vault, lens), "lens")


def _struct(abi_outputs: Sequence[Mapping[str, Any]], value: Any) -> dict[str, Any]:
    comps = abi_outputs[0]["components"] if len(abi_outputs) == 1 and "components" in abi_outputs[0] else abi_outputs
    if isinstance(value, Mapping):
        return dict(value)
    return {c["name"]: v for c, v in zip(comps, value)}


def _named(d: dict[str, Any]) -> dict[str, Any]:
    out = dict(d)
    if "phase" in out:
        out["phaseName"] = PHASES[int(out["phase"])]
    if "phaseBeforeHolding" in out:
        out["phaseBeforeHoldingName"] = PHASES[int(out["phaseBeforeHolding"])]
    if "oracleStatus" in out:
        out["oracleStatusName"] = ORACLE[int(out["oracleStatus"])]
    return out


def _lens_outputs(fn: str) -> list:
    return [x for x in lens_abi() if x.get("type") == "function" and x.get("name") == fn][0]["outputs"]


def read_risk(w3: Web3, vault: str, block: Any = "latest", *, lens: str | None = None) -> dict[str, Any]:
    """The vault's risk view (``lens.riskView(vault)``) as a dict keyed by the Solidity field names
    (+ ``phaseName``...). ``lens``: the DealVaultLens to read through (default: the one its
    Venues named, see :func:`register_lens`)."""
    fn = _lens(w3, vault, lens).functions.riskView(to_checksum_address(vault))
    with _rpc_guard("riskView"):
        return _named(_struct(_lens_outputs("riskView"), fn.call(block_identifier=block)))


def read_params(w3: Web3, vault: str, *, lens: str | None = None) -> dict[str, Any]:
    """``lens.params(vault)``: the risk parameters now, keyed like IDealVault.RiskParams (rungs a list)."""
    fn = _lens(w3, vault, lens).functions.params(to_checksum_address(vault))
    with _rpc_guard("params"):
        p = _struct(_lens_outputs("params"), fn.call())
    return {k: ([int(x) for x in v] if k == "rungs" else int(v)) for k, v in p.items()}


def read_twap(w3: Web3, vault: str, stable: str, *, lens: str | None = None) -> dict[str, int]:
    """``lens.twap(vault, stable)``: spotE6, twapE6, observedAt, readyAt, spotX112, twapX112."""
    fn = _lens(w3, vault, lens).functions.twap(to_checksum_address(vault), to_checksum_address(stable))
    with _rpc_guard("twap"):
        return {k: int(v) for k, v in _struct(_lens_outputs("twap"), fn.call()).items()}


def _onchain_params(w3: Web3, vault: str, spec: DealSpec, venues: Venues) -> dict[str, Any]:
    return read_params(w3, vault, lens=venues.lens)


@contextlib.contextmanager
def _rpc_guard(what: str) -> Iterator[None]:
    import requests

    try:
        yield
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError, TimeoutError) as exc:
        raise ChainError(f"{what}: the chain could not be reached ({type(exc).__name__}: {str(exc)[:200]}); "
                         "the deal record is intact: re-run with --resume once the node is back") from exc
    except Exception as exc:  # web3's TimeExhausted
        if type(exc).__name__ == "TimeExhausted":
            raise ChainError(f"{what}: timed out waiting for the chain ({exc}); re-run with --resume") from exc
        raise


def genesis_hash(w3: Web3) -> str:
    with _rpc_guard("eth_getBlockByNumber(0)"):
        return "0x" + bytes(w3.eth.get_block(0)["hash"]).hex()


def check_network(w3: Web3, spec: DealSpec, *, mainnet_genesis: str | None = None, recorded_genesis: str | None = None) -> dict[str, Any]:
    """Chain id + genesis hash against the spec's network; raises InputError naming both values.

    ``mainnet_genesis``: Chain 138 mainnet's pinned block 0 hash (from the network config): a
    local spec refuses it (a mirror is never mainnet) and a mainnet spec requires it when the spec
    pins none. ``recorded_genesis``: the genesis the deal record was made on (resume)."""
    with _rpc_guard("eth_chainId"):
        chain_id = int(w3.eth.chain_id)
    genesis = genesis_hash(w3)
    net = spec.network
    errors = net.identity_errors(chain_id, genesis)
    if not errors:
        if net.local and mainnet_genesis and genesis == mainnet_genesis.lower():
            errors.append(f"network: the spec's network {net.name} is local, but this node's genesis {genesis} is Chain 138 mainnet's")
        if not net.local and net.genesis_hash is None:
            if not mainnet_genesis:
                errors.append(f"network: {net.name} is not local and no genesis hash is pinned (spec network.genesis_hash or the "
                              f"network config); the node reports {genesis}: pin it after checking it independently")
            elif genesis != mainnet_genesis.lower():
                errors.append(f"network: genesis hash is {genesis}, the network config pins {mainnet_genesis} ({net.name})")
    if recorded_genesis and recorded_genesis.lower() != genesis:
        errors.append(f"network: the deal record was made on the chain with genesis {recorded_genesis}, this node's is {genesis}")
    if errors:
        raise InputError("wrong network, nothing sent:\n  - " + "\n  - ".join(errors))
    return {"chain_id": chain_id, "genesis_hash": genesis}


def parse_until(until: Any) -> int | None:
    if until is None:
        return None
    if isinstance(until, int) and not isinstance(until, bool):
        n = until
    else:
        s = str(until).strip().lower()
        names = {v: k for k, v in STEPS.items()}
        if s in names:
            n = names[s]
        elif s.isdigit():
            n = int(s)
        else:
            raise InputError(f"--until {until!r}: allowed: 0..4 or {' | '.join(STEPS.values())}")
    if n not in STEPS:
        raise InputError(f"--until {until!r}: allowed: 0..4 or {' | '.join(STEPS.values())}")
    return n


# --------------------------------------------------------------------------------------------
# the run


def _test_hook(point: str, tx_hash: str, count: int) -> None:
    """Crash-safety tests: DEALVAULT_TEST_HOOK=<point>:<file> (point: before-broadcast |
    after-broadcast) and DEALVAULT_TEST_HOOK_LEG=N (the N-th leg sent by this process, default 1):
    writes <file>.reached with the tx hash, then waits until <file> exists."""
    spec = os.environ.get("DEALVAULT_TEST_HOOK")
    if not spec or ":" not in spec:
        return
    p, path = spec.split(":", 1)
    if p != point or count != int(os.environ.get("DEALVAULT_TEST_HOOK_LEG", "1")):
        return
    Path(path + ".reached").write_text(tx_hash)
    while not Path(path).exists():
        time.sleep(0.05)


class DealRun:
    """One run of one deal (held under the deal's lock). Use :func:`run_deal`."""

    def __init__(
        self,
        spec: DealSpec,
        *,
        w3: Web3,
        operator: Any,
        owner: Any = None,
        record: Record,
        venues: Venues,
        dry_run: bool = False,
        console: Any = None,
        on_leg: Callable[[LegResult], None] | None = None,
        receipt_timeout: float = 120.0,
        max_wait: float = DEFAULT_MAX_WAIT,
    ):
        if not venues.lens:
            raise InputError(f"vault {venues.vault}: no DealVaultLens to read it through: the deployment record (lens.address) "
                             "or the network config (venues.lens) must name one; `ape run deploy` deploys and records one")
        self.spec = spec
        self.w3 = w3
        self.operator = operator
        self.owner = owner
        self.record = record
        self.venues = venues
        self.dry = dry_run
        self.console = console
        self.on_leg = on_leg
        self.receipt_timeout = receipt_timeout
        self.vault = _contract(w3, venues.vault)
        self.lens = _contract(w3, venues.lens, "lens")
        self.max_wait = max_wait
        self.legs: list[LegResult] = []
        self.sent = 0
        self.chain_id = int(w3.eth.chain_id)
        self.poll = 0.02 if spec.network.local else 1.0
        self._bought_total: int | None = None

    # ---- helpers

    def risk(self) -> dict[str, Any]:
        return read_risk(self.w3, self.venues.vault, lens=self.venues.lens)

    def params(self) -> dict[str, Any]:
        """``lens.params(vault)``: the vault's risk parameters now."""
        return read_params(self.w3, self.venues.vault, lens=self.venues.lens)

    def stable_books(self, stable: str) -> int:
        with _rpc_guard("stableOf"):
            return int(self.lens.functions.stableOf(self.venues.vault, stable).call())

    def say(self, msg: str) -> None:
        log.info(msg)
        if self.console is not None:
            self.console.print(msg)

    def _leg_logs(self) -> list[tuple[int, str]]:
        with _rpc_guard("eth_getLogs"):
            logs = self.vault.events.LegCompleted.get_logs(from_block=self.venues.deploy_block)
        return sorted((int(e["args"]["legSeq"]), LEGS[int(e["args"]["leg"])]) for e in logs)

    def _done(self, leg: str) -> int:
        return sum(1 for _s, name in self._leg_logs() if name == leg)

    def bought_total(self) -> int:
        with _rpc_guard("eth_getLogs"):
            logs = self.vault.events.Bought.get_logs(from_block=self.venues.deploy_block)
        return sum(int(e["args"]["amountOut"]) for e in logs)

    def _gas_fields(self) -> dict[str, int]:
        g = self.spec.gas
        if not g.is_auto:
            if g.legacy:
                return {"gasPrice": int(g.max_fee_wei)}
            return {"maxFeePerGas": int(g.max_fee_wei), "maxPriorityFeePerGas": int(g.priority_fee_wei)}
        with _rpc_guard("eth_gasPrice"):
            return {"gasPrice": int(self.w3.eth.gas_price)}

    def _explain(self, exc: Exception) -> str:
        from dealvault.deploy import _explain_revert

        return _explain_revert(exc, vault_abi())

    # ---- pending legs (never send twice)

    def reconcile_pending(self) -> None:
        for leg in self.record.pending_legs(self.spec.deal_id):
            with _rpc_guard("eth_getTransactionReceipt"):
                receipt = self._receipt_or_none(leg.tx_hash)
            if receipt is None:
                with _rpc_guard("eth_getTransactionCount"):
                    used = int(self.w3.eth.get_transaction_count(to_checksum_address(leg.sender), "latest"))
                    known = self._tx_or_none(leg.tx_hash)
                if known is None and used > int(leg.nonce):
                    self.record.mark_failed(leg, f"never mined: nonce {leg.nonce} was used by another transaction")
                    self.say(f"record: leg {leg.leg} ({leg.tx_hash}) was never mined; its nonce {leg.nonce} is used: marked failed")
                    continue
                if known is None:
                    stable = (leg.args or {}).get("stable")
                    if leg.leg in ("buy", "sell") and stable:
                        # the signed leg needs the TWAP observation ready when it is mined
                        self.twap_ready(str(stable), leg.leg)
                    self.say(f"record: leg {leg.leg} {leg.tx_hash} unknown to the node, nonce {leg.nonce} unused: rebroadcasting the same raw tx")
                    with _rpc_guard("eth_sendRawTransaction"):
                        try:
                            self.w3.eth.send_raw_transaction(leg.raw_tx)
                        except Exception as exc:  # "already known" races are fine
                            if "known" not in str(exc).lower():
                                raise
                    if leg.status == "signed":
                        self.record.mark_broadcast(leg)
                receipt = self._wait(leg.tx_hash, leg.leg)
            else:
                self.say(f"record: leg {leg.leg} {leg.tx_hash} was mined in block {receipt['blockNumber']}: recording it")
            res = LegResult(step=leg.step, leg=leg.leg, args=dict(leg.args or {}), sender=leg.sender or "", tx_hash=leg.tx_hash,
                            nonce=leg.nonce, note="reconciled from the record")
            self._finalize(leg, receipt, res, risk_before=leg.risk_before)

    def _receipt_or_none(self, h: str) -> Any:
        from web3.exceptions import TransactionNotFound

        try:
            return self.w3.eth.get_transaction_receipt(h)
        except TransactionNotFound:
            return None

    def _tx_or_none(self, h: str) -> Any:
        from web3.exceptions import TransactionNotFound

        try:
            return self.w3.eth.get_transaction(h)
        except TransactionNotFound:
            return None

    def _wait(self, tx_hash: str, label: str) -> Any:
        ctx = self.console.status(f"[bold]{label}[/]: waiting for {tx_hash[:12]}...", spinner="dots") if self.console else contextlib.nullcontext()
        with ctx, _rpc_guard(f"{label}: waiting for the receipt of {tx_hash}"):
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.receipt_timeout, poll_latency=self.poll)
            target = int(receipt["blockNumber"]) + max(int(self.spec.confirmations), 1) - 1
            deadline = time.monotonic() + self.receipt_timeout
            while int(self.w3.eth.block_number) < target:
                if self.spec.network.local:
                    self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
                elif time.monotonic() > deadline:
                    raise ChainError(f"{label}: {self.spec.confirmations} confirmations of {tx_hash} did not arrive; re-run with --resume")
                else:
                    time.sleep(self.poll)
        return receipt

    # ---- one leg

    def send_leg(self, step: int, leg: str, fn: Any, args: dict[str, Any], *, sender: Any, value: int = 0,
                 risk_before: dict[str, Any] | None = None) -> LegResult:
        """Simulate, sign, persist, broadcast, wait, check LegCompleted, record."""
        t0 = time.perf_counter()
        w3 = self.w3
        rv = risk_before or self.risk()
        data = fn._encode_transaction_data()
        tx: dict[str, Any] = {"from": sender.address, "to": self.venues.vault, "data": data, "value": int(value), "chainId": self.chain_id}
        # simulate
        with _rpc_guard(f"{leg}: eth_call"):
            try:
                w3.eth.call(tx)
            except ChainError:
                raise
            except Exception as exc:
                if _is_conn_error(exc):
                    raise
                raise LegRejected(f"step {step} {leg}: the simulation reverted: {self._explain(exc)}; nothing sent") from exc
            try:
                est = int(w3.eth.estimate_gas(tx))
            except Exception as exc:
                if _is_conn_error(exc):
                    raise
                raise LegRejected(f"step {step} {leg}: gas estimation reverted: {self._explain(exc)}; nothing sent") from exc
            block_gas = int(w3.eth.get_block("latest")["gasLimit"])
            nonce = int(w3.eth.get_transaction_count(sender.address, "pending"))
        # redeem: GasTooLow below REDEEM_MIN_GAS at its check, whatever the estimate says
        tx.update(gas=min(max(est * 13 // 10 + 20_000, _GAS_FLOOR.get(leg, 0)), block_gas), nonce=nonce, **self._gas_fields())
        res = LegResult(step=step, leg=leg, args=args, sender=sender.address, nonce=nonce, risk_before=rv)
        self.sent += 1
        if isinstance(sender, ImpersonatingSender):  # dry run on a throw-away fork: no key, no raw tx
            with _rpc_guard(f"{leg}: send (fork)"):
                h = "0x" + bytes(sender.send({k: v for k, v in tx.items() if k != "chainId"})).hex()
            rec_leg = self.record.record_signed(self.spec.deal_id, step, leg, raw_tx="0x00", nonce=nonce, tx_hash=h,
                                                sender=sender.address, args=args, risk_before=rv)
            self.record.mark_broadcast(rec_leg)
        else:
            try:
                signed: SignedTx = sender.sign(tx)
            except SignerError:
                raise
            except Exception as exc:
                raise SignerError(f"step {step} {leg}: signing failed: {exc}") from exc
            h = signed.hash
            # persist BEFORE broadcast
            rec_leg = self.record.record_signed(self.spec.deal_id, step, leg, raw_tx=signed.raw_hex, nonce=nonce, tx_hash=h,
                                                sender=sender.address, args=args, risk_before=rv)
            _test_hook("before-broadcast", h, self.sent)
            with _rpc_guard(f"{leg}: eth_sendRawTransaction"):
                w3.eth.send_raw_transaction(signed.raw)
            self.record.mark_broadcast(rec_leg)
            _test_hook("after-broadcast", h, self.sent)
        res.tx_hash = h
        receipt = self._wait(h, f"step {step} {leg}")
        self._finalize(rec_leg, receipt, res, risk_before=rv)
        res.seconds = time.perf_counter() - t0
        return res

    def _finalize(self, rec_leg: Any, receipt: Any, res: LegResult, risk_before: Any = None) -> LegResult:
        """Record a mined leg: check LegCompleted (legSeq), store the snapshot, the tranche."""
        res.block_number = int(receipt["blockNumber"])
        res.gas_used = int(receipt["gasUsed"])
        res.effective_gas_price = int(receipt.get("effectiveGasPrice") or 0)
        if int(receipt["status"]) != 1:
            self.record.mark_reverted(rec_leg, receipt, error=f"{res.leg} reverted in block {res.block_number}")
            res.status = "reverted"
            raise DealError(f"step {res.step} {res.leg}: transaction {res.tx_hash} reverted in block {res.block_number} "
                            "(the simulation passed: the state changed in between); the record has it; re-run with --resume")
        events = self._events(receipt)
        res.events = events
        done = [e for e in events if e["event"] == "LegCompleted"]
        if len(done) != 1:
            raise DealError(f"step {res.step} {res.leg}: {len(done)} LegCompleted events in {res.tx_hash} (expected 1)")
        seq = int(done[0]["args"]["legSeq"])
        leg_kind = LEGS[int(done[0]["args"]["leg"])]
        if leg_kind.lower() != res.leg.lower():
            raise DealError(f"step {res.step} {res.leg}: LegCompleted says leg {leg_kind}")
        if risk_before is not None and "legSeq" in risk_before and seq != int(risk_before["legSeq"]) + 1:
            raise DealError(f"step {res.step} {res.leg}: LegCompleted legSeq {seq}, expected {int(risk_before['legSeq']) + 1} "
                            "(another leg ran in between)")
        snap_abi = [x for x in vault_abi() if x.get("name") == "LegCompleted"][0]["inputs"][2]["components"]
        snapshot = _named(_struct([{"components": snap_abi}], done[0]["args"]["snapshot"]))
        res.leg_seq, res.snapshot = seq, snapshot
        try:
            res.risk_after = self.risk()
        except ChainError:
            res.risk_after = None
        self.record.mark_confirmed(rec_leg, receipt, leg_seq=seq, snapshot_after={"snapshot": snapshot, "risk": res.risk_after})
        if res.leg == "redeem":
            self._record_tranche(rec_leg, events, res)
        self.legs.append(res)
        if self.on_leg:
            self.on_leg(res)
        return res

    def _events(self, receipt: Any) -> list[dict[str, Any]]:
        from web3.logs import DISCARD

        out = []
        for name in ("Funded", "Split", "Observed", "Supplied", "Borrowed", "Bought", "Sold", "Redeemed", "RedemptionFailed",
                     "Repaid", "RepaidOnBehalf", "CollateralSeized", "OperatorLoss", "Closed", "HoldingEntered", "LegCompleted"):
            for ev in getattr(self.vault.events, name)().process_receipt(receipt, errors=DISCARD):
                if to_checksum_address(ev["address"]) != self.venues.vault:
                    continue
                out.append({"event": name, "logIndex": int(ev["logIndex"]), "args": dict(ev["args"])})
        return sorted(out, key=lambda e: e["logIndex"])

    def _record_tranche(self, rec_leg: Any, events: list[dict[str, Any]], res: LegResult) -> None:
        for e in events:
            a = e["args"]
            if e["event"] == "Redeemed":
                amount, received = int(a["amount"]), int(a["received"])
                self.record.add_tranche(self.spec.deal_id, rung=int(a["rung"]), size=amount, received=received,
                                        fee=max(amount - received, 0), ok=True, leg=rec_leg)
            elif e["event"] == "RedemptionFailed":
                reason = a["reason"]
                reason_hex = "0x" + bytes(reason).hex() if isinstance(reason, (bytes, bytearray)) else str(reason)
                self.record.add_tranche(self.spec.deal_id, rung=int(a["rung"]), size=int(a["amount"]), received=0,
                                        fee=0, ok=False, reason=_decode_reason(reason_hex), leg=rec_leg)

    # ---- off-chain checks

    def _require(self, leg: str, rv: dict[str, Any]) -> None:
        phase = int(rv["phase"])
        if not (_MASK[leg] >> phase) & 1:
            allowed = [PHASES[i] for i in range(7) if (_MASK[leg] >> i) & 1]
            raise CapError(f"{leg}: the vault is in phase {PHASES[phase]}; {leg} is allowed only in {', '.join(allowed)}")
        if leg in _RISK_ADDING and rv["paused"]:
            raise CapError(f"{leg}: the vault is paused (risk-adding legs are blocked); the owner unpauses")
        if leg in _NEEDS_FRESH:
            if int(rv["oracleStatus"]) != 0:
                who = "split needs" if leg == "split" else "risk-adding legs need"
                raise CapError(f"{leg}: the ETH/USD oracle is {ORACLE[int(rv['oracleStatus'])]} (updatedAt {rv['priceUpdatedAt']}, "
                               f"answer {rv['ethPrice']}); {who} a Fresh price")

    def caps(self) -> dict[str, int]:
        """The vault's parameters (lens.params), each tightened by the spec where it has its own."""
        p = self.params()
        return {
            "ltv": min(p["maxLtvBps"], self.spec.vault.max_ltv_bps),
            "exposure": min(p["maxExposureBps"], self.spec.vault.max_exposure_bps),
            "min_discount": max(p["minDiscountBps"], self.spec.min_discount_bps),
            "slippage": min(p["maxSlippageBps"], self.spec.max_slippage_bps),
            "sell_floor": max(p["sellFloorPrice"], self.spec.vault.sell_floor_price_e6),
            "twap_window": p["twapWindow"],
            "min_tranche": p["minTranche"],
            "rungs": p["rungs"],
        }

    @staticmethod
    def _nav_e26(rv: dict[str, Any]) -> int:
        price = int(rv["ethPrice"]) if int(rv["oracleStatus"]) == 0 else 0
        eth = int(rv["coreEth"]) + int(rv["workingEth"]) + int(rv["opportunisticEth"]) + int(rv["collateralWeth"])
        return eth * price + (int(rv["stableHeld"]) + int(rv["usdtzCost"]) - int(rv["debt"])) * 10**20

    # ---- steps

    def step0(self) -> None:
        rv = self.risk()
        if int(rv["phase"]) != 0:
            return
        need = self.spec.capital_wei - int(rv["fundedCapital"])
        if need > 0:
            if self.owner is None or not (self.spec.network.local or self.dry):
                raise OwnerActionNeeded(
                    f"the vault holds {_eth(int(rv['fundedCapital']))} of the deal's {_eth(self.spec.capital_wei)} ETH: the owner must fund "
                    f"{_eth(need)} ETH (`ape run owner_tx fund --deal <spec>` writes the Safe transaction), then re-run with --resume")
            self._require("fund", rv)
            self.send_leg(0, "fund", self.vault.functions.fund(), {"value_wei": need}, sender=self.owner, value=need, risk_before=rv)
            rv = self.risk()
        self._require("split", rv)
        self.send_leg(0, "split", self.vault.functions.split(), {}, sender=self.operator, risk_before=rv)

    def step1(self) -> None:
        rv = self.risk()
        self._holding_check(rv)
        wrapper = self.venues.wrapper(self.spec)
        stable = self.venues.stable(self.spec)
        if int(rv["workingEth"]) > 0 and self._done("Borrow") == 0:
            amount = int(rv["workingEth"])
            self._require("supply", rv)
            self.send_leg(1, "supply", self.vault.functions.supply(wrapper, amount),
                          {"wrapper": wrapper, "amount": amount}, sender=self.operator, risk_before=rv)
            rv = self.risk()
        if self._done("Borrow") == 0:
            self._require("borrow", rv)
            caps = self.caps()
            coll, price, debt = int(rv["collateralWeth"]), int(rv["ethPrice"]), int(rv["debt"])
            target = min(self.spec.target_ltv_bps, caps["ltv"])
            want = coll * price * target // (10**20 * BPS)
            amount = want - debt
            if amount <= 0:
                raise CapError(f"borrow: debt {_u6(debt)} already at or above the target {_u6(want)} ({target} bps of "
                               f"{_eth(coll)} ETH collateral at ${Decimal(price).scaleb(-8)})")
            # the vault's own formula, off-chain: debt * 1e20 * 1e4 <= cap * coll * price
            after = debt + amount
            if after * 10**20 * BPS > caps["ltv"] * coll * price:
                raise CapError(f"borrow {_u6(amount)}: LTV after {_ltv(after, coll, price)} bps > cap {caps['ltv']} bps")
            self.send_leg(1, "borrow", self.vault.functions.borrow(stable, amount),
                          {"stable": stable, "amount": amount, "target_ltv_bps": target}, sender=self.operator, risk_before=rv)

    def _quote(self, amount_in: int, path: list[str]) -> int:
        r = self.w3.eth.contract(address=self.venues.router, abi=_ROUTER_ABI)
        with _rpc_guard("getAmountsOut"):
            return int(r.functions.getAmountsOut(amount_in, path).call()[-1])

    def plan_buy(self, rv: dict[str, Any]) -> tuple[int, int, dict[str, Any]]:
        """The largest amountIn <= stable held whose quote keeps the price within the discount
        limit and the exposure within its cap. Returns (amountIn, quote, info)."""
        caps = self.caps()
        stable = self.venues.stable(self.spec)
        path = [stable, self.venues.usdtz]
        limit_e6 = (BPS - caps["min_discount"]) * 100
        held = self.stable_books(stable)
        nav = self._nav_e26(rv)
        usdtz = int(rv["usdtzHeld"])

        def ok(a: int) -> tuple[bool, int]:
            if a <= 0:
                return True, 0
            out = self._quote(a, path)
            if out <= 0 or a * 10**6 > limit_e6 * out:
                return False, out
            if (usdtz + out) * 10**20 * BPS > caps["exposure"] * nav:  # buy moves stable to cost: NAV unchanged
                return False, out
            return True, out

        good, out = ok(held)
        if good:
            return held, out, {"limit_e6": limit_e6, "bounded_by": "stable held"}
        lo, hi = 0, held
        while hi - lo > max(held // 10**6, 1):
            mid = (lo + hi) // 2
            if ok(mid)[0]:
                lo = mid
            else:
                hi = mid
        lo = lo // 10**6 * 10**6 if lo > 10**6 else lo  # whole stablecoin units
        return lo, (ok(lo)[1] if lo else 0), {"limit_e6": limit_e6, "bounded_by": "price limit / exposure cap"}

    def _stable_name(self, stable: str) -> str:
        return "cUSDT" if to_checksum_address(stable) == self.venues.cusdt else "cUSDC"

    def twap_ready(self, stable: str, leg: str) -> dict[str, int]:
        """The vault's TWAP observation of the [stable, USDTz] pair, made ready for ``leg``: at
        least twapWindow old. Local chain (or a dry run's fork): advance the clock; real network:
        wait for it (at most ``max_wait`` s, else WaitNeeded, nothing sent). Returns lens.twap after."""
        tw = read_twap(self.w3, self.venues.vault, stable, lens=self.venues.lens)
        pair = f"{self._stable_name(stable)}/USDTz"
        if tw["observedAt"] == 0:
            raise CapError(f"{leg}: the vault has no TWAP observation of the {pair} pair (split takes one; the operator or the "
                           "owner can call observe()); nothing sent")
        window = self.caps()["twap_window"]
        # IDealVaultLens: readyAt = observedAt + twapWindow; taken from both, so that a lens reporting it
        # early cannot make the leg revert TwapWindowShort
        ready = max(tw["readyAt"], tw["observedAt"] + window)
        local = self.spec.network.local or self.dry
        with _rpc_guard("eth_getBlockByNumber"):
            if local:
                # the local node's clock, from a new (empty) block: anvil restarted from a state dump
                # stamps new blocks with the wall clock, which may be behind the last block's time
                self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            now = int(self.w3.eth.get_block("latest")["timestamp"])
        if ready <= now:
            return tw
        wait = ready - now
        if local:
            with _rpc_guard("evm_increaseTime"):
                self.w3.provider.make_request("evm_increaseTime", [wait])  # type: ignore[arg-type]
                self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
            self.say(f"{leg}: the TWAP observation of the {pair} pair (taken at {tw['observedAt']}) is ready at {ready} "
                     f"(twapWindow {window} s): advanced the {'fork' if self.dry and not self.spec.network.local else 'local chain'}'s "
                     f"clock by {wait} s (evm_increaseTime + evm_mine)")
        else:
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ready))
            if wait > self.max_wait:
                raise WaitNeeded(f"{leg}: the TWAP observation of the {pair} pair is ready at {when} (block time {ready}, "
                                 f"twapWindow {window} s), in {wait} s: longer than the maximum wait {int(self.max_wait)} s; "
                                 f"nothing sent: re-run with --resume {self.spec.deal_id} after {when}")
            self.say(f"{leg}: waiting {wait} s for the TWAP observation of the {pair} pair (ready at {when}, twapWindow {window} s; "
                     f"max wait {int(self.max_wait)} s)")
            deadline = time.monotonic() + wait + max(120.0, wait / 10)
            while now < ready:
                if time.monotonic() > deadline:
                    raise WaitNeeded(f"{leg}: the chain's clock has not reached {when} (block time {ready}; latest block {now}); "
                                     f"nothing sent: re-run with --resume {self.spec.deal_id}")
                time.sleep(min(max(ready - now, 1), 15) if self.poll >= 1 else min(max(ready - now, 0.2), 1.0))
                with _rpc_guard("eth_getBlockByNumber"):
                    now = int(self.w3.eth.get_block("latest")["timestamp"])
            self.say(f"{leg}: the TWAP observation is ready (block time {now})")
        return read_twap(self.w3, self.venues.vault, stable, lens=self.venues.lens)

    def _twap_bound(self, leg: str, stable: str, tw: Mapping[str, int], slip: int) -> None:
        """The vault's own check, off-chain: spot within ``slip`` bps above (buy) or below (sell) the TWAP."""
        spot, twap = int(tw["spotX112"]), int(tw["twapX112"])
        pair = f"{self._stable_name(stable)}/USDTz"
        p = lambda e6: f"{Decimal(int(e6)).scaleb(-6)}"  # noqa: E731
        if leg == "buy" and spot * BPS > twap * (BPS + slip):
            raise CapError(f"buy: the {pair} pair's spot price {p(tw['spotE6'])} is more than {slip} bps above its TWAP "
                           f"{p(tw['twapE6'])} since {tw['observedAt']} (at most {p(tw['twapE6'] * (BPS + slip) // BPS)}): "
                           "the pair may have been pushed up; nothing sent (the vault would revert PriceAboveTwap)")
        if leg == "sell" and spot * BPS < twap * (BPS - slip):
            raise CapError(f"sell: the {pair} pair's spot price {p(tw['spotE6'])} is more than {slip} bps below its TWAP "
                           f"{p(tw['twapE6'])} since {tw['observedAt']} (at least {p(-(-tw['twapE6'] * (BPS - slip) // BPS))}): "
                           "the pair may have been pushed down; nothing sent (the vault would revert PriceBelowTwap)")

    def step2(self) -> None:
        rv = self.risk()
        self._holding_check(rv)
        if self._done("Buy") > 0:
            return
        self._require("buy", rv)
        stable = self.venues.stable(self.spec)
        tw = self.twap_ready(stable, "buy")
        rv = self.risk()  # the clock may have moved: the oracle's age, the debt's interest
        self._require("buy", rv)
        caps = self.caps()
        self._twap_bound("buy", stable, tw, caps["slippage"])
        amount, quote, info = self.plan_buy(rv)
        if amount <= 0:
            raise CapError(f"buy: no amount of {self.spec.stablecoin} buys USDTz at <= {Decimal(info['limit_e6']).scaleb(-6)} "
                           f"(min discount {caps['min_discount']} bps) within the exposure cap; nothing sent")
        min_out = quote * (BPS - caps["slippage"]) // BPS
        deadline = int(self.w3.eth.get_block("latest")["timestamp"]) + 1800
        self.send_leg(2, "buy", self.vault.functions.buy(stable, amount, min_out, deadline),
                      {"stable": stable, "amount_in": amount, "min_out": min_out, "quote": quote, "deadline": deadline,
                       "price_e6": amount * 10**6 // max(quote, 1), "spot_e6": tw["spotE6"], "twap_e6": tw["twapE6"],
                       **info}, sender=self.operator, risk_before=rv)

    def step3(self) -> str | None:
        """The ladder. Returns "holding" when a tranche failed, else None."""
        stable = self.venues.stable(self.spec)
        bought = self.bought_total()
        keep = bought - bought * self.spec.monetize.monetize_bps // BPS
        via = self.spec.monetize.via
        if via in ("redeem", "redeem-then-sell"):
            caps = self.caps()  # rungs and the minimum tranche are fixed at deployment
            while True:
                rv = self.risk()
                if int(rv["phase"]) == 5:
                    return "holding"
                left = int(rv["usdtzHeld"]) - keep
                if left <= 0:
                    break
                tranches = len(self.record.tranches(self.spec.deal_id))
                if tranches >= self.spec.ladder.max_tranches:
                    self.say(f"ladder: max_tranches {self.spec.ladder.max_tranches} reached")
                    break
                k = int(rv["rung"])
                if k >= self.spec.ladder.rungs:
                    self.say(f"ladder: rung {k + 1} is above the deal's ladder.rungs {self.spec.ladder.rungs}")
                    break
                size = min(int(caps["rungs"][min(k, 2)]), self.spec.vault.rungs[k])
                amount = min(size * self.spec.ladder.tranche_bps // BPS, left)
                if amount <= 0:
                    break
                # the vault refuses a tranche below minTranche unless it is all the USDTz held
                # (TrancheBelowMinimum); minTranche <= every rung, so raising it stays within the rung
                held, min_tranche = int(rv["usdtzHeld"]), int(caps["min_tranche"])
                if amount < min_tranche and amount != held:
                    if left < min_tranche:
                        self.say(f"ladder: the {_u6(left)} USDTz left to monetize is below the vault's minimum tranche "
                                 f"{_u6(min_tranche)} (and not all the {_u6(held)} held): not redeemed")
                        break
                    amount = min_tranche
                self._require("redeem", rv)
                res = self.send_leg(3, "redeem", self.vault.functions.redeem(stable, amount),
                                    {"stable": stable, "amount": amount, "rung": k}, sender=self.operator, risk_before=rv)
                if any(e["event"] == "RedemptionFailed" for e in res.events):
                    return "holding"
        if via in ("sell", "redeem-then-sell"):
            rv = self.risk()
            if int(rv["phase"]) == 5 and via == "redeem-then-sell":
                return "holding"
            left = int(rv["usdtzHeld"]) - keep
            if left > 0:
                self._require("sell", rv)
                caps = self.caps()
                # the operator's sell: the observation twapWindow old, spot at most maxSlippageBps below the TWAP
                self._twap_bound("sell", stable, self.twap_ready(stable, "sell"), caps["slippage"])
                quote = self._quote(left, [self.venues.usdtz, stable])
                floor_out = -(-caps["sell_floor"] * left // 10**6)
                if quote < floor_out:
                    raise CapError(f"sell {_u6(left)} USDTz: the router pays {_u6(quote)} ({Decimal(quote * 10**6 // left).scaleb(-6)} per USDTz), "
                                   f"below the floor {Decimal(caps['sell_floor']).scaleb(-6)}; nothing sent")
                min_out = max(quote * (BPS - caps["slippage"]) // BPS, floor_out)
                deadline = int(self.w3.eth.get_block("latest")["timestamp"]) + 1800
                self.send_leg(3, "sell", self.vault.functions.sell(stable, left, min_out, deadline),
                              {"stable": stable, "amount_in": left, "min_out": min_out, "quote": quote}, sender=self.operator, risk_before=rv)
        return None

    def step4(self) -> None:
        rv = self.risk()
        if int(rv["phase"]) == 6:
            return
        self._holding_check(rv)
        stable = self.venues.stable(self.spec)
        if int(rv["debt"]) > 0:
            books = self.stable_books(stable)
            if books == 0:
                raise OwnerActionNeeded(f"repay: debt {_u6(int(rv['debt']))} and no {self.spec.stablecoin} on the books: "
                                        "owner repay (`ape run owner_tx ownerRepay`) or deleverage, then --resume")
            self._require("repay", rv)
            self.send_leg(4, "repay", self.vault.functions.repay(stable, 2**256 - 1), {"stable": stable, "amount": "max"},
                          sender=self.operator, risk_before=rv)
            rv = self.risk()
        if int(rv["debt"]) > 0:
            raise OwnerActionNeeded(f"close: debt {_u6(int(rv['debt']))} remains after repaying from the books: owner repay "
                                    "(`ape run owner_tx ownerRepay`) or deleverage, then --resume")
        self._require("close", rv)
        self.send_leg(4, "close", self.vault.functions.close(), {}, sender=self.operator, risk_before=rv)

    def _holding_check(self, rv: dict[str, Any]) -> None:
        if int(rv["phase"]) == 5:
            raise _Holding()


class _Holding(Exception):
    pass


def _is_conn_error(exc: Exception) -> bool:
    import requests

    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError, TimeoutError))


def _decode_reason(reason_hex: str) -> str:
    from dealvault.deploy import _explain_revert

    class _E(Exception):
        pass

    if reason_hex in ("0x", ""):
        return "empty revert data"
    text = _explain_revert(_E(reason_hex), vault_abi())
    if text == reason_hex and reason_hex.startswith("0x08c379a0"):
        import eth_abi

        try:
            return "Error(" + eth_abi.decode(["string"], bytes.fromhex(reason_hex[10:]))[0] + ")"
        except Exception:  # noqa: BLE001
            pass
    return text


def _eth(wei: int) -> str:
    return f"{Decimal(wei).scaleb(-18).normalize():f}"


def _u6(v: int) -> str:
    return f"{Decimal(v).scaleb(-6).normalize():f}"


def _ltv(debt: int, coll: int, price: int) -> int:
    if coll * price == 0:
        return 2**256 - 1
    return -(-debt * 10**20 * BPS // (coll * price))


# --------------------------------------------------------------------------------------------
# the API


def _preflight(run: DealRun, *, resume: bool, mainnet_genesis: str | None) -> dict[str, Any]:
    spec, w3, venues = run.spec, run.w3, run.venues
    existing = run.record.get_deal(spec.deal_id)
    ident = check_network(w3, spec, mainnet_genesis=mainnet_genesis,
                          recorded_genesis=existing.genesis_hash if existing is not None else None)
    with _rpc_guard("eth_getCode"):
        if not w3.eth.get_code(venues.vault):
            raise InputError(f"vault {venues.vault}: no contract at this address on chain {ident['chain_id']}")
        lens_code = bytes(w3.eth.get_code(venues.lens))
    if not lens_code:
        raise InputError(f"lens {venues.lens}: no contract at this address on chain {ident['chain_id']} (the deployment record's "
                         "lens.address or the network config's venues.lens); nothing sent")
    # the lens's code: the deployment record's hash (verified when it was deployed), else this build's
    from eth_utils import keccak

    got = "0x" + keccak(lens_code).hex()
    if venues.lens_code_hash:
        want, what = venues.lens_code_hash.lower(), "the deployment record's"
    else:
        from dealvault.artifacts import own

        want = "0x" + keccak(bytes.fromhex(own("DealVaultLens").deployed_bytecode.removeprefix("0x"))).hex()
        what = "the DealVaultLens build's"
    if got != want:
        raise InputError(f"lens {venues.lens}: its code hashes to {got}, not {what} {want}: its views cannot be trusted; "
                         "nothing sent")
    f = run.vault.functions
    with _rpc_guard("roles"):
        onchain_op, onchain_owner = f.operator().call(), f.owner().call()
        params = _onchain_params(w3, venues.vault, spec, venues)
    if to_checksum_address(onchain_op) != run.operator.address:
        raise InputError(f"account: {run.operator.address} is not the vault's operator ({onchain_op}); nothing sent")
    if run.owner is not None and to_checksum_address(onchain_owner) != run.owner.address:
        raise InputError(f"owner account {run.owner.address} is not the vault's owner ({onchain_owner}); nothing sent")
    problems = check_against_vault(spec, params)
    if problems:
        raise InputError("the spec is looser than the vault (the vault's parameters rule), nothing sent:\n  - " + "\n  - ".join(problems))
    rv = run.risk()
    phase = int(rv["phase"])
    if existing is not None and existing.vault_address and to_checksum_address(existing.vault_address) != venues.vault:
        raise InputError(f"deal {spec.deal_id} is recorded with vault {existing.vault_address}, not {venues.vault}")
    confirmed = [l for l in run.record.legs(spec.deal_id) if l.status == "confirmed"] if existing is not None else []
    if not resume:
        if confirmed:
            raise InputError(f"deal {spec.deal_id} already has {len(confirmed)} confirmed legs in the record: continue it with --resume {spec.deal_id}")
        if phase != 0 or int(rv["legSeq"]) > 0 and any(n != "Fund" for _s, n in run._leg_logs()):
            raise InputError(f"vault {venues.vault} is in phase {PHASES[phase]} (legSeq {rv['legSeq']}): a new deal needs a vault in FUNDED "
                             f"with no leg run; to continue a deal use --resume {spec.deal_id}; nothing sent")
    elif existing is None and int(rv["legSeq"]) > 0:
        log.warning("resume without a record: rebuilding from the chain (the vault's logs rule)")
    run.record.create_deal(spec, chain_id=ident["chain_id"], genesis_hash=ident["genesis_hash"], vault_address=venues.vault,
                           lens_address=venues.lens, exist_ok=True)
    if existing is not None and existing.vault_address is None:
        run.record.update_deal(spec.deal_id, vault_address=venues.vault)
    if existing is not None and existing.lens_address != venues.lens:  # any DealVaultLens serves any vault
        run.record.update_deal(spec.deal_id, lens_address=venues.lens)
    return {**ident, "phase": PHASES[phase]}


def run_deal(
    spec: DealSpec,
    *,
    w3: Web3,
    operator: Any,
    owner: Any = None,
    record: Record | None = None,
    venues: Venues,
    until: Any = None,
    dry_run: bool = False,
    resume: bool = False,
    console: Any = None,
    on_leg: Callable[[LegResult], None] | None = None,
    mainnet_genesis: str | None = None,
    lock_timeout: float = 0.0,
    max_wait: float = DEFAULT_MAX_WAIT,
) -> DealReport:
    """Run ``spec`` from step 0 to step 4 (or ``until``). Raises :class:`DealError` subclasses for
    bad input (``exit_code`` 2, nothing sent), refused legs, owner actions, chain failures; returns
    a :class:`DealReport` (``status`` completed / holding / stopped / dry-run, ``exit_code``).

    ``operator`` / ``owner``: :mod:`dealvault.signer` signers (owner only on local chains, for
    funding). ``record``: the deal record (default: :func:`dealvault.record.open_record`).
    ``dry_run``: everything on a throw-away anvil fork of ``w3``'s node, with a temporary record;
    nothing is sent to ``w3`` and the real record is not touched. ``max_wait``: seconds to wait
    on a real network for the buy's TWAP observation (longer: exit 4, resumable)."""
    t0 = time.perf_counter()
    last = parse_until(until)
    if record is None:
        record = open_record()
    # any RPC failure not caught closer to its call (connection refused, timeout) is a ChainError (exit 5)
    with _rpc_guard(f"deal {spec.deal_id}"):
        if dry_run:
            return _dry_run(spec, w3=w3, operator=operator, owner=owner, venues=venues, last=last, resume=resume,
                            console=console, on_leg=on_leg, mainnet_genesis=mainnet_genesis, t0=t0)
        run = DealRun(spec, w3=w3, operator=operator, owner=owner, record=record, venues=venues, console=console, on_leg=on_leg,
                      max_wait=max_wait)
        try:
            with record.lock(spec.deal_id, timeout=lock_timeout):
                return _drive(run, last=last, resume=resume, mainnet_genesis=mainnet_genesis, t0=t0)
        except DealLocked as exc:
            raise InputError(str(exc)) from exc


def _drive(run: DealRun, *, last: int | None, resume: bool, mainnet_genesis: str | None, t0: float, dry: bool = False) -> DealReport:
    spec = run.spec
    _preflight(run, resume=resume, mainnet_genesis=mainnet_genesis)
    run.reconcile_pending()
    status, code, message = "completed", EXIT_OK, "deal completed: the vault is CLOSED"
    steps = [run.step0, run.step1, run.step2, run.step3, run.step4]
    try:
        for n, step in enumerate(steps):
            if last is not None and n > last:
                status, code, message = "stopped", EXIT_OK, f"stopped after step {last} ({STEPS[last]}) as asked (--until); continue with --resume {spec.deal_id}"
                break
            if n == 3:
                if step() == "holding":
                    raise _Holding()
            else:
                step()
    except _Holding:
        status, code = "holding", EXIT_HOLDING
        message = HOLDING_OPTIONS.format(deal=spec.deal_id)
    except OwnerActionNeeded as exc:
        status, code, message = ("waiting" if isinstance(exc, WaitNeeded) else "owner-action"), exc.exit_code, str(exc)
    if status == "completed" and int(run.risk()["phase"]) != 6:
        status, message = "stopped", "steps done but the vault is not CLOSED"
    if dry:
        status = "dry-run" if status == "completed" else f"dry-run ({status})"
        message = "dry run on a throw-away fork: nothing was sent. " + message
    run.record.set_status(spec.deal_id, status)
    return build_report(run, status=status, exit_code=code, message=message, seconds=time.perf_counter() - t0, dry=dry)


def build_report(run: DealRun, *, status: str, exit_code: int, message: str, seconds: float, dry: bool = False) -> DealReport:
    from dealvault.run.report import jsonable

    rv = run.risk()
    stats = run.record.tranche_stats(run.spec.deal_id)
    return DealReport(
        deal_id=run.spec.deal_id, status=status, exit_code=exit_code, message=message, vault=run.venues.vault,
        network=run.spec.network.name, chain_id=run.chain_id, legs=list(run.legs),
        all_legs=[jsonable({k: getattr(l, k) for k in ("id", "leg_seq", "step", "leg", "status", "tx_hash", "nonce", "sender",
                                                        "block_number", "gas_used", "effective_gas_price", "error")})
                  for l in run.record.legs(run.spec.deal_id)],
        risk=rv, tranches=[jsonable(t.__dict__) for t in run.record.tranches(run.spec.deal_id)],
        stats=jsonable(stats.__dict__ | {"by_rung": {k: v.__dict__ for k, v in stats.by_rung.items()}}),
        spec=run.spec, dry_run=dry, seconds=seconds, eth_price=int(rv["ethPrice"]),
    )


def _dry_run(spec: DealSpec, *, w3: Web3, operator: Any, owner: Any, venues: Venues, last: int | None, resume: bool,
             console: Any, on_leg: Any, mainnet_genesis: str | None, t0: float) -> DealReport:
    from dealvault.kit.anvil import start_anvil

    # identity against the real node first (a dry run for the wrong chain is refused too)
    check_network(w3, spec, mainnet_genesis=mainnet_genesis)
    url = getattr(w3.provider, "endpoint_uri", None)
    if not url:
        raise InputError("dry run: the node's RPC URL is unknown (needed to fork it)")
    with tempfile.TemporaryDirectory(prefix="dealvault-dry-") as tmp:
        node = start_anvil(chain_id=spec.network.chain_id, fork_url=str(url))
        try:
            fw3 = node.web3()
            rec = open_record(f"sqlite:///{tmp}/dry.db")
            try:
                op = ImpersonatingSender(fw3, operator.address)
                # the owner's funding is simulated too (impersonated on the fork, given the ETH if short)
                owner_addr = owner.address if owner is not None else _contract(fw3, venues.vault).functions.owner().call()
                ow = ImpersonatingSender(fw3, owner_addr)
                if int(fw3.eth.get_balance(ow.address)) < spec.capital_wei + 10**18:
                    from dealvault.kit.evm import set_balance

                    set_balance(fw3, ow.address, spec.capital_wei + 10**18)
                run = DealRun(spec, w3=fw3, operator=op, owner=ow, record=rec, venues=venues, dry_run=True, console=console, on_leg=on_leg)
                return _drive(run, last=last, resume=resume, mainnet_genesis=mainnet_genesis, t0=t0, dry=True)
            finally:
                rec.close()
        finally:
            node.stop()


def run_leg(spec: DealSpec, leg: str, *, w3: Web3, sender: Any, record: Record, venues: Venues, args: Sequence[Any] = (),
            value: int = 0, step: int = -1) -> LegResult:
    """Run one vault function as a recorded leg (``leg`` = the function name, e.g. ``"repay"``),
    with the same simulate / sign / persist / broadcast / LegCompleted checks as a deal run."""
    with _rpc_guard("chain id"):
        run = DealRun(spec, w3=w3, operator=sender, record=record, venues=venues)
    with record.lock(spec.deal_id), _rpc_guard(f"{leg} leg"):
        record.create_deal(spec, chain_id=run.chain_id, genesis_hash=genesis_hash(w3), vault_address=venues.vault,
                           lens_address=venues.lens, exist_ok=True)
        rv = run.risk()
        if leg in _MASK:
            run._require(leg, rv)
        fn = getattr(run.vault.functions, leg)(*args)
        return run.send_leg(step, leg, fn, {"args": [str(a) for a in args]}, sender=sender, value=value, risk_before=rv)


def read_status(w3: Web3, vault: str, record: Record | None = None, deal_id: str | None = None, *,
                lens: str | None = None) -> dict[str, Any]:
    """The record (deal, legs, tranches, stats) and the live risk view (``lens.riskView``) side by
    side. ``lens``: default the deal record's lens, else the one registered for the vault."""
    from dealvault.run.report import jsonable

    deal = record.get_deal(deal_id) if (record is not None and deal_id is not None) else None
    lens = lens or (deal.lens_address if deal is not None else None)
    out: dict[str, Any] = {"vault": to_checksum_address(vault), "lens": lens_for(vault, lens),
                           "risk": jsonable(read_risk(w3, vault, lens=lens))}
    if deal is not None:
        st = record.tranche_stats(deal_id)  # type: ignore[union-attr]
        out["deal"] = jsonable({k: getattr(deal, k) for k in ("id", "network", "chain_id", "genesis_hash", "vault_address",
                                                              "lens_address", "status")})
        out["legs"] = [jsonable({k: getattr(l, k) for k in ("leg_seq", "step", "leg", "status", "tx_hash", "nonce", "gas_used", "error")})
                       for l in record.legs(deal_id)]  # type: ignore[union-attr]
        out["tranches"] = [jsonable(t.__dict__) for t in record.tranches(deal_id)]  # type: ignore[union-attr]
        out["stats"] = jsonable(st.__dict__ | {"by_rung": {k: v.__dict__ for k, v in st.by_rung.items()}})
    return out
