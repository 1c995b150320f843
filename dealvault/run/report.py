"""The final report of a deal run: a rich table for people, a JSON document for machines.

Amounts are shown in human units from exact ints (wei / 6-dp units / 8-dp USD) with Decimal;
the JSON form keeps the raw integers (as JSON numbers) next to decimal strings.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal
from typing import Any, Mapping

__all__ = ["jsonable", "report_json", "render_report", "eth", "units6", "usd8"]


def jsonable(v: Any) -> Any:
    """Plain JSON types: Decimals and big values as strings where needed, bytes as 0x hex."""
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [jsonable(x) for x in v]
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "0x" + bytes(v).hex()
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, bool) or v is None or isinstance(v, (int, str)):
        return v
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return jsonable(dataclasses.asdict(v))
    if hasattr(v, "hex") and callable(v.hex):
        h = v.hex()
        return h if str(h).startswith("0x") else "0x" + str(h)
    return str(v)


def eth(wei: int) -> Decimal:
    return Decimal(int(wei)).scaleb(-18)


def units6(v: int) -> Decimal:
    return Decimal(int(v)).scaleb(-6)


def usd8(v: int) -> Decimal:
    return Decimal(int(v)).scaleb(-8)


def _fmt(d: Decimal, places: int = 2) -> str:
    q = Decimal(1).scaleb(-places)
    return f"{d.quantize(q):,}"


def report_json(r: Any) -> dict[str, Any]:
    """The machine-readable report (``--json``)."""
    rv = r.risk
    stats = r.stats
    gas = [{"leg_seq": l["leg_seq"], "step": l["step"], "leg": l["leg"], "gas_used": l["gas_used"], "tx_hash": l["tx_hash"],
            "block_number": l["block_number"], "status": l["status"]} for l in r.all_legs]
    price = int(rv.get("ethPrice") or 0)
    return jsonable({
        "deal_id": r.deal_id,
        "status": r.status,
        "exit_code": r.exit_code,
        "message": r.message,
        "dry_run": r.dry_run,
        "vault": r.vault,
        "network": r.network,
        "chain_id": r.chain_id,
        "seconds": f"{Decimal(str(round(r.seconds, 3)))}",
        "phase": rv.get("phaseName"),
        "capital_wei": int(rv["fundedCapital"]),
        "buckets_wei": {"core": int(rv["coreEth"]), "working": int(rv["workingEth"]), "opportunistic": int(rv["opportunisticEth"])},
        "collateral_wei": int(rv["collateralWeth"]),
        "debt": int(rv["debt"]),
        "ltv_bps": int(rv["ltvBps"]),
        "exposure_bps": int(rv["exposureBps"]),
        "nav_usd8": int(rv["nav"]),
        "health_factor": int(rv["healthFactor"]),
        "stable_held": int(rv["stableHeld"]),
        "usdtz_held": int(rv["usdtzHeld"]),
        "redeemed_total": int(rv["redeemedTotal"]),
        "fees_paid": int(rv["feesPaid"]),
        "rung": int(rv["rung"]),
        "rung_progress": int(rv["rungProgress"]),
        "eth_price_usd8": price,
        "realized_pnl_eth_wei": int(rv["realizedPnlEth"]),
        "realized_pnl_eth": str(eth(int(rv["realizedPnlEth"]))),
        "realized_pnl_usd8": int(rv["realizedPnlUsd"]),
        "realized_pnl_usd": str(usd8(int(rv["realizedPnlUsd"]))),
        "written_off_usdtz": int(rv["writtenOffUsdtz"]),
        "operator_loss": int(rv["operatorLoss"]),          # 6 dp USD: what the operator legs realized (DealVault v2)
        "loss_budget": int(rv["lossBudget"]),              # 6 dp USD: splitValue x maxOperatorLossBps / 10_000
        "split_value": int(rv["splitValue"]),              # 6 dp USD: the funded capital at the oracle price at split
        "repaid_on_behalf": int(rv["repaidOnBehalf"]),
        "pool_debt": int(rv["poolDebt"]),
        "leg_seq": int(rv["legSeq"]),
        "tranches": [{"rung": t["rung"], "size": t["size"], "received": t["received"], "fee": t["fee"], "ok": t["ok"],
                      "reason": t.get("reason"), "leg_id": t.get("leg_id")} for t in r.tranches],
        "success_rate": stats["success_rate"],
        "wilson_lower_bound": stats["wilson_lower"],
        "tranches_attempted": stats["attempted"],
        "tranches_succeeded": stats["succeeded"],
        "rung_unlocked": int(rv["rung"]) + 1,
        "gas": gas,
        "gas_total": sum(int(g["gas_used"] or 0) for g in gas),
        "legs_this_run": [l.to_json() for l in r.legs],
        "risk": rv,
    })


def render_report(r: Any, console: Any = None) -> None:
    """Print the report with rich (to ``console``, default stdout)."""
    from rich.console import Console
    from rich.table import Table

    c = console or Console()
    rv = r.risk
    price = usd8(int(rv.get("ethPrice") or 0))
    title = f"Deal {r.deal_id} on {r.network} (chain {r.chain_id}) - vault {r.vault}" + (" - DRY RUN" if r.dry_run else "")

    t = Table(title=title, show_header=True, header_style="bold")
    t.add_column("item")
    t.add_column("value", justify="right")
    t.add_column("note")
    t.add_row("status", f"[bold]{r.status}[/]", f"phase {rv.get('phaseName')}, legSeq {rv['legSeq']}")
    t.add_row("capital", f"{_fmt(eth(rv['fundedCapital']), 4)} ETH", f"${_fmt(eth(rv['fundedCapital']) * price)} at ${_fmt(price)}")
    t.add_row("buckets core / working / opp.",
              f"{_fmt(eth(rv['coreEth']), 4)} / {_fmt(eth(rv['workingEth']), 4)} / {_fmt(eth(rv['opportunisticEth']), 4)} ETH", "booked")
    t.add_row("collateral", f"{_fmt(eth(rv['collateralWeth']), 4)} WETH", f"${_fmt(usd8(rv['collateralValue']))}")
    t.add_row("debt", f"{_fmt(units6(rv['debt']))}", "stablecoin (6 dp)")
    ltv = int(rv["ltvBps"])
    t.add_row("LTV", f"{ltv} bps" if ltv < 2**255 else "inf", f"health factor {_fmt(Decimal(int(rv['healthFactor'])).scaleb(-18), 3) if int(rv['healthFactor']) < 10**30 else 'n/a'}")
    exp = int(rv["exposureBps"])
    t.add_row("exposure", f"{exp} bps" if exp < 2**255 else "inf", f"USDTz held {_fmt(units6(rv['usdtzHeld']))}, NAV ${_fmt(usd8(rv['nav']))}")
    t.add_row("stablecoin on the books", f"{_fmt(units6(rv['stableHeld']))}", "")
    t.add_row("redeemed / desk fees", f"{_fmt(units6(rv['redeemedTotal']))} / {_fmt(units6(rv['feesPaid']))}", "USDTz at par")
    t.add_row("realized PnL (ETH)", f"{_fmt(eth(rv['realizedPnlEth']), 6)} ETH", "set at close")
    t.add_row("realized PnL (USD)", f"${_fmt(usd8(rv['realizedPnlUsd']))}", "ETH PnL at the oracle + stablecoin surplus")
    t.add_row("written off", f"{_fmt(units6(rv['writtenOffUsdtz']))}", "USDTz left at close, at cost")
    loss, budget = int(rv["operatorLoss"]), int(rv["lossBudget"])
    share = f"{Decimal(loss * 10_000 // budget).scaleb(-2)}% of the budget" if budget else "no budget before split"
    t.add_row("operator loss / budget", f"${_fmt(units6(loss))} / ${_fmt(units6(budget))}",
              f"{share} (split value ${_fmt(units6(rv['splitValue']))})")
    c.print(t)

    tt = Table(title="Redemption ladder", header_style="bold")
    for col in ("#", "rung", "size", "received", "fee", "result"):
        tt.add_column(col, justify="right" if col not in ("result",) else "left")
    for i, tr in enumerate(r.tranches, 1):
        tt.add_row(str(i), str(int(tr["rung"]) + 1), _fmt(units6(tr["size"])), _fmt(units6(tr["received"])), _fmt(units6(tr["fee"])),
                   "ok" if tr["ok"] else f"[red]FAILED[/] {tr.get('reason') or ''}")
    s = r.stats
    tt.caption = (f"success {s['succeeded']}/{s['attempted']} = {Decimal(s['success_rate']).quantize(Decimal('0.0001'))}; "
                  f"Wilson lower bound (95%) {Decimal(s['wilson_lower']).quantize(Decimal('0.0001'))}; "
                  f"rung unlocked: {int(rv['rung']) + 1} of 3")
    c.print(tt)

    tg = Table(title="Gas per leg", header_style="bold")
    for col in ("legSeq", "step", "leg", "gas used", "block", "tx"):
        tg.add_column(col, justify="right" if col in ("legSeq", "step", "gas used", "block") else "left")
    total = 0
    for l in r.all_legs:
        total += int(l["gas_used"] or 0)
        tg.add_row(str(l["leg_seq"] if l["leg_seq"] is not None else "-"), str(l["step"]), l["leg"], f"{int(l['gas_used'] or 0):,}",
                   str(l["block_number"] or "-"), (l["tx_hash"] or "")[:18] + ("" if l["status"] == "confirmed" else f" ({l['status']})"))
    tg.caption = f"total {total:,} gas"
    c.print(tg)
    c.print(("[green]" if r.exit_code == 0 else "[yellow]") + r.message + "[/]")
