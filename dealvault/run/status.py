"""A deal's state as a watcher sees it: the vault read in one round trip, the flags, and the record
rebuilt from the vault's logs when it is lost.

    client = VaultClient(w3, vault, lens)
    st = read_deal(client, record, "demo-001")          # risk view + parameters (one batch) + the record's rows
    flags = status_flags(st.risk, st.params, margin_bps=200, now=st.timestamp, spread=spread_inputs(client, 0, st.risk))
    rebuild_record(w3, vault, record, "demo-001")       # the chain is the source of truth

``status_flags`` is pure (no chain access): a typed :class:`~dealvault.vault.RiskView` and
:class:`~dealvault.vault.Params` in, a list of :class:`Flag` out. Money: ints.

``rebuild_record`` reads only the chain: the vault's ``LegCompleted`` logs (one per leg, keyed by
``legSeq``), each transaction and receipt (sender, nonce, raw transaction, block, gas used) and the
per-leg events of the same receipt (``Redeemed`` / ``RedemptionFailed`` -> tranches). Legs
already in the record (same ``legSeq``) are left alone, so a re-run is a no-op.

:func:`watch` is ``ape run deal_status`` (the script only parses its flags).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_utils import is_address, to_checksum_address
from web3 import Web3

from dealvault.errors import ChainError, DealVaultError, ExitCode, InputError
from dealvault.record import DealInfo, LegInfo, Record, TrancheInfo, TrancheStats, open_record
from dealvault.units import BPS, STABLE_DECIMALS, WAD_DECIMALS, from_units
from dealvault.vault import Leg, OracleStatus, Params, Phase, RiskView, VaultClient, vault_abi
from dealvault.vault.client import Snapshot, from_abi
from dealvault.vault.enums import LEG_OF_FUNCTION
from dealvault.vault.revert import reason_text

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "DEFAULT_MARGIN_BPS", "DEFAULT_MIN_HEALTH_FACTOR", "DEFAULT_ORACLE_MARGIN_BPS", "DEFAULT_INTEREST_SHARE_BPS",
    "DEFAULT_LOSS_MARGIN_BPS", "WATCHED_PARAMS", "LEG_STEP",
    "Flag", "Spread", "DealStatus", "RebuildResult",
    "status_flags", "watch_params", "spread_inputs", "loss_share", "loss_budget_line", "read_deal", "rebuild_record", "leg_function", "watch",
]

DEFAULT_MARGIN_BPS = 50                # LTV within half a percentage point of the cap (a deal at its target stays unflagged)
DEFAULT_MIN_HEALTH_FACTOR = Decimal("1.5")
DEFAULT_ORACLE_MARGIN_BPS = 2_000      # oracle older than 80% of its max age
DEFAULT_INTEREST_SHARE_BPS = 5_000     # accrued interest >= 50% of the expected discount profit
DEFAULT_LOSS_MARGIN_BPS = 2_000        # operator loss at 80% of its budget or more

#: The parameters deal_status shows: the caps the flags check, and the loss budget's share.
WATCHED_PARAMS = ("maxLtvBps", "maxExposureBps", "oracleMaxAge", "maxOperatorLossBps")

#: The step a leg belongs to (the orchestrator's numbering: 0 split .. 4 close); owner / crisis legs: -1.
LEG_STEP = {"fund": 0, "split": 0, "supply": 1, "borrow": 1, "buy": 2, "redeem": 3, "sell": 3, "repay": 4, "close": 4}
_FUNCTION_OF_LEG: dict[Leg, str] = {leg: fn for fn, leg in LEG_OF_FUNCTION.items()}


def leg_function(leg: Leg) -> str:
    """The vault function that runs ``leg`` (the record's leg name): ``Leg.OwnerRepay`` -> ``ownerRepay``."""
    return _FUNCTION_OF_LEG[leg]


# --------------------------------------------------------------------------------------------
# flags


@dataclass(frozen=True)
class Flag:
    code: str          # ltv-near-cap | ltv-over-cap | health-factor | oracle-age | oracle-stale | interest-vs-spread |
                       # loss-budget | holding
    severity: str      # warn | critical
    message: str
    value: int | Decimal | str | None = None
    limit: int | Decimal | str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "message": self.message,
                "value": _plain(self.value), "limit": _plain(self.limit)}


def _plain(v: int | Decimal | str | None) -> int | str | None:
    return str(v) if isinstance(v, Decimal) else v


@dataclass(frozen=True)
class Spread:
    """Accrued interest and the expected discount profit, in 6-dp stablecoin units (:func:`spread_inputs`)."""

    accrued_interest: int
    expected_spread: int


def status_flags(
    risk: RiskView,
    params: Params,
    margin_bps: int = DEFAULT_MARGIN_BPS,
    *,
    now: int | None = None,
    min_health_factor: Decimal | str | int = DEFAULT_MIN_HEALTH_FACTOR,
    oracle_margin_bps: int = DEFAULT_ORACLE_MARGIN_BPS,
    interest_share_bps: int = DEFAULT_INTEREST_SHARE_BPS,
    spread: Spread | None = None,
    loss_margin_bps: int = DEFAULT_LOSS_MARGIN_BPS,
) -> list[Flag]:
    """The flags a watcher raises for ``risk`` against the caps in ``params`` (the vault's, or
    :func:`watch_params`'). Edges (all inclusive, integer arithmetic):

    - ``ltv-near-cap``: debt > 0 and ``ltvBps >= maxLtvBps - margin_bps``; ``ltv-over-cap`` (critical)
      when ``ltvBps > maxLtvBps``.
    - ``health-factor``: debt > 0 and ``healthFactor < min_health_factor`` (1e18 = 1.0).
    - ``oracle-age``: ``(now - priceUpdatedAt) * 10_000 >= oracleMaxAge * (10_000 - oracle_margin_bps)``;
      ``oracle-stale`` (critical) when the age is over ``oracleMaxAge`` or the vault says Stale/Invalid.
    - ``interest-vs-spread``: ``accrued_interest * 10_000 >= expected_spread * interest_share_bps``
      with accrued interest > 0 (see :func:`spread_inputs`).
    - ``loss-budget``: operator loss > 0 and ``operatorLoss * 10_000 >= lossBudget * (10_000 -
      loss_margin_bps)`` (warn); critical when ``operatorLoss >= lossBudget`` (the next operator leg
      that realizes any loss is refused on chain: only the owner's legs can unwind).
    - ``holding``: the vault is in HOLDING (critical).
    """
    if margin_bps < 0 or oracle_margin_bps < 0 or interest_share_bps < 0 or loss_margin_bps < 0:
        raise ValueError("margins must be >= 0")
    flags = _ltv_flags(risk, params.maxLtvBps, margin_bps) + _health_flags(risk, min_health_factor)
    flags += _oracle_flags(risk, params.oracleMaxAge, now, oracle_margin_bps)
    if spread is not None and spread.accrued_interest > 0:
        interest, expected = spread.accrued_interest, spread.expected_spread
        if interest * BPS >= max(expected, 0) * interest_share_bps:
            flags.append(Flag("interest-vs-spread", "warn",
                              f"accrued interest {from_units(interest, STABLE_DECIMALS)} is >= {interest_share_bps / 100:g}% of the "
                              f"expected discount profit {from_units(expected, STABLE_DECIMALS)}", interest, expected))
    flags += _loss_flags(risk, loss_margin_bps)
    if risk.phase == Phase.HOLDING:
        flags.append(Flag("holding", "critical", "the deal is in HOLDING: see the safe options (`ape run execute_deal` help)",
                          "HOLDING", None))
    return flags


def _ltv_flags(risk: RiskView, cap: int, margin_bps: int) -> list[Flag]:
    ltv = risk.ltvBps
    if risk.debt <= 0:
        return []
    if ltv > cap:
        return [Flag("ltv-over-cap", "critical", f"LTV {ltv} bps is over the cap {cap} bps", ltv, cap)]
    if ltv >= cap - margin_bps:
        return [Flag("ltv-near-cap", "warn", f"LTV {ltv} bps is within {margin_bps} bps of the cap {cap} bps "
                                             f"(headroom {cap - ltv} bps)", ltv, cap - margin_bps)]
    return []


def _health_flags(risk: RiskView, min_health_factor: Decimal | str | int) -> list[Flag]:
    hf_min = int(Decimal(str(min_health_factor)).scaleb(WAD_DECIMALS))
    hf = risk.healthFactor
    if risk.debt <= 0 or hf >= hf_min:
        return []
    return [Flag("health-factor", "critical" if hf < 10**WAD_DECIMALS else "warn",
                 f"health factor {from_units(hf, WAD_DECIMALS):.4f} is below {from_units(hf_min, WAD_DECIMALS)}",
                 from_units(hf, WAD_DECIMALS), from_units(hf_min, WAD_DECIMALS))]


def _oracle_flags(risk: RiskView, max_age: int, now: int | None, margin_bps: int) -> list[Flag]:
    status = risk.oracleStatus
    age = now - risk.priceUpdatedAt if now is not None else None
    if status != OracleStatus.Fresh or (age is not None and age > max_age):
        what = status.name if status in (OracleStatus.Stale, OracleStatus.Invalid) else "over its max age"
        return [Flag("oracle-stale", "critical",
                     f"the ETH/USD oracle is {what} (age {age} s, max {max_age} s): risk-adding legs are refused", age, max_age)]
    if age is not None and age * BPS >= max_age * (BPS - margin_bps):
        return [Flag("oracle-age", "warn", f"the ETH/USD price is {age} s old, near the max age {max_age} s", age,
                     max_age * (BPS - margin_bps) // BPS)]
    return []


def _loss_flags(risk: RiskView, margin_bps: int) -> list[Flag]:
    loss, budget = risk.operatorLoss, risk.lossBudget
    if loss <= 0:
        return []
    if loss >= budget:
        return [Flag("loss-budget", "critical", f"the operator legs' realized loss {_usd6(loss)} has used up the "
                                                f"loss budget {_usd6(budget)} (USD): an operator leg that loses "
                                                "more is refused (LossBudgetExceeded); owner legs only", loss, budget)]
    if loss * BPS >= budget * (BPS - margin_bps):
        return [Flag("loss-budget", "warn", f"the operator legs' realized loss {_usd6(loss)} is "
                                            f"{loss_share(loss, budget)} of the loss budget {_usd6(budget)} (USD)",
                     loss, budget * (BPS - margin_bps) // BPS)]
    return []


def loss_share(loss: int, budget: int) -> str:
    """The operator loss as a share of its budget (``0.83%``, rounded down), or why there is none."""
    return f"{Decimal(loss * BPS // budget).scaleb(-2)}%" if budget else "no budget before split"


def loss_budget_line(risk: RiskView) -> str:
    """``operator loss 12.5 of budget 1,500 USD (0.83%)`` (the 6-dp USD books)."""
    loss, budget = risk.operatorLoss, risk.lossBudget
    return f"operator loss {_usd6(loss)} of budget {_usd6(budget)} USD ({loss_share(loss, budget)})"


def _usd6(v: int) -> str:
    return f"{from_units(v, STABLE_DECIMALS).normalize():,f}"


def watch_params(params: Params, spec: Any = None) -> Params:
    """The parameters the flags check: the vault's (``lens.params``), with the LTV, exposure and
    oracle caps tightened by a deal spec's vault section if given (which way is tighter: the
    schema's); the operator loss cap stays the vault's (its budget is on chain)."""
    section = getattr(spec, "vault", None)
    if section is None:
        return params
    from dealvault.run.caps import tightest

    own: Params = from_abi(Params, section.risk_params_dict())
    return dataclasses.replace(params, maxLtvBps=tightest("maxLtvBps", params.maxLtvBps, own.maxLtvBps),
                               maxExposureBps=tightest("maxExposureBps", params.maxExposureBps, own.maxExposureBps),
                               oracleMaxAge=tightest("oracleMaxAge", params.oracleMaxAge, own.oracleMaxAge))


def spread_inputs(client: VaultClient, from_block: int = 0, risk: RiskView | None = None) -> Spread:
    """Accrued interest and the expected spread from the vault's logs (one ``eth_getLogs``).

    accrued interest = debt now - (borrowed - repaid) principal, floored at 0 (repayments are
    counted against principal first, so this never overstates interest while debt is open; the
    debt is the caps' debt, which counts repayments made on the vault's behalf as still owed, as
    the principal does); expected spread = the discount captured at buy (USDTz face bought -
    stablecoin paid)."""
    events = client.contract.events
    kinds = {_topic(getattr(events, n)().topic): getattr(events, n)() for n in ("Borrowed", "Repaid", "Bought")}
    logs = client.w3.eth.get_logs({"address": client.address, "fromBlock": from_block, "toBlock": "latest",
                                   "topics": [list(kinds)]})
    borrowed = repaid = spread = 0
    for log in logs:
        ev = kinds[_topic(log["topics"][0])]
        args = ev.process_log(log)["args"]
        if ev.event_name == "Borrowed":
            borrowed += int(args["amount"])
        elif ev.event_name == "Repaid":
            repaid += int(args["amount"])
        else:
            spread += int(args["amountOut"]) - int(args["amountIn"])
    debt = (risk or client.risk_view()).debt
    principal = max(borrowed - repaid, 0)
    return Spread(max(debt - principal, 0) if debt > 0 else 0, spread)


def _topic(t: Any) -> str:
    return (t if isinstance(t, str) else "0x" + bytes(t).hex()).lower()


# --------------------------------------------------------------------------------------------
# one read


@dataclass(frozen=True)
class DealStatus:
    """One read of a deal: the vault at one block (risk view and parameters, one round trip) and
    the record's rows of the deal (none if it has no such deal)."""

    vault: str
    lens: str
    block: int
    timestamp: int
    risk: RiskView
    params: Params
    deal: DealInfo | None = None
    legs: tuple[LegInfo, ...] = ()
    tranches: tuple[TrancheInfo, ...] = ()
    stats: TrancheStats | None = None


def read_deal(client: VaultClient, record: Record | None = None, deal_id: str | None = None) -> DealStatus:
    """The vault's risk view and parameters at the latest block, and the record's rows of ``deal_id``."""
    block = client.w3.eth.get_block("latest")
    number = int(block["number"])
    reading = client.read(block=number)
    deal = record.get_deal(deal_id) if (record is not None and deal_id is not None) else None
    st = DealStatus(client.address, client.lens_address, number, int(block["timestamp"]), reading.risk, reading.params)
    if deal is None or record is None:
        return st
    return dataclasses.replace(st, deal=deal, legs=tuple(record.legs(deal.id)), tranches=tuple(record.tranches(deal.id)),
                               stats=record.tranche_stats(deal.id))


# --------------------------------------------------------------------------------------------
# rebuild


@dataclass
class RebuildResult:
    deal_id: str
    vault: str
    added: list[int]       # legSeqs added to the record
    skipped: list[int]     # legSeqs already recorded
    tranches_added: int
    status: str


def _raw_tx(w3: Web3, tx_hash: str) -> str:
    """The mined transaction's raw bytes (eth_getRawTransactionByHash); if the node lacks the
    method, a marker (the record keeps raw_tx NOT NULL for signed legs)."""
    try:
        resp = w3.provider.make_request("eth_getRawTransactionByHash", [tx_hash])  # type: ignore[arg-type]
        raw = resp.get("result") if isinstance(resp, Mapping) else None
        if raw and raw != "0x":
            return raw if isinstance(raw, str) else "0x" + bytes(raw).hex()
    except Exception:  # an optional method
        pass
    return "0x00"


def _ensure_deal(w3: Web3, record: Record, deal_id: str, vault: str, lens: str | None, spec: Any,
                 network: str | None) -> DealInfo | None:
    """The deal's row, created when missing (None then); refuses a deal recorded with another vault."""
    from dealvault.run.chain import genesis_hash

    chain_id = int(w3.eth.chain_id)
    deal = record.get_deal(deal_id)
    if deal is None:
        if spec is not None:
            record.create_deal(spec, deal_id=deal_id, chain_id=chain_id, genesis_hash=genesis_hash(w3), vault_address=vault,
                               lens_address=lens, status="rebuilt")
        else:
            record.create_deal({"deal_id": deal_id, "rebuilt_from": "LegCompleted logs", "vault_address": vault},
                               deal_id=deal_id, network=network or f"chain-{chain_id}", chain_id=chain_id,
                               genesis_hash=genesis_hash(w3), vault_address=vault, lens_address=lens, status="rebuilt")
        return None
    if deal.vault_address and to_checksum_address(deal.vault_address) != vault:
        raise ValueError(f"deal {deal_id} is recorded with vault {deal.vault_address}, not {vault}")
    if deal.vault_address is None:
        record.update_deal(deal_id, vault_address=vault)
    if lens is not None and deal.lens_address != lens:
        record.update_deal(deal_id, lens_address=lens)
    return deal


def _add_tranches(contract: Any, vault: str, record: Record, deal_id: str, receipt: Any, row: LegInfo) -> int:
    """The Redeemed / RedemptionFailed events of a redeem leg's receipt as tranches."""
    from web3.logs import DISCARD

    n = 0
    for name in ("Redeemed", "RedemptionFailed"):
        for ev in getattr(contract.events, name)().process_receipt(receipt, errors=DISCARD):
            if to_checksum_address(ev["address"]) != vault:
                continue
            a = ev["args"]
            if name == "Redeemed":
                amount, received = int(a["amount"]), int(a["received"])
                record.add_tranche(deal_id, rung=int(a["rung"]), size=amount, received=received,
                                   fee=max(amount - received, 0), ok=True, leg=row)
            else:
                reason = a["reason"]
                reason_hex = "0x" + bytes(reason).hex() if isinstance(reason, (bytes, bytearray)) else str(reason)
                record.add_tranche(deal_id, rung=int(a["rung"]), size=int(a["amount"]), received=0, fee=0, ok=False,
                                   reason=reason_text(reason_hex), leg=row)
            n += 1
    return n


def rebuild_record(
    w3: Web3,
    vault_address: str,
    record: Record,
    deal_id: str,
    *,
    spec: Any = None,
    network: str | None = None,
    from_block: int = 0,
    to_block: Any = "latest",
    lens: str | None = None,
) -> RebuildResult:
    """Rebuild (or complete) the record of ``deal_id`` from the vault's logs alone.

    One leg per ``LegCompleted`` log, matched by transaction hash: the vault function as the leg name,
    tx hash, sender, nonce, raw transaction (when the node serves it), block, gas used and
    effective gas price from the receipt, the event's snapshot as ``risk_after``; a
    ``Redeemed`` / ``RedemptionFailed`` in the same receipt becomes a tranche. The deal row is
    created when missing (from ``spec`` if given, else a minimal one naming the vault). The deal
    status follows the vault's phase (CLOSED -> completed, HOLDING -> holding, else stopped).
    ``lens``: recorded as the deal's lens (deal_status reads the risk view through it). Only the
    vault is read (no lens needed)."""
    vault = to_checksum_address(vault_address)
    lens = to_checksum_address(lens) if lens else None
    if not w3.eth.get_code(vault):
        raise ValueError(f"vault {vault}: no contract at this address on chain {int(w3.eth.chain_id)}")
    contract: Any = w3.eth.contract(address=vault, abi=vault_abi())
    deal = _ensure_deal(w3, record, deal_id, vault, lens, spec, network)
    recorded = record.legs(deal_id)
    by_hash = {str(leg.tx_hash).lower(): leg for leg in recorded if leg.tx_hash}
    by_seq = {leg.leg_seq: leg for leg in recorded if leg.leg_seq is not None and leg.status == "confirmed"}
    logs = [e for e in contract.events.LegCompleted.get_logs(from_block=from_block, to_block=to_block)
            if to_checksum_address(e["address"]) == vault]
    logs.sort(key=lambda e: int(e["args"]["legSeq"]))
    added: list[int] = []
    skipped: list[int] = []
    n_tranches = 0
    for e in logs:
        # matched by transaction hash: a legSeq recorded with another hash is a leg the chain no
        # longer has (a reorg, a rewound node) and goes back to pending; the chain's leg is recorded
        seq = int(e["args"]["legSeq"])
        h = "0x" + bytes(e["transactionHash"]).hex()
        mine = by_hash.get(h)
        if mine is not None and mine.status == "confirmed" and mine.leg_seq == seq:
            skipped.append(seq)
            continue
        stale = by_seq.get(seq)
        if stale is not None and str(stale.tx_hash).lower() != h:
            record.mark_rewound(stale, f"rebuild: the chain's legSeq {seq} is {h}, not this transaction")
        if mine is not None and mine.status == "confirmed":  # recorded with another legSeq
            record.mark_rewound(mine, f"rebuild: the chain has it as legSeq {seq}")
        leg = leg_function(Leg(int(e["args"]["leg"])))
        tx = w3.eth.get_transaction(h)  # type: ignore[arg-type]
        receipt = w3.eth.get_transaction_receipt(h)  # type: ignore[arg-type]
        snapshot = from_abi(Snapshot, e["args"]["snapshot"]).as_dict()
        if mine is None:
            row = record.record_signed(deal_id, LEG_STEP.get(leg, -1), leg, raw_tx=_raw_tx(w3, h), nonce=int(tx["nonce"]),
                                       tx_hash=h, sender=to_checksum_address(tx["from"]),
                                       args={"rebuilt": True, "value_wei": int(tx.get("value") or 0)})
            record.mark_broadcast(row)
        else:  # our own leg, left pending (or rewound above): finished from the chain
            row = mine
        record.mark_confirmed(row, receipt, leg_seq=seq, snapshot_after={"snapshot": snapshot, "risk": None})
        added.append(seq)
        if leg == "redeem":
            n_tranches += _add_tranches(contract, vault, record, deal_id, receipt, row)
    on_chain = {"0x" + bytes(e["transactionHash"]).hex() for e in logs}
    for leg_info in record.legs(deal_id):  # mined in the range read, but not in the chain's logs: gone
        if (leg_info.status == "confirmed" and leg_info.leg_seq is not None and str(leg_info.tx_hash).lower() not in on_chain
                and int(leg_info.block_number or 0) >= from_block and leg_info.raw_tx != "0x00"):
            record.mark_rewound(leg_info, f"rebuild: the chain has no LegCompleted for {leg_info.tx_hash}")
    phase = Phase(int(contract.functions.phase().call()))
    status = {Phase.CLOSED: "completed", Phase.HOLDING: "holding"}.get(phase, "stopped")
    if added or deal is None:
        record.set_status(deal_id, status)
    final = record.get_deal(deal_id)
    return RebuildResult(deal_id=deal_id, vault=vault, added=added, skipped=skipped, tranches_added=n_tranches,
                         status=final.status if final is not None else status)


# --------------------------------------------------------------------------------------------
# `ape run deal_status`


def _address(value: str | None, flag: str) -> str | None:
    if value is None:
        return None
    if not is_address(value):
        raise InputError(f"{flag} {value!r} is not an address")
    return to_checksum_address(value)


def _lens_from_files(deployment: Path | None, config: Path | None) -> str | None:
    """The lens of a deployment record, else of a network config (default Chain 138's, if it names one)."""
    from dealvault.deploy import load_record
    from dealvault.spec.netconfig import CHAIN138_CONFIG, load_netconfig

    try:
        if deployment is not None:
            lens = (load_record(deployment).get("lens") or {}).get("address")
            if not lens:
                raise InputError(f"--deployment {deployment}: the record names no lens (a DealVault v1 record?)")
            return str(lens)
        if config is not None:
            return load_netconfig(config).venues.lens
    except InputError:
        raise
    except Exception as exc:  # a record or config that does not load: bad input
        raise InputError(str(exc)) from exc
    try:
        return load_netconfig(CHAIN138_CONFIG).venues.lens
    except Exception:  # the default config is optional here
        return None


def _thresholds(margin_bps: int, min_hf: str, oracle_margin_bps: int, interest_share_bps: int,
                loss_margin_bps: int) -> Decimal:
    for name, v in (("--margin-bps", margin_bps), ("--oracle-margin-bps", oracle_margin_bps),
                    ("--interest-share-bps", interest_share_bps), ("--loss-margin-bps", loss_margin_bps)):
        if not 0 <= v <= BPS:
            raise InputError(f"{name} {v}: allowed 0..10000")
    try:
        hf = Decimal(str(min_hf))
    except InvalidOperation:
        hf = Decimal("NaN")
    if not hf.is_finite() or hf < 0:
        raise InputError(f"--min-hf {min_hf!r}: a non-negative number")
    return hf


def _metrics(port: int | None, host: str, err: Console) -> Any:
    """A served :class:`~dealvault.observe.metrics.DealMetrics` for ``--metrics-port``, else None."""
    if port is None:
        return None
    from dealvault.observe.metrics import DealMetrics

    m = DealMetrics()
    try:
        m.serve(port, host)
    except OSError as exc:
        raise InputError(f"--metrics-port {port}: cannot listen on {host}: {exc}") from exc
    err.print(f"Prometheus metrics on http://{host}:{port}/metrics", highlight=False)
    return m


def watch(
    deal_id: str | None, *, rebuild: str | None = None, vault: str | None = None, lens: str | None = None,
    deployment: Path | None = None, config: Path | None = None, rpc: str | None = None, network: str | None = None,
    db_url: str | None = None, as_json: bool = False, once: bool = False, every: int | None = None,
    iterations: int | None = None, from_block: int | None = None, margin_bps: int = DEFAULT_MARGIN_BPS,
    min_hf: str = str(DEFAULT_MIN_HEALTH_FACTOR), oracle_margin_bps: int = DEFAULT_ORACLE_MARGIN_BPS,
    interest_share_bps: int = DEFAULT_INTEREST_SHARE_BPS, loss_margin_bps: int = DEFAULT_LOSS_MARGIN_BPS,
    plot: Path | None = None,
    out: Console | None = None, err: Console | None = None, metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> ExitCode:
    """``ape run deal_status``: a deal's record and its vault's live risk view side by side, with
    flags, once or every ``every`` seconds (``iterations`` reads at most); ``rebuild``: first
    rebuild the deal's record from the vault's logs; ``metrics_port``: serve each read as Prometheus
    metrics (:mod:`dealvault.observe.metrics`). Exit codes: OK (no flag with ``once``;
    always OK otherwise), FAILED (a flag with ``once``; the record cannot be opened), INPUT, CHAIN."""
    import json

    from dealvault.cli import console
    from dealvault.run.report import render_status, status_json

    err = err or console(stderr=True)
    out = out or console()

    def fail(msg: str, code: ExitCode = ExitCode.INPUT) -> ExitCode:
        err.print(f"[red]error:[/] {msg}", highlight=False)
        if as_json:
            print(json.dumps({"status": "error", "exit_code": int(code), "message": msg}))
        return code

    try:
        if rebuild and deal_id and rebuild != deal_id:
            raise InputError(f"DEAL_ID {deal_id!r} and --rebuild {rebuild!r} differ")
        deal_id = deal_id or rebuild
        if rebuild and not vault:
            raise InputError("--rebuild needs --vault ADDR (the record is lost: the vault's address is all there is)")
        if every is not None and every <= 0:
            raise InputError(f"--watch {every}: must be > 0 seconds")
        min_hf_d = _thresholds(margin_bps, min_hf, oracle_margin_bps, interest_share_bps, loss_margin_bps)
        vault = _address(vault, "--vault")
        if not deal_id and not vault:
            raise InputError("give DEAL_ID (its vault comes from the record) or --vault ADDR")
        lens = _address(lens, "--lens")
        file_lens = _lens_from_files(deployment, config)
        from dealvault.cli import connect

        provider = connect(rpc, network)
    except DealVaultError as exc:
        return fail(str(exc), exc.exit_code)
    try:
        record = open_record(db_url) if (deal_id or db_url) else None
    except Exception as exc:  # the database cannot be opened
        return fail(f"deal record: {exc}", ExitCode.FAILED)
    try:
        metrics = _metrics(metrics_port, metrics_host, err)
    except InputError as exc:
        if record is not None:
            record.close()
        return fail(str(exc), exc.exit_code)
    from dealvault.run.chain import rpc_guard

    try:
        with provider as w3:
            if rebuild and record is not None and vault is not None:
                with record.lock(rebuild), rpc_guard("rebuild"):
                    try:
                        res = rebuild_record(w3, vault, record, rebuild, from_block=from_block or 0, lens=lens or file_lens)
                    except ChainError:
                        raise
                    except (ValueError, DealVaultError) as exc:
                        return fail(str(exc))
                err.print(f"rebuilt deal {rebuild} from the logs of {res.vault}: {len(res.added)} leg(s) added "
                          f"(legSeq {res.added}), {len(res.skipped)} already recorded, {res.tranches_added} tranche(s); "
                          f"status {res.status}", highlight=False)
            deal = record.get_deal(deal_id) if (record is not None and deal_id) else None
            if vault is None:
                if deal is None or record is None:
                    return fail(f"unknown deal {deal_id!r} in the record {record.url if record else None!r}: give --vault, "
                                f"or --rebuild {deal_id} --vault ADDR")
                if not deal.vault_address:
                    return fail(f"deal {deal_id} has no vault address in the record: give --vault")
                vault = deal.vault_address
            lens = lens or (file_lens if deployment is not None else None) or (deal.lens_address if deal else None) or file_lens
            if lens is None:
                return fail(f"no DealVaultLens known for the vault {vault}: give --lens ADDR, --deployment RECORD or --config "
                            "(a network config with venues.lens)")
            if from_block is None:
                blocks = [leg.block_number for leg in record.legs(deal.id) if leg.block_number is not None] \
                    if (record is not None and deal is not None) else []
                from_block = min(blocks) if blocks else 0
            client = VaultClient(w3, vault, lens)
            n, code, failures = 0, ExitCode.OK, 0
            watching = every is not None and not once
            while True:
                n += 1
                t0 = time.perf_counter()
                try:
                    with rpc_guard("deal status"):
                        st = read_deal(client, record, deal_id)
                        spread = spread_inputs(client, from_block, st.risk)
                except ChainError as exc:
                    if metrics is not None:
                        metrics.observe_status(deal_id or vault, None, time.perf_counter() - t0)
                    if not watching:
                        raise
                    # a watch outlives the node's hiccups: say so, read again at the next interval
                    failures += 1
                    err.print(f"{datetime.now(UTC):%H:%M:%S} UTC: read failed ({failures} in a row): {exc}; "
                              f"retrying in {every} s", highlight=False)
                else:
                    failures = 0
                    if metrics is not None:
                        metrics.observe_status(deal_id or vault, st, time.perf_counter() - t0)
                    flags = status_flags(st.risk, st.params, margin_bps, now=st.timestamp, min_health_factor=min_hf_d,
                                         oracle_margin_bps=oracle_margin_bps, interest_share_bps=interest_share_bps,
                                         spread=spread, loss_margin_bps=loss_margin_bps)
                    if as_json:
                        print(json.dumps(status_json(st, flags, loss_budget_line(st.risk))))
                    else:
                        if watching and out.is_terminal:
                            out.clear()  # refreshed in place on a terminal; piped, each reading follows the last
                        render_status(st, flags, loss_budget_line(st.risk), out)
                    if plot is not None:  # rewritten (atomically) at every reading of a --watch
                        from dealvault.run.plot import status_chart

                        status_chart(st, plot, err)
                    code = ExitCode.FAILED if (once and flags) else ExitCode.OK
                if every is None or once or (iterations is not None and n >= iterations):
                    return code
                time.sleep(every)
    except ChainError as exc:
        return fail(str(exc), ExitCode.CHAIN)
    except KeyboardInterrupt:
        return ExitCode.OK
    finally:
        if record is not None:
            record.close()
        if metrics is not None:
            metrics.close()
