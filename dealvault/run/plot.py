"""A deal's chart (``--plot FILE`` of ``ape run execute_deal`` and ``ape run deal_status``, and
``make demo``): one PNG with two panels, titled with the deal id:

- LTV and exposure (bps) after each recorded leg, by ``legSeq``, with the caps as dashed lines;
- the NAV waterfall, in USD: the capital (the funded ETH at the price of the first leg that saw
  it) as the first bar, then the steps, then the NAV now as the last bar, its height above the
  capital being the PnL.

The numbers are computed by :func:`deal_series` (pure: the record's legs and tranches, the risk
view now, the caps) as exact integers, USD in 8 dp like the vault's ``nav``; :func:`plot_deal`
draws them (matplotlib, Agg, no display) and writes the file atomically (a temporary file in the
same folder, then a rename).

The waterfall's steps (USD 8 dp; a 6-dp stablecoin amount x 100):

=====================  ===========================================================================
``borrow``             the stablecoin the borrow legs brought in
``buy``                the stablecoin the buy legs paid for USDTz (negative)
``redemptions``        the USDTz redeemed at par (the successful tranches' sizes)
``desk fees``          the desk's fees on them (negative)
``interest``           what the repay legs paid beyond the principal borrowed (negative)
``repay``              the principal the repay legs paid back (negative)
``ETH``                (when not 0) the ETH's value now minus the capital: the price moved, the
                       collateral earned, ETH went back to the owner
``other legs``         (when not 0) the stablecoin moved by other legs (sell, deleverage, ...)
``not in the record``  (when not 0) the stablecoin moved by legs the record does not have (the
                       owner's or the guardian's)
``USDTz held``         (when not 0) the USDTz still held, at cost
``debt``               (when not 0) the debt still owed, interest included (negative)
=====================  ===========================================================================

so that capital + steps == NAV exactly (the lens's NAV: ETH at the price + stablecoin + USDTz at
cost - debt, rounded down to 8 dp), checked by :func:`deal_series`.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dealvault.errors import InputError
from dealvault.units import USD_DECIMALS, from_units
from dealvault.vault import RiskView, rung_number
from dealvault.vault.risk import MAX_UINT, eth_value

if TYPE_CHECKING:
    from dealvault.record import Record
    from dealvault.record.store import LegInfo, TrancheInfo
    from dealvault.run.deal import DealReport
    from dealvault.run.status import DealStatus
    from dealvault.vault import Params

__all__ = ["LegPoint", "Step", "DealSeries", "check_plot_path", "deal_series", "plot_deal", "run_chart", "status_chart"]

#: The figure's size in pixels (width, height) and its resolution.
SIZE_PX = (1200, 900)
DPI = 100
_STABLE_TO_USD8 = 100  # 6-dp stablecoin units -> 8-dp USD
_STABLE_STEPS = {"borrow", "buy", "redeem", "repay"}


@dataclass(frozen=True)
class LegPoint:
    """One recorded leg's marks after it: LTV and exposure in bps (the risk view's ``ltvBps`` and
    ``exposureBps``; ``MAX_UINT`` when the vault says infinite), the rung of its tranche (1..3)."""

    leg_seq: int
    leg: str
    ltv_bps: int
    exposure_bps: int
    rung: int | None = None


@dataclass(frozen=True)
class Step:
    """One bar of the waterfall: its name and its amount in USD 8 dp."""

    name: str
    usd8: int

    @property
    def usd(self) -> Decimal:
        return from_units(self.usd8, USD_DECIMALS)


@dataclass(frozen=True)
class DealSeries:
    """What the chart shows, exact: the legs' marks and the caps (bps), the waterfall (USD 8 dp)."""

    deal_id: str
    points: tuple[LegPoint, ...]
    max_ltv_bps: int
    max_exposure_bps: int
    capital_usd8: int
    steps: tuple[Step, ...]
    nav_usd8: int

    @property
    def pnl_usd8(self) -> int:
        """The NAV now minus the capital."""
        return self.nav_usd8 - self.capital_usd8

    def step(self, name: str) -> int:
        """The amount (USD 8 dp) of the step ``name`` (0 when the waterfall leaves it out)."""
        return next((s.usd8 for s in self.steps if s.name == name), 0)


def check_plot_path(path: Path | str) -> Path:
    """``path`` if a chart can be written there: a ``.png`` file in a folder that exists;
    :class:`~dealvault.errors.InputError` (exit code 2) otherwise."""
    p = Path(path)
    if p.suffix.lower() != ".png":
        raise InputError(f"--plot {p}: the chart is a PNG: give a file name ending in .png")
    if p.is_dir():
        raise InputError(f"--plot {p}: is a folder; give a file name ending in .png")
    if not p.parent.is_dir():
        raise InputError(f"--plot {p}: the folder {p.parent} does not exist")
    return p


def _view(risk_after: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """A recorded leg's view after it: the lens's risk view, else (a rebuilt record) the event's snapshot."""
    if not risk_after:
        return None
    view = risk_after.get("risk") or risk_after.get("snapshot")
    return view if isinstance(view, Mapping) else None


def deal_series(deal_id: str, legs: Sequence[LegInfo], tranches: Sequence[TrancheInfo], risk_now: RiskView,
                caps: Params) -> DealSeries:
    """The chart's numbers from the record's ``legs`` and ``tranches`` of ``deal_id``, the vault's
    risk view now and its ``caps`` (``maxLtvBps``, ``maxExposureBps``). Pure; see the module for
    the waterfall's steps. ValueError if they do not add up to the NAV."""
    rungs = {t.leg_id: rung_number(t.rung) for t in tranches if t.leg_id is not None}
    points: list[LegPoint] = []
    flows = dict.fromkeys(("borrow", "buy", "redeem", "repay", "other"), 0)  # stablecoin, 6 dp
    stable_before, first_price = 0, 0
    for leg in sorted((x for x in legs if x.status == "confirmed" and x.leg_seq is not None), key=lambda x: int(x.leg_seq or 0)):
        view = _view(leg.risk_after)
        if view is None:
            continue
        before = leg.risk_before.get("stableHeld") if leg.risk_before else None
        delta = int(view["stableHeld"]) - int(before if before is not None else stable_before)
        flows[leg.leg if leg.leg in _STABLE_STEPS else "other"] += delta
        stable_before = int(view["stableHeld"])
        first_price = first_price or int(view.get("ethPrice") or 0)
        points.append(LegPoint(int(leg.leg_seq or 0), leg.leg, int(view["ltvBps"]), int(view["exposureBps"]), rungs.get(leg.id)))
    ok = [t for t in tranches if t.ok]
    redeemed, fees = sum(t.size for t in ok), sum(t.fee for t in ok)
    principal = min(-flows["repay"], flows["borrow"])
    r = risk_now
    price = r.ethPrice if r.ethPrice > 0 else 0
    capital = eth_value(r.fundedCapital, first_price or price)
    eth_now = eth_value(r.coreEth + r.workingEth + r.opportunisticEth + r.collateralWeth, price)
    unrecorded = r.stableHeld - sum(flows.values())
    stable = [("borrow", flows["borrow"]), ("buy", flows["buy"]), ("redemptions", redeemed), ("desk fees", -fees),
              ("interest", flows["repay"] + principal), ("repay", -principal)]
    extra = [("other legs", flows["other"]), ("not in the record", unrecorded), ("USDTz held", r.usdtzCost), ("debt", -r.debt)]
    steps = [Step(n, v * _STABLE_TO_USD8) for n, v in stable]
    steps += [Step("ETH", eth_now - capital)] if eth_now != capital else []
    steps += [Step(n, v * _STABLE_TO_USD8) for n, v in extra if v]
    # redemptions + desk fees are the tranches'; the redeem legs moved what the tranches received
    if flows["redeem"] != redeemed - fees:
        raise ValueError(f"deal {deal_id}: the redeem legs received {flows['redeem']} (6 dp), the tranches say {redeemed - fees}")
    total = capital + sum(s.usd8 for s in steps)
    if total != r.nav and not (r.nav == 0 and total < 0):  # the lens shows a negative NAV as 0
        raise ValueError(f"deal {deal_id}: the waterfall ends at {total} (USD 8 dp), the vault's NAV is {r.nav}")
    return DealSeries(deal_id, tuple(points), caps.maxLtvBps, caps.maxExposureBps, capital, tuple(steps), r.nav)


def _usd_text(usd8: int, *, sign: bool = False) -> str:
    """``$1,305,000.00`` (``+``/``-`` with ``sign``), from the exact amount, rounded to cents."""
    d = from_units(usd8, USD_DECIMALS).quantize(Decimal("0.01"))
    text = f"${abs(d):,}"
    return (("-" if d < 0 else "+") + text) if sign else (("-" if d < 0 else "") + text)


@dataclass(frozen=True)
class _Floats:
    """The series as matplotlib takes it (floats), with the bars' labels (from the exact amounts)."""

    seqs: list[float]
    ltv: list[float]
    exposure: list[float]
    ticks: list[str]
    caps: tuple[float, float]
    bottoms: list[float]
    heights: list[float]
    names: list[str]
    labels: list[str]


def _to_floats(s: DealSeries) -> _Floats:
    """The one place where the series' exact integers become floats (matplotlib draws floats):
    bps as is (``MAX_UINT`` as NaN, a gap: infinite), USD 8 dp as USD; the bars' text labels are
    made from the exact amounts, never from the floats."""

    def bps(v: int) -> float:
        return float("nan") if v >= MAX_UINT else float(v)

    def usd(v: int) -> float:
        return float(from_units(v, USD_DECIMALS))

    bottoms, heights, names, labels = [0.0], [usd(s.capital_usd8)], ["capital"], [_usd_text(s.capital_usd8)]
    running = s.capital_usd8
    for st in s.steps:
        low = min(running, running + st.usd8)
        bottoms.append(usd(low))
        heights.append(usd(abs(st.usd8)))
        names.append(st.name)
        labels.append(_usd_text(st.usd8, sign=True))
        running += st.usd8
    bottoms.append(0.0)
    heights.append(usd(s.nav_usd8))
    names.append("NAV")
    labels.append(f"{_usd_text(s.nav_usd8)}\nPnL {_usd_text(s.pnl_usd8, sign=True)}")
    ticks = [f"{p.leg_seq}\n{p.leg}" + (f"\nrung {p.rung}" if p.rung is not None else "") for p in s.points]
    return _Floats([float(p.leg_seq) for p in s.points], [bps(p.ltv_bps) for p in s.points],
                   [bps(p.exposure_bps) for p in s.points], ticks, (float(s.max_ltv_bps), float(s.max_exposure_bps)),
                   bottoms, heights, names, labels)


def plot_deal(series: DealSeries, path: Path) -> Path:
    """Draw ``series`` into the PNG ``path`` (:data:`SIZE_PX` pixels), written atomically; returns
    the path. InputError (exit code 2, nothing written) for a path :func:`check_plot_path` refuses."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    path = check_plot_path(path)
    f = _to_floats(series)
    fig = Figure(figsize=(SIZE_PX[0] / DPI, SIZE_PX[1] / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.suptitle(f"Deal {series.deal_id}", fontsize=14, fontweight="bold")
    risk, nav = fig.subplots(2, 1, gridspec_kw={"height_ratios": [1, 1.2]})

    risk.plot(f.seqs, f.ltv, marker="o", color="tab:blue", label="LTV")
    risk.plot(f.seqs, f.exposure, marker="s", color="tab:orange", label="exposure")
    risk.axhline(f.caps[0], color="tab:blue", linestyle="--", linewidth=1, label=f"LTV cap {series.max_ltv_bps} bps")
    risk.axhline(f.caps[1], color="tab:orange", linestyle="--", linewidth=1, label=f"exposure cap {series.max_exposure_bps} bps")
    risk.set_xticks(f.seqs, f.ticks, fontsize=8)
    risk.set_xlabel("legSeq")
    risk.set_ylabel("bps")
    marks = [v for v in f.ltv + f.exposure if not math.isnan(v)]  # NaN (infinite) is not a mark to fit
    risk.set_ylim(bottom=0, top=max([*f.caps, *marks]) * 1.2 or 1.0)
    risk.set_title("LTV and exposure after each leg")
    risk.legend(loc="upper left", fontsize=8)
    risk.grid(axis="y", alpha=0.3)

    xs = list(range(len(f.names)))
    colors = ["tab:gray"] + ["tab:green" if lab.startswith("+") else "tab:red" for lab in f.labels[1:-1]] + ["tab:blue"]
    nav.bar(xs, f.heights, bottom=f.bottoms, color=colors, width=0.6)
    for x, b, h, lab in zip(xs, f.bottoms, f.heights, f.labels):
        nav.annotate(lab, (x, b + h), ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    nav.set_xticks(xs, f.names, fontsize=8)
    # the steps are small beside the capital: the axis starts below the lowest running total
    levels = [b + h for b, h in zip(f.bottoms, f.heights)] + f.bottoms[1:-1]
    low, top = min(levels), max(levels)
    bottom = max(0.0, low - (top - low) * 0.5)
    nav.set_ylim(bottom=bottom, top=top + (top - bottom) * 0.12 if top > bottom else 1.0)
    nav.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"${v:,.0f}"))
    nav.set_title("NAV waterfall (USD)" + (" - the axis does not start at $0" if bottom > 0 else ""))
    nav.grid(axis="y", alpha=0.3)
    fig.tight_layout()

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format="png", dpi=DPI)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def run_chart(record: Record, report: DealReport, w3: Any, lens: str, path: Path) -> Path:
    """The chart of a run (``execute_deal --plot``, ``make demo``): the record's legs and tranches
    of the report's deal, the report's final risk view, the vault's caps (read through ``lens``)."""
    from dealvault.run.chain import rpc_guard
    from dealvault.vault import VaultClient
    from dealvault.vault.client import from_abi

    with rpc_guard("the vault's parameters"):
        caps = VaultClient(w3, report.vault, lens).params()
    legs, tranches = record.legs(report.deal_id), record.tranches(report.deal_id)
    return plot_deal(deal_series(report.deal_id, legs, tranches, from_abi(RiskView, report.risk), caps), path)


def status_chart(st: DealStatus, path: Path, err: Any) -> None:
    """``deal_status --plot``: the chart of one reading (the record's legs and tranches, the live
    risk view and caps), its path said on ``err`` (``chart: <path>``); a reading that cannot be
    charted (no record of the deal, a record out of step with the vault) is said, not raised."""
    if st.deal is None:
        err.print("[yellow]chart: not written:[/] no record of this deal (its legs are the chart)", highlight=False)
        return
    try:
        written = plot_deal(deal_series(st.deal.id, st.legs, st.tranches, st.risk, st.params), path)
    except (ValueError, OSError) as exc:
        err.print(f"[yellow]chart: not written:[/] {exc}", highlight=False)
        return
    err.print(f"chart: {written}", highlight=False)
