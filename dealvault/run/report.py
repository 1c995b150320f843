"""What a person or a machine reads about a deal: the final report of a run and the status of a
deal being watched, each as a rich table (people) and a JSON document (machines).

Amounts are shown in human units from exact ints (wei / 6-dp units / 8-dp USD, see
:mod:`dealvault.units`) with Decimal; the JSON form keeps the raw integers (as JSON numbers) next
to decimal strings. The vault's state comes in typed (:class:`~dealvault.vault.RiskView`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from dealvault.jsonable import jsonable
from dealvault.run.status import WATCHED_PARAMS, loss_share
from dealvault.units import ETH_DECIMALS, STABLE_DECIMALS, USD_DECIMALS, WAD_DECIMALS, from_units
from dealvault.vault import RiskView, rung_number
from dealvault.vault.client import from_abi

if TYPE_CHECKING:
    from dealvault.run.status import DealStatus, Flag

__all__ = ["ReportSource", "jsonable", "report_json", "render_report", "status_json", "render_status", "eth", "units6", "usd8"]


class ReportSource(Protocol):
    """What a report is made of (:class:`dealvault.run.DealReport`): the run's outcome, the vault's
    risk view at the end, and the record's legs, tranches and tranche statistics in their JSON form."""

    # read-only (properties), so a dataclass with narrower field types satisfies it
    @property
    def deal_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def exit_code(self) -> int: ...
    @property
    def message(self) -> str: ...
    @property
    def vault(self) -> str: ...
    @property
    def network(self) -> str: ...
    @property
    def chain_id(self) -> int: ...
    @property
    def dry_run(self) -> bool: ...
    @property
    def seconds(self) -> float: ...
    @property
    def legs(self) -> Sequence[Any]: ...
    @property
    def all_legs(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def tranches(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def stats(self) -> Mapping[str, Any]: ...

    @property
    def risk(self) -> RiskView | Mapping[str, Any]: ...


def eth(wei: int) -> Decimal:
    return from_units(int(wei), ETH_DECIMALS)


def units6(v: int) -> Decimal:
    return from_units(int(v), STABLE_DECIMALS)


def usd8(v: int) -> Decimal:
    return from_units(int(v), USD_DECIMALS)


def _fmt(d: Decimal, places: int = 2) -> str:
    q = Decimal(1).scaleb(-places)
    return f"{d.quantize(q):,}"


def _risk(v: RiskView | Mapping[str, Any]) -> RiskView:
    return v if isinstance(v, RiskView) else from_abi(RiskView, v)


# --------------------------------------------------------------------------------------------
# a run's final report


def report_json(r: ReportSource) -> dict[str, Any]:
    """The machine-readable report (``--json``)."""
    rv = _risk(r.risk)
    stats = r.stats
    gas = [{"leg_seq": leg["leg_seq"], "step": leg["step"], "leg": leg["leg"], "gas_used": leg["gas_used"],
            "tx_hash": leg["tx_hash"], "block_number": leg["block_number"], "status": leg["status"]} for leg in r.all_legs]
    out: dict[str, Any] = jsonable({
        "deal_id": r.deal_id,
        "status": r.status,
        "exit_code": r.exit_code,
        "message": r.message,
        "dry_run": r.dry_run,
        "vault": r.vault,
        "network": r.network,
        "chain_id": r.chain_id,
        "seconds": f"{Decimal(str(round(r.seconds, 3)))}",
        "phase": rv.phase.name,
        "capital_wei": rv.fundedCapital,
        "buckets_wei": {"core": rv.coreEth, "working": rv.workingEth, "opportunistic": rv.opportunisticEth},
        "collateral_wei": rv.collateralWeth,
        "debt": rv.debt,
        "ltv_bps": rv.ltvBps,
        "exposure_bps": rv.exposureBps,
        "nav_usd8": rv.nav,
        "health_factor": rv.healthFactor,
        "stable_held": rv.stableHeld,
        "usdtz_held": rv.usdtzHeld,
        "redeemed_total": rv.redeemedTotal,
        "fees_paid": rv.feesPaid,
        "rung": rung_number(rv.rung),  # 1..3; "risk" below keeps the vault's own index
        "rung_progress": rv.rungProgress,
        "eth_price_usd8": rv.ethPrice,
        "realized_pnl_eth_wei": rv.realizedPnlEth,
        "realized_pnl_eth": str(eth(rv.realizedPnlEth)),
        "realized_pnl_usd8": rv.realizedPnlUsd,
        "realized_pnl_usd": str(usd8(rv.realizedPnlUsd)),
        "written_off_usdtz": rv.writtenOffUsdtz,
        "operator_loss": rv.operatorLoss,          # 6 dp USD: what the operator legs realized (DealVault v2)
        "loss_budget": rv.lossBudget,              # 6 dp USD: splitValue x maxOperatorLossBps / 10_000
        "split_value": rv.splitValue,              # 6 dp USD: the funded capital at the oracle price at split
        "repaid_on_behalf": rv.repaidOnBehalf,
        "pool_debt": rv.poolDebt,
        "leg_seq": rv.legSeq,
        "tranches": [{"rung": t["rung"], "size": t["size"], "received": t["received"], "fee": t["fee"], "ok": t["ok"],
                      "reason": t.get("reason"), "leg_id": t.get("leg_id")} for t in r.tranches],
        "success_rate": stats["success_rate"],
        "wilson_lower_bound": stats["wilson_lower"],
        "tranches_attempted": stats["attempted"],
        "tranches_succeeded": stats["succeeded"],
        "gas": gas,
        "gas_total": sum(int(g["gas_used"] or 0) for g in gas),
        "legs_this_run": [leg.to_json() for leg in r.legs],
        "risk": rv.as_dict(),
    })
    return out


def render_report(r: ReportSource, console: Any = None) -> None:
    """Print the report with rich (to ``console``, default stdout)."""
    from rich.table import Table

    from dealvault.cli import console as make_console

    c = console or make_console()
    rv = _risk(r.risk)
    price = usd8(rv.ethPrice)
    title = f"Deal {r.deal_id} on {r.network} (chain {r.chain_id}) - vault {r.vault}" + (" - DRY RUN" if r.dry_run else "")

    t = Table(title=title, show_header=True, header_style="bold")
    t.add_column("item")
    t.add_column("value", justify="right")
    t.add_column("note")
    t.add_row("status", f"[bold]{r.status}[/]", f"phase {rv.phase.name}, legSeq {rv.legSeq}")
    t.add_row("capital", f"{_fmt(eth(rv.fundedCapital), 4)} ETH", f"${_fmt(eth(rv.fundedCapital) * price)} at ${_fmt(price)}")
    t.add_row("buckets core / working / opp.",
              f"{_fmt(eth(rv.coreEth), 4)} / {_fmt(eth(rv.workingEth), 4)} / {_fmt(eth(rv.opportunisticEth), 4)} ETH", "booked")
    t.add_row("collateral", f"{_fmt(eth(rv.collateralWeth), 4)} WETH", f"${_fmt(usd8(rv.collateralValue))}")
    t.add_row("debt", f"{_fmt(units6(rv.debt))}", "stablecoin (6 dp)")
    hf = rv.healthFactor
    t.add_row("LTV", f"{rv.ltvBps} bps" if rv.ltvBps < 2**255 else "inf",
              f"health factor {_fmt(from_units(hf, WAD_DECIMALS), 3) if hf < 10**30 else 'n/a'}")
    t.add_row("exposure", f"{rv.exposureBps} bps" if rv.exposureBps < 2**255 else "inf",
              f"USDTz held {_fmt(units6(rv.usdtzHeld))}, NAV ${_fmt(usd8(rv.nav))}")
    t.add_row("stablecoin on the books", f"{_fmt(units6(rv.stableHeld))}", "")
    t.add_row("redeemed / desk fees", f"{_fmt(units6(rv.redeemedTotal))} / {_fmt(units6(rv.feesPaid))}", "USDTz at par")
    t.add_row("realized PnL (ETH)", f"{_fmt(eth(rv.realizedPnlEth), 6)} ETH", "set at close")
    t.add_row("realized PnL (USD)", f"${_fmt(usd8(rv.realizedPnlUsd))}", "ETH PnL at the oracle + stablecoin surplus")
    t.add_row("written off", f"{_fmt(units6(rv.writtenOffUsdtz))}", "USDTz left at close, at cost")
    share = loss_share(rv.operatorLoss, rv.lossBudget)
    t.add_row("operator loss / budget", f"${_fmt(units6(rv.operatorLoss))} / ${_fmt(units6(rv.lossBudget))}",
              f"{share}{' of the budget' if rv.lossBudget else ''} (split value ${_fmt(units6(rv.splitValue))})")
    c.print(t)

    tt = Table(title="Redemption ladder", header_style="bold")
    for col in ("#", "rung", "size", "received", "fee", "result"):
        tt.add_column(col, justify="right" if col not in ("result",) else "left")
    for i, tr in enumerate(r.tranches, 1):
        tt.add_row(str(i), str(tr["rung"]), _fmt(units6(tr["size"])), _fmt(units6(tr["received"])), _fmt(units6(tr["fee"])),
                   "ok" if tr["ok"] else f"[red]FAILED[/] {tr.get('reason') or ''}")
    s = r.stats
    tt.caption = (f"success {s['succeeded']}/{s['attempted']} = {Decimal(s['success_rate']).quantize(Decimal('0.0001'))}; "
                  f"Wilson lower bound (95%) {Decimal(s['wilson_lower']).quantize(Decimal('0.0001'))}; "
                  f"rung unlocked: {rung_number(rv.rung)} of 3")
    c.print(tt)

    tg = Table(title="Gas per leg", header_style="bold")
    for col in ("legSeq", "step", "leg", "gas used", "block", "tx"):
        tg.add_column(col, justify="right" if col in ("legSeq", "step", "gas used", "block") else "left")
    total = 0
    for leg in r.all_legs:
        total += int(leg["gas_used"] or 0)
        tg.add_row(str(leg["leg_seq"] if leg["leg_seq"] is not None else "-"), str(leg["step"]), leg["leg"],
                   f"{int(leg['gas_used'] or 0):,}", str(leg["block_number"] or "-"),
                   (leg["tx_hash"] or "")[:18] + ("" if leg["status"] == "confirmed" else f" ({leg['status']})"))
    tg.caption = f"total {total:,} gas"
    c.print(tg)
    c.print(("[green]" if r.exit_code == 0 else "[yellow]") + r.message + "[/]")


# --------------------------------------------------------------------------------------------
# a watched deal's status (`ape run deal_status`)

#: The risk view's rows deal_status shows: (field, label, decimals of its unit; None: as is).
#: The risk view's rows as deal_status and the status API (dealvault.observe.api) show them: field, label, decimals.
RISK_ROWS: tuple[tuple[str, str, int | None], ...] = (
    ("phase", "phase", None), ("paused", "paused", None), ("legSeq", "legSeq", None),
    ("fundedCapital", "capital (ETH)", ETH_DECIMALS), ("coreEth", "core (ETH)", ETH_DECIMALS),
    ("workingEth", "working (ETH)", ETH_DECIMALS), ("opportunisticEth", "opportunistic (ETH)", ETH_DECIMALS),
    ("collateralWeth", "collateral (ETH)", ETH_DECIMALS), ("debt", "debt", STABLE_DECIMALS), ("ltvBps", "LTV (bps)", None),
    ("healthFactor", "health factor", WAD_DECIMALS), ("stableHeld", "stable held", STABLE_DECIMALS),
    ("usdtzHeld", "USDTz held", STABLE_DECIMALS), ("usdtzCost", "USDTz cost", STABLE_DECIMALS), ("nav", "NAV (USD)", USD_DECIMALS),
    ("exposureBps", "exposure (bps)", None), ("rung", "rung", None), ("redeemedTotal", "redeemed", STABLE_DECIMALS),
    ("feesPaid", "desk fees", STABLE_DECIMALS), ("ethPrice", "ETH/USD", USD_DECIMALS), ("priceUpdatedAt", "price updated at", None),
    ("oracleStatus", "oracle", None), ("realizedPnlEth", "realized PnL (ETH)", ETH_DECIMALS),
    ("realizedPnlUsd", "realized PnL (USD)", USD_DECIMALS), ("writtenOffUsdtz", "written off", STABLE_DECIMALS),
    ("operatorLoss", "operator loss (USD)", STABLE_DECIMALS), ("lossBudget", "loss budget (USD)", STABLE_DECIMALS),
    ("splitValue", "split value (USD)", STABLE_DECIMALS), ("repaidOnBehalf", "repaid on behalf", STABLE_DECIMALS),
    ("poolDebt", "pool debt", STABLE_DECIMALS),
)
_TIMES = frozenset({"priceUpdatedAt", "observedAt", "readyAt"})  # unix seconds shown as UTC times
_PARAM_ROWS = (("maxLtvBps", "max LTV (bps)"), ("oracleMaxAge", "oracle max age (s)"),
               ("maxOperatorLossBps", "max operator loss (bps)"))


def _cell(v: Any, decimals: int | None, field: str = "") -> str:
    if isinstance(v, Enum):
        return v.name
    if field == "rung":
        return f"{rung_number(v)} of 3"
    if field in _TIMES and isinstance(v, int) and v > 0:
        return f"{datetime.fromtimestamp(v, UTC):%Y-%m-%d %H:%M:%S} UTC ({v})"
    if decimals is None or not isinstance(v, int) or isinstance(v, bool):
        return str(v)
    if v >= 2**255:
        return "max"
    return f"{from_units(v, decimals).quantize(Decimal('0.0001')):,}"


def status_json(st: DealStatus, flags: Sequence[Flag], loss_line: str) -> dict[str, Any]:
    """deal_status's ``--json`` document: the vault, its lens and risk view, the record's deal,
    legs, tranches and stats (when it has the deal), the flags, the parameters, the block."""
    out: dict[str, Any] = {"vault": st.vault, "lens": st.lens, "risk": st.risk.as_dict()}
    if st.deal is not None and st.stats is not None:
        d = st.deal
        out["deal"] = {"id": d.id, "network": d.network, "chain_id": d.chain_id, "genesis_hash": d.genesis_hash,
                       "vault_address": d.vault_address, "lens_address": d.lens_address, "status": d.status}
        out["legs"] = [{"leg_seq": leg.leg_seq, "step": leg.step, "leg": leg.leg, "status": leg.status, "tx_hash": leg.tx_hash,
                        "nonce": leg.nonce, "gas_used": leg.gas_used, "error": leg.error} for leg in st.legs]
        out["tranches"] = [t.to_json() for t in st.tranches]
        out["stats"] = st.stats.to_json()
    out |= {"flags": [f.to_json() for f in flags], "params": {k: getattr(st.params, k) for k in WATCHED_PARAMS},
            "loss_budget": loss_line, "block": st.block, "timestamp": st.timestamp}
    return jsonable(out)  # type: ignore[no-any-return]


def render_status(st: DealStatus, flags: Sequence[Flag], loss_line: str, console: Any) -> None:
    """deal_status's tables: the record (legs, tranches) beside the vault's risk view, then the flags."""
    from rich.columns import Columns
    from rich.table import Table

    rt = Table(title=f"vault {st.vault} @ block {st.block}", show_header=False)
    for key, label, dec in RISK_ROWS:
        rt.add_row(label, _cell(getattr(st.risk, key), dec, key))
    for key, label in _PARAM_ROWS:
        rt.add_row(label, str(getattr(st.params, key)))
    rt.caption = f"lens {st.lens}"
    panels: list[Any] = []
    if st.deal is not None:
        d = st.deal
        lt = Table(title=f"record: deal {d.id} ({d.status}, {d.network})")
        for col in ("legSeq", "step", "leg", "status", "gas", "tx"):
            lt.add_column(col)
        for leg in st.legs:
            lt.add_row(str(leg.leg_seq), str(leg.step), leg.leg, leg.status, f"{leg.gas_used or 0:,}", (leg.tx_hash or "")[:18])
        for t in st.tranches:
            lt.add_row("", "", f"tranche rung {rung_number(t.rung)}", "ok" if t.ok else "FAILED", f"{units6(t.size):,}",
                       f"recv {units6(t.received):,}")
        if st.stats is not None and st.stats.attempted:
            lt.caption = f"tranches {st.stats.succeeded}/{st.stats.attempted} ok, Wilson lower bound {st.stats.wilson_lower}"
        panels.append(lt)
    else:
        panels.append("[yellow]no record for this deal[/] (rebuild it: --rebuild DEAL_ID --vault ADDR)")
    panels.append(rt)
    console.print(Columns(panels))
    console.print(loss_line, highlight=False)
    if flags:
        for f in flags:
            color = "red" if f.severity == "critical" else "yellow"
            console.print(f"[{color}]FLAG {f.code}[/]: {f.message}", highlight=False)
    else:
        console.print("[green]no flags[/]")
