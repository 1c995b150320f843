"""The deal's chart (dealvault.run.plot): its numbers from a whole demo deal on the kit against the
record and the lens, the PNG, the paths it refuses, and `--plot` on execute_deal and deal_status."""

from __future__ import annotations

import dataclasses
import io
import struct
from types import SimpleNamespace

import pytest
from helpers_deal import deploy_demo, kit, reverted, signer  # noqa: F401 (kit: the fixture)
from rich.console import Console
from test_orchestrator import _cli

from dealvault.errors import ExitCode, InputError
from dealvault.record import open_record
from dealvault.run import run_deal
from dealvault.run.plot import SIZE_PX, check_plot_path, deal_series, plot_deal
from dealvault.run.status import watch
from dealvault.vault import VaultClient
from dealvault.vault.risk import MAX_UINT

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CORE_STEPS = ["borrow", "buy", "redemptions", "desk fees", "interest", "repay"]


@pytest.fixture(scope="module")
def deployed(kit, tmp_path_factory):
    return deploy_demo(kit, tmp_path_factory.mktemp("plot"))


@pytest.fixture(scope="module")
def ran(kit, deployed, tmp_path_factory):
    """The whole demo deal, run once (then the chain put back): the record's legs and tranches, the
    lens's risk view and parameters at the end, and the series made of them."""
    db = tmp_path_factory.mktemp("plot-db") / "deals.db"
    with reverted(kit.w3) as w3:
        rec = open_record(f"sqlite:///{db}")
        try:
            report = run_deal(deployed.spec, w3=w3, operator=signer("TEST::1", w3), owner=signer("TEST::0", w3), record=rec,
                              venues=deployed.venues)
            reading = VaultClient(w3, deployed.venues.vault, deployed.venues.lens).read()
            legs, tranches = rec.legs("demo-001"), rec.tranches("demo-001")
        finally:
            rec.close()
    assert report.exit_code == 0 and reading.risk.phase.name == "CLOSED"
    series = deal_series("demo-001", legs, tranches, reading.risk, reading.params)
    return SimpleNamespace(legs=legs, tranches=tranches, risk=reading.risk, params=reading.params, series=series)


def png_size(data: bytes) -> tuple[int, int]:
    """A PNG's width and height (its IHDR chunk, which the format puts first)."""
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_series_marks_are_the_legs_risk_after(ran):
    s, legs = ran.series, ran.legs
    assert [p.leg_seq for p in s.points] == [leg.leg_seq for leg in legs] == list(range(1, 11))
    assert [p.leg for p in s.points] == [leg.leg for leg in legs]
    assert [p.ltv_bps for p in s.points] == [leg.risk_after["risk"]["ltvBps"] for leg in legs]
    assert [p.exposure_bps for p in s.points] == [leg.risk_after["risk"]["exposureBps"] for leg in legs]
    assert max(p.ltv_bps for p in s.points) > 0 and max(p.exposure_bps for p in s.points) > 0
    # the tranches' legs carry their rung, numbered 1..3
    assert [(p.leg, p.rung) for p in s.points if p.rung is not None] == [("redeem", 1), ("redeem", 2), ("redeem", 3)]
    assert (s.max_ltv_bps, s.max_exposure_bps) == (ran.params.maxLtvBps, ran.params.maxExposureBps) == (3000, 2500)


def test_waterfall_adds_up_to_the_lens_nav_and_pnl(ran):
    s, r = ran.series, ran.risk
    args = {leg.leg: leg.args for leg in ran.legs}
    price = ran.legs[0].risk_after["risk"]["ethPrice"]
    assert [st.name for st in s.steps] == CORE_STEPS  # nothing else moved: no ETH, other-leg or unrecorded step
    assert s.capital_usd8 == r.fundedCapital * price // 10**18 == 15_000_000 * 10**8
    assert s.capital_usd8 + sum(st.usd8 for st in s.steps) == s.nav_usd8 == r.nav
    assert s.pnl_usd8 == r.realizedPnlUsd > 0
    # each step from what the legs were asked to do (their args) and the tranches (USD 8 dp = 6 dp x 100)
    assert s.step("borrow") == args["borrow"]["amount"] * 100
    assert s.step("buy") == -args["buy"]["amount_in"] * 100
    assert s.step("redemptions") == sum(t.size for t in ran.tranches) * 100 == r.redeemedTotal * 100
    assert s.step("desk fees") == -sum(t.fee for t in ran.tranches) * 100 == -r.feesPaid * 100
    assert s.step("repay") == -s.step("borrow")
    assert -10 * 10**8 < s.step("interest") < 0  # the 300 s TWAP wait accrued some interest on the debt
    # the whole stablecoin walk is what the vault holds at the end
    assert sum(st.usd8 for st in s.steps) == r.stableHeld * 100


def test_waterfall_that_does_not_add_up_is_refused(ran):
    with pytest.raises(ValueError, match="NAV"):
        deal_series("demo-001", ran.legs, ran.tranches, dataclasses.replace(ran.risk, nav=ran.risk.nav + 1), ran.params)
    bad_fee = [dataclasses.replace(ran.tranches[0], fee=ran.tranches[0].fee + 1), *ran.tranches[1:]]
    with pytest.raises(ValueError, match="tranches"):
        deal_series("demo-001", ran.legs, bad_fee, ran.risk, ran.params)


def test_png_is_written_atomically(ran, tmp_path):
    out = tmp_path / "chart.png"
    assert plot_deal(ran.series, out) == out
    assert png_size(out.read_bytes()) == SIZE_PX
    assert [p.name for p in tmp_path.iterdir()] == ["chart.png"]  # no temporary file left
    first = out.stat().st_ino
    plot_deal(ran.series, out)  # replaced, not rewritten in place
    assert out.stat().st_ino != first and png_size(out.read_bytes()) == SIZE_PX


@pytest.mark.parametrize("name,why", [("chart.jpg", "ending in .png"), ("chart", "ending in .png"),
                                      ("missing/chart.png", "does not exist"), ("folder.png", "is a folder")])
def test_bad_paths_are_refused_nothing_written(ran, tmp_path, name, why):
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(InputError, match=why) as exc:
        plot_deal(ran.series, tmp_path / name)
    assert exc.value.exit_code == ExitCode.INPUT == 2
    assert [p.name for p in tmp_path.iterdir()] == ["folder.png"] and not any((tmp_path / "folder.png").iterdir())
    assert check_plot_path(tmp_path / "ok.PNG") == tmp_path / "ok.PNG"


def test_cli_plot_execute_deal_and_deal_status(kit, deployed, tmp_path):
    db = f"sqlite:///{tmp_path / 'deals.db'}"
    with reverted(kit.w3):
        refused = _cli(kit, deployed, db, "--plot", str(tmp_path / "no-such-dir" / "c.png"))
        assert refused.returncode == 2 and "does not exist" in refused.stderr
        assert not (tmp_path / "deals.db").exists()  # refused before the record was opened, nothing sent

        chart = tmp_path / "run.png"
        p = _cli(kit, deployed, db, "--plot", str(chart))
        assert p.returncode == 0, p.stderr
        assert f"chart: {chart}" in p.stderr
        assert png_size(chart.read_bytes()) == SIZE_PX

        status_chart = tmp_path / "status.png"
        out, err = io.StringIO(), io.StringIO()
        code = watch("demo-001", rpc=kit.node.url, db_url=db, once=True, plot=status_chart,
                     out=Console(file=out, width=200), err=Console(file=err, width=400))
        assert code in (ExitCode.OK, ExitCode.FAILED), err.getvalue()  # FAILED: a flag was raised (--once)
        assert f"chart: {status_chart}" in err.getvalue()
        assert png_size(status_chart.read_bytes()) == SIZE_PX


def test_infinite_marks_are_a_gap_not_a_failure(ran, tmp_path):
    """A vault with USDTz and no NAV says exposure MAX_UINT (infinite): the chart still draws."""
    pts = list(ran.series.points)
    pts[4] = dataclasses.replace(pts[4], exposure_bps=MAX_UINT)
    out = plot_deal(dataclasses.replace(ran.series, points=tuple(pts)), tmp_path / "inf.png")
    assert png_size(out.read_bytes()) == SIZE_PX
