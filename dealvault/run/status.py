"""Deal status: rebuild a lost record from the vault's logs, and the watch flags.

    from dealvault.run.status import rebuild_record, status_flags, vault_params, spread_inputs
    rebuild_record(w3, vault, record, "demo-001")          # the chain is the source of truth
    flags = status_flags(read_risk(w3, vault), vault_params(w3, vault), margin_bps=200,
                         now=block_timestamp, **spread_inputs(w3, vault))

``rebuild_record`` reads only the chain: the vault's ``LegCompleted`` logs (one per leg, keyed by
``legSeq``), each transaction and receipt (sender, nonce, raw transaction, block, gas used) and the
per-leg events of the same receipt (``Redeemed`` / ``RedemptionFailed`` -> tranches). Legs
already in the record (same ``legSeq``) are left alone, so a re-run is a no-op.

``status_flags`` is pure (no chain access): a risk view (the lens's ``riskView`` as a dict keyed
by the Solidity field names) and the vault's parameters in, a list of :class:`Flag` out. Money: ints.

Views come from the chain's DealVaultLens (``lens.riskView(vault)``, ``lens.params(vault)``):
``vault_params`` / ``spread_inputs`` take the lens address (default: the one registered for the
vault by its :class:`dealvault.run.Venues`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

from eth_utils import to_checksum_address
from web3 import Web3

__all__ = [
    "Flag",
    "RebuildResult",
    "rebuild_record",
    "status_flags",
    "vault_params",
    "spread_inputs",
    "leg_function",
    "LEG_STEP",
    "DEFAULT_MARGIN_BPS",
    "DEFAULT_MIN_HEALTH_FACTOR",
    "DEFAULT_ORACLE_MARGIN_BPS",
    "DEFAULT_INTEREST_SHARE_BPS",
    "DEFAULT_LOSS_MARGIN_BPS",
    "loss_budget_line",
]

BPS = 10_000
UINT256_MAX = 2**256 - 1
HOLDING = 5

DEFAULT_MARGIN_BPS = 200               # LTV within 2 percentage points of the cap
DEFAULT_MIN_HEALTH_FACTOR = Decimal("1.5")
DEFAULT_ORACLE_MARGIN_BPS = 2_000      # oracle older than 80% of its max age
DEFAULT_INTEREST_SHARE_BPS = 5_000     # accrued interest >= 50% of the expected discount profit
DEFAULT_LOSS_MARGIN_BPS = 2_000        # operator loss at 80% of its budget or more

# the step a leg belongs to (the orchestrator's numbering); owner / crisis legs: -1
LEG_STEP = {"fund": 0, "split": 0, "supply": 1, "borrow": 1, "buy": 2, "redeem": 3, "sell": 3, "repay": 4, "close": 4}


def leg_function(enum_name: str) -> str:
    """``LegCompleted.leg`` enum name -> the vault function (the record's leg name): ``OwnerRepay`` -> ``ownerRepay``."""
    return enum_name[:1].lower() + enum_name[1:]


# --------------------------------------------------------------------------------------------
# flags


@dataclass(frozen=True)
class Flag:
    code: str          # ltv-near-cap | ltv-over-cap | health-factor | oracle-age | oracle-stale | interest-vs-spread |
                       # loss-budget | holding
    severity: str      # warn | critical
    message: str
    value: Any = None
    limit: Any = None

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "message": self.message,
                "value": _plain(self.value), "limit": _plain(self.limit)}


def _plain(v: Any) -> Any:
    return str(v) if isinstance(v, Decimal) else v


def _param(params: Any, *names: str) -> int | None:
    for n in names:
        if isinstance(params, Mapping) and params.get(n) is not None:
            return int(params[n])
        if not isinstance(params, Mapping) and getattr(params, n, None) is not None:
            return int(getattr(params, n))
    return None


def status_flags(
    risk: Mapping[str, Any],
    params: Any,
    margin_bps: int = DEFAULT_MARGIN_BPS,
    *,
    now: int | None = None,
    min_health_factor: Decimal | str | int = DEFAULT_MIN_HEALTH_FACTOR,
    oracle_margin_bps: int = DEFAULT_ORACLE_MARGIN_BPS,
    interest_share_bps: int = DEFAULT_INTEREST_SHARE_BPS,
    accrued_interest: int | None = None,
    expected_spread: int | None = None,
    loss_margin_bps: int = DEFAULT_LOSS_MARGIN_BPS,
) -> list[Flag]:
    """The flags a watcher raises for ``risk`` (a riskView dict).

    ``params``: the vault's parameters (``maxLtvBps``, ``oracleMaxAge``; a mapping as returned by
    :func:`vault_params`, or an object with ``max_ltv_bps`` / ``oracle_max_age`` such as a deal
    spec's ``vault`` section). Edges (all inclusive, integer arithmetic):

    - ``ltv-near-cap``: debt > 0 and ``ltvBps >= maxLtvBps - margin_bps``; ``ltv-over-cap`` (critical)
      when ``ltvBps > maxLtvBps``.
    - ``health-factor``: debt > 0 and ``healthFactor < min_health_factor`` (1e18 = 1.0).
    - ``oracle-age``: ``(now - priceUpdatedAt) * 10_000 >= oracleMaxAge * (10_000 - oracle_margin_bps)``;
      ``oracle-stale`` (critical) when the age is over ``oracleMaxAge`` or the vault says Stale/Invalid.
    - ``interest-vs-spread``: ``accrued_interest * 10_000 >= expected_spread * interest_share_bps``
      with accrued interest > 0 (both in 6-dp stablecoin units; see :func:`spread_inputs`).
    - ``loss-budget``: operator loss > 0 and ``operatorLoss * 10_000 >= lossBudget * (10_000 -
      loss_margin_bps)`` (warn); critical when ``operatorLoss >= lossBudget`` (the next operator leg
      that realizes any loss is refused on chain: only the owner's legs can unwind).
    - ``holding``: the vault is in HOLDING (critical).
    """
    if margin_bps < 0 or oracle_margin_bps < 0 or interest_share_bps < 0 or loss_margin_bps < 0:
        raise ValueError("margins must be >= 0")
    flags: list[Flag] = []
    debt = int(risk.get("debt") or 0)
    cap = _param(params, "maxLtvBps", "max_ltv_bps")
    ltv = int(risk.get("ltvBps") or 0)
    if cap is not None and debt > 0:
        if ltv > cap:
            flags.append(Flag("ltv-over-cap", "critical", f"LTV {ltv} bps is over the cap {cap} bps", ltv, cap))
        elif ltv >= cap - margin_bps:
            flags.append(Flag("ltv-near-cap", "warn", f"LTV {ltv} bps is within {margin_bps} bps of the cap {cap} bps "
                                                      f"(headroom {cap - ltv} bps)", ltv, cap - margin_bps))
    hf_min = int(Decimal(str(min_health_factor)) * 10**18)
    hf = int(risk.get("healthFactor") if risk.get("healthFactor") is not None else UINT256_MAX)
    if debt > 0 and hf < hf_min:
        flags.append(Flag("health-factor", "critical" if hf < 10**18 else "warn",
                          f"health factor {Decimal(hf).scaleb(-18):.4f} is below {Decimal(hf_min).scaleb(-18)}",
                          Decimal(hf).scaleb(-18), Decimal(hf_min).scaleb(-18)))
    max_age = _param(params, "oracleMaxAge", "oracle_max_age")
    status = int(risk.get("oracleStatus") or 0)
    updated = risk.get("priceUpdatedAt")
    age = (int(now) - int(updated)) if (now is not None and updated is not None) else None
    if status != 0 or (age is not None and max_age is not None and age > max_age):
        what = ("Stale", "Invalid")[status - 1] if status in (1, 2) else "over its max age"
        flags.append(Flag("oracle-stale", "critical",
                          f"the ETH/USD oracle is {what} (age {age} s, max {max_age} s): risk-adding legs are refused", age, max_age))
    elif age is not None and max_age is not None and age * BPS >= max_age * (BPS - oracle_margin_bps):
        flags.append(Flag("oracle-age", "warn", f"the ETH/USD price is {age} s old, near the max age {max_age} s", age,
                          max_age * (BPS - oracle_margin_bps) // BPS))
    if accrued_interest is not None and expected_spread is not None and accrued_interest > 0:
        if accrued_interest * BPS >= max(expected_spread, 0) * interest_share_bps:
            flags.append(Flag("interest-vs-spread", "warn",
                              f"accrued interest {Decimal(accrued_interest).scaleb(-6)} is >= {interest_share_bps / 100:g}% of the "
                              f"expected discount profit {Decimal(expected_spread).scaleb(-6)}", accrued_interest, expected_spread))
    loss, budget = risk.get("operatorLoss"), risk.get("lossBudget")
    if loss is not None and budget is not None and int(loss) > 0:
        loss, budget = int(loss), int(budget)
        if loss >= budget:
            flags.append(Flag("loss-budget", "critical", f"the operator legs' realized loss {_usd6(loss)} has used up the "
                                                         f"loss budget {_usd6(budget)} (USD): an operator leg that loses "
                                                         "more is refused (LossBudgetExceeded); owner legs only", loss, budget))
        elif loss * BPS >= budget * (BPS - loss_margin_bps):
            flags.append(Flag("loss-budget", "warn", f"the operator legs' realized loss {_usd6(loss)} is "
                                                     f"{Decimal(loss * BPS // max(budget, 1)).scaleb(-2)}% of the loss budget {_usd6(budget)} (USD)",
                              loss, budget * (BPS - loss_margin_bps) // BPS))
    if int(risk.get("phase") or 0) == HOLDING:
        flags.append(Flag("holding", "critical", "the deal is in HOLDING: see the safe options (`ape run execute_deal` help)",
                          "HOLDING", None))
    return flags


def loss_budget_line(risk: Mapping[str, Any]) -> str:
    """``operator loss 12.5 of budget 1,500 USD (0.83%)`` from a risk view (6-dp USD books)."""
    loss, budget = int(risk.get("operatorLoss") or 0), int(risk.get("lossBudget") or 0)
    share = f"{Decimal(loss * 10_000 // budget).scaleb(-2)}%" if budget else "no budget before split"
    return f"operator loss {_usd6(loss)} of budget {_usd6(budget)} USD ({share})"


def _usd6(v: int) -> str:
    return f"{Decimal(int(v)).scaleb(-6).normalize():,f}"


def vault_params(w3: Web3, vault: str, spec: Any = None, *, lens: str | None = None) -> dict[str, int]:
    """The vault's caps the flags use (``maxLtvBps``, ``oracleMaxAge``..., from ``lens.params``);
    a deal spec's vault section, if given, may only tighten them."""
    from dealvault.run import read_params

    p = read_params(w3, vault, lens=lens)
    out = {"maxLtvBps": p["maxLtvBps"], "maxExposureBps": p["maxExposureBps"], "oracleMaxAge": p["oracleMaxAge"],
           "maxOperatorLossBps": p["maxOperatorLossBps"]}
    v = getattr(spec, "vault", None)
    if v is not None:
        out["maxLtvBps"] = min(out["maxLtvBps"], int(v.max_ltv_bps))
        out["maxExposureBps"] = min(out["maxExposureBps"], int(v.max_exposure_bps))
        out["oracleMaxAge"] = min(out["oracleMaxAge"], int(v.oracle_max_age))
    return out


def spread_inputs(w3: Web3, vault: str, from_block: int = 0, risk: Mapping[str, Any] | None = None, *,
                  lens: str | None = None) -> dict[str, int]:
    """``accrued_interest`` and ``expected_spread`` (6-dp units) from the vault's logs.

    accrued interest = debt now - (borrowed - repaid) principal, floored at 0 (repayments are
    counted against principal first, so this never overstates interest while debt is open; the
    debt is the caps' debt, which counts repayments made on the vault's behalf as still owed, as
    the principal does); expected spread = the discount captured at buy (USDTz face bought -
    stablecoin paid)."""
    from dealvault.run import _contract, read_risk

    c = _contract(w3, vault)
    ev = c.events
    borrowed = sum(int(e["args"]["amount"]) for e in ev.Borrowed.get_logs(from_block=from_block))
    repaid = sum(int(e["args"]["amount"]) for e in ev.Repaid.get_logs(from_block=from_block))
    bought = ev.Bought.get_logs(from_block=from_block)
    spread = sum(int(e["args"]["amountOut"]) - int(e["args"]["amountIn"]) for e in bought)
    debt = int((risk or read_risk(w3, vault, lens=lens))["debt"])
    principal = max(borrowed - repaid, 0)
    return {"accrued_interest": max(debt - principal, 0) if debt > 0 else 0, "expected_spread": spread}


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


def _raw_tx(w3: Web3, tx_hash: str, tx: Mapping[str, Any]) -> str:
    """The mined transaction's raw bytes (eth_getRawTransactionByHash); if the node lacks the
    method, a marker naming the hash (the record keeps raw_tx NOT NULL for signed legs)."""
    try:
        resp = w3.provider.make_request("eth_getRawTransactionByHash", [tx_hash])  # type: ignore[arg-type]
        raw = resp.get("result") if isinstance(resp, Mapping) else None
        if raw and raw != "0x":
            return raw if isinstance(raw, str) else "0x" + bytes(raw).hex()
    except Exception:  # noqa: BLE001 - optional method
        pass
    return "0x00"


def rebuild_record(
    w3: Web3,
    vault_address: str,
    record: Any,
    deal_id: str,
    *,
    spec: Any = None,
    network: str | None = None,
    from_block: int = 0,
    to_block: Any = "latest",
    lens: str | None = None,
) -> RebuildResult:
    """Rebuild (or complete) the record of ``deal_id`` from the vault's logs alone.

    One leg per ``LegCompleted`` log, keyed by ``legSeq``: the vault function as the leg name,
    tx hash, sender, nonce, raw transaction (when the node serves it), block, gas used and
    effective gas price from the receipt, the event's snapshot as ``risk_after``; a
    ``Redeemed`` / ``RedemptionFailed`` in the same receipt becomes a tranche. The deal row is
    created when missing (from ``spec`` if given, else a minimal one naming the vault). The deal
    status follows the vault's phase (``vault.phase()``: CLOSED -> completed, HOLDING -> holding,
    else stopped). ``lens``: recorded as the deal's lens (deal_status reads the risk view through it)."""
    from dealvault.run import LEGS, PHASES, _contract, _decode_reason, _named, _struct, genesis_hash, vault_abi

    vault = to_checksum_address(vault_address)
    lens = to_checksum_address(lens) if lens else None
    c = _contract(w3, vault)
    chain_id = int(w3.eth.chain_id)
    if not w3.eth.get_code(vault):
        raise ValueError(f"vault {vault}: no contract at this address on chain {chain_id}")
    deal = record.get_deal(deal_id)
    if deal is None:
        if spec is not None:
            record.create_deal(spec, deal_id=deal_id, chain_id=chain_id, genesis_hash=genesis_hash(w3), vault_address=vault,
                               lens_address=lens, status="rebuilt")
        else:
            record.create_deal({"deal_id": deal_id, "rebuilt_from": "LegCompleted logs", "vault_address": vault},
                               deal_id=deal_id, network=network or f"chain-{chain_id}", chain_id=chain_id,
                               genesis_hash=genesis_hash(w3), vault_address=vault, lens_address=lens, status="rebuilt")
    else:
        if deal.vault_address and to_checksum_address(deal.vault_address) != vault:
            raise ValueError(f"deal {deal_id} is recorded with vault {deal.vault_address}, not {vault}")
        if deal.vault_address is None:
            record.update_deal(deal_id, vault_address=vault)
        if lens is not None and deal.lens_address != lens:
            record.update_deal(deal_id, lens_address=lens)
    have = {l.leg_seq for l in record.legs(deal_id) if l.leg_seq is not None}
    logs = c.events.LegCompleted.get_logs(from_block=from_block, to_block=to_block)
    logs = [e for e in logs if to_checksum_address(e["address"]) == vault]
    logs.sort(key=lambda e: int(e["args"]["legSeq"]))
    snap_abi = [x for x in vault_abi() if x.get("name") == "LegCompleted"][0]["inputs"][2]["components"]
    added, skipped, n_tranches = [], [], 0
    from web3.logs import DISCARD

    for e in logs:
        seq = int(e["args"]["legSeq"])
        if seq in have:
            skipped.append(seq)
            continue
        leg = leg_function(LEGS[int(e["args"]["leg"])])
        h = "0x" + bytes(e["transactionHash"]).hex()
        tx = w3.eth.get_transaction(h)
        receipt = w3.eth.get_transaction_receipt(h)
        snapshot = _named(_struct([{"components": snap_abi}], e["args"]["snapshot"]))
        row = record.record_signed(deal_id, LEG_STEP.get(leg, -1), leg, raw_tx=_raw_tx(w3, h, tx), nonce=int(tx["nonce"]),
                                   tx_hash=h, sender=to_checksum_address(tx["from"]),
                                   args={"rebuilt": True, "value_wei": int(tx.get("value") or 0)})
        record.mark_broadcast(row)
        record.mark_confirmed(row, receipt, leg_seq=seq, snapshot_after={"snapshot": snapshot, "risk": None})
        added.append(seq)
        if leg == "redeem":
            for name in ("Redeemed", "RedemptionFailed"):
                for ev in getattr(c.events, name)().process_receipt(receipt, errors=DISCARD):
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
                                           reason=_decode_reason(reason_hex), leg=row)
                    n_tranches += 1
    phase = PHASES[int(c.functions.phase().call())]
    status = {"CLOSED": "completed", "HOLDING": "holding"}.get(phase, "stopped")
    if added or (deal is None):
        record.set_status(deal_id, status)
    return RebuildResult(deal_id=deal_id, vault=vault, added=added, skipped=skipped, tranches_added=n_tranches,
                         status=record.get_deal(deal_id).status)
