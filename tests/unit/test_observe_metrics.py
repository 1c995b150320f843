"""DealMetrics (issue 16) over real HTTP: what the guard's ``on_poll`` and ``deal_status --watch``
expose, scraped from the served ``/metrics`` and parsed with prometheus_client's own parser.
The readings are built by hand (exact integers in the lens's units), so each expected float is
known; the chain-backed path is tests/unit/test_observe_prometheus.py."""

from __future__ import annotations

import dataclasses
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dealvault.guard.loop import PollReport
from dealvault.guard.model import GuardReading, Poll, Probes, Target
from dealvault.guard.rules import Decision, Rule
from dealvault.kit.anvil import free_port
from dealvault.observe import hooks
from dealvault.observe.metrics import METRICS, UINT256_MAX, DealMetrics, as_float
from dealvault.run.status import DealStatus
from dealvault.vault import OracleStatus, Params, Phase, RiskView

E6, E8, E18 = 10**6, 10**8, 10**18


def risk_view(**kw) -> RiskView:
    base = {f.name: 0 for f in dataclasses.fields(RiskView)}
    base.update(phase=Phase.MONETIZING, phaseBeforeHolding=Phase.FUNDED, oracleStatus=OracleStatus.Fresh, paused=False)
    base.update(kw)
    return RiskView(**base)


def params(**kw) -> Params:
    base = {f.name: 0 for f in dataclasses.fields(Params)}
    base.update(maxLtvBps=3000, maxExposureBps=5000, oracleMaxAge=3600, rungs=(0, 0, 0))
    base.update(kw)
    return Params(**base)


def target(deal_id: str) -> Target:
    return Target(deal_id, "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20, "0x" + "44" * 20, "0x" + "55" * 20,
                  "0x" + "66" * 20)


def report(readings: dict[str, RiskView], *, block=1234, timestamp=1_700_000_000, decisions=(), problems=(), seconds=0.2):
    poll = Poll(block, "0x" + "aa" * 32, "0x" + "bb" * 32, timestamp,
                readings={d: GuardReading(target(d), rv, params(), Probes()) for d, rv in readings.items()})
    return PollReport(block=block, poll=poll, decisions=list(decisions), problems=list(problems), seconds=seconds,
                      sent=["0x" + "cd" * 32])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


@pytest.fixture
def served():
    m, port = DealMetrics(), free_port()
    m.serve(port)
    yield m, port
    m.close()


def test_as_float_is_exact_for_the_lens_units_and_unbounded_is_inf():
    assert as_float(3_012_345_678_901, 8) == 30_123.45678901
    assert as_float(2_950, 4) == 0.295
    assert as_float(UINT256_MAX, 18) == float("inf")
    assert as_float(123 * E18 + 5 * 10**17, 18) == 123.5


def test_a_guard_poll_is_served_per_deal_with_its_units(served):
    m, port = served
    hot = risk_view(ltvBps=2_951, exposureBps=4_100, nav=300_000 * E8 + 12, healthFactor=UINT256_MAX, priceUpdatedAt=1_699_999_000,
                    legSeq=17, operatorLoss=900 * E6, lossBudget=1_500 * E6, debtValue=88_000 * E8, collateralWeth=100 * E18,
                    collateralValue=300_000 * E8, phase=Phase.HOLDING)
    calm = risk_view(ltvBps=UINT256_MAX, healthFactor=1_650_000_000_000_000_000, priceUpdatedAt=1_700_000_000)
    decisions = [Decision("hot", Rule.ORACLE, "act", "the oracle is stale"), Decision("hot", Rule.LOSS_BUDGET, "alert", "60%"),
                 Decision("calm", Rule.LTV, "clear", "cleared")]
    m.observe(report({"hot": hot, "calm": calm}, decisions=decisions, problems=["chain not advancing: still block 1234"]))
    got = scrape(port)

    def v(name, deal="hot", **labels):
        return got[(name, tuple(sorted({"deal_id": deal, **labels}.items())))]

    assert v("dealvault_deal_ltv_ratio") == 0.2951 and v("dealvault_deal_ltv_cap_ratio") == 0.3
    assert v("dealvault_deal_exposure_ratio") == 0.41 and v("dealvault_deal_exposure_cap_ratio") == 0.5
    assert v("dealvault_deal_nav_usd") == 300_000.00000012
    assert v("dealvault_deal_health_factor") == float("inf") and v("dealvault_deal_health_factor", "calm") == 1.65
    assert v("dealvault_deal_ltv_ratio", "calm") == float("inf")  # debt and no collateral value
    assert v("dealvault_deal_oracle_age_seconds") == 1000 and v("dealvault_deal_oracle_age_seconds", "calm") == 0
    assert v("dealvault_deal_oracle_max_age_seconds") == 3600
    assert v("dealvault_deal_phase") == 5 and v("dealvault_deal_phase", "calm") == 4
    assert v("dealvault_deal_phase_state", phase="HOLDING") == 1 and v("dealvault_deal_phase_state", phase="MONETIZING") == 0
    assert sum(val for (name, lab), val in got.items() if name == "dealvault_deal_phase_state" and ("deal_id", "hot") in lab) == 1
    assert v("dealvault_deal_leg_seq") == 17
    assert v("dealvault_deal_loss_budget_used_ratio") == 0.6 and v("dealvault_deal_loss_budget_used_ratio", "calm") == 0
    assert v("dealvault_deal_debt_usd") == 88_000 and v("dealvault_deal_collateral_eth") == 100
    assert v("dealvault_deal_collateral_usd") == 300_000 and v("dealvault_deal_block_number") == 1234
    assert got[("dealvault_chain_block_number", ())] == 1234 and got[("dealvault_chain_block_timestamp_seconds", ())] == 1.7e9
    assert got[("dealvault_guard_actions_total", (("deal_id", "hot"), ("rule", "oracle")))] == 1
    assert got[("dealvault_guard_alerts_total", (("deal_id", "hot"), ("rule", "loss-budget")))] == 1
    assert not any(n == "dealvault_guard_actions_total" and ("deal_id", "calm") in lab for n, lab in got)  # a clear is no action
    assert got[("dealvault_polls_total", ())] == 1 and got[("dealvault_rpc_errors_total", ())] == 0
    assert got[("dealvault_problems_total", ())] == 1
    assert got[("dealvault_poll_duration_seconds_count", ())] == 1 and got[("dealvault_poll_duration_seconds_sum", ())] == 0.2
    assert got[("dealvault_last_successful_poll_timestamp_seconds", ())] > 1.7e9
    # every per-deal gauge of the table is served, and no label is unbounded (no tx hash, no address)
    assert {n for n, _ in got if n.startswith("dealvault_deal_")} == set(METRICS)
    labels = {k for _n, lab in got for k, _v in lab}
    assert labels <= {"deal_id", "rule", "phase", "le"}, labels
    assert not any("0x" in val for _n, lab in got for _k, val in lab)


def test_a_poll_that_cannot_read_the_chain_counts_as_an_rpc_error_and_keeps_the_last_values(served):
    m, port = served
    m.observe(report({"d": risk_view(legSeq=3)}))
    first = scrape(port)[("dealvault_last_successful_poll_timestamp_seconds", ())]
    m.observe(PollReport(block=None, problems=["poll 2: the chain could not be read (ConnectionError: refused)"], seconds=30.0))
    m.observe(PollReport(block=None, problems=["poll 3: the chain could not be read"], seconds=30.0))
    got = scrape(port)
    assert got[("dealvault_rpc_errors_total", ())] == 2 and got[("dealvault_polls_total", ())] == 3
    assert got[("dealvault_last_successful_poll_timestamp_seconds", ())] == first
    assert got[("dealvault_deal_leg_seq", (("deal_id", "d"),))] == 3  # the last reading stays
    assert got[("dealvault_poll_duration_seconds_bucket", (("le", "10.0"),))] == 1  # the two 30 s polls are above it
    assert got[("dealvault_poll_duration_seconds_bucket", (("le", "30.0"),))] == 3


def test_deal_status_reads_are_served_like_polls(served):
    m, port = served
    st = DealStatus("0x" + "11" * 20, "0x" + "22" * 20, 77, 5_000, risk_view(priceUpdatedAt=4_000, ltvBps=1_000), params())
    m.observe_status("demo-001", st, 0.05)
    m.observe_status("demo-001", None, 3.0)
    got = scrape(port)
    assert got[("dealvault_deal_oracle_age_seconds", (("deal_id", "demo-001"),))] == 1000
    assert got[("dealvault_deal_ltv_ratio", (("deal_id", "demo-001"),))] == 0.1
    assert got[("dealvault_chain_block_number", ())] == 77
    assert got[("dealvault_polls_total", ())] == 2 and got[("dealvault_rpc_errors_total", ())] == 1


def test_two_instances_have_their_own_registries_and_ports():
    a, b = DealMetrics(), DealMetrics()  # the global registry would refuse the second
    pa, pb = free_port(), free_port()
    a.serve(pa)
    b.serve(pb)
    try:
        a.observe(report({"x": risk_view(legSeq=1)}))
        assert ("dealvault_deal_leg_seq", (("deal_id", "x"),)) in scrape(pa)
        assert ("dealvault_deal_leg_seq", (("deal_id", "x"),)) not in scrape(pb)
    finally:
        a.close()
        b.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{pa}/metrics", timeout=2)


def test_hooks_run_every_hook_even_when_one_raises():
    seen = []

    def bad(_r):
        raise RuntimeError("metrics broke")

    hook = hooks(None, bad, seen.append)
    r = PollReport(block=None)
    with pytest.raises(RuntimeError):
        hook(r)
    assert seen == [r]
    assert hooks(None, None) is None


def test_the_shipped_rules_use_only_served_metrics_and_each_has_a_runbook_section(served):
    """Every metric an alert rule reads is one DealMetrics serves (a renamed metric would silence its
    alert); every rule has a summary and a runbook that is a heading of docs/playbook.md."""
    import re

    import yaml

    from dealvault.paths import ROOT

    m, port = served
    m.observe(report({"d": risk_view()}, decisions=[Decision("d", Rule.ORACLE, "act", "hold")]))
    served_names = {name for name, _ in scrape(port)}
    rules = [r for g in yaml.safe_load((ROOT / "ops" / "prometheus" / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} == {"DealLtvNearCap", "DealExposureNearCap", "DealOracleStale", "DealInHolding",
                                           "DealLossBudgetHalfUsed", "DealVaultGuardDown", "DealVaultGuardNotPolling",
                                           "DealVaultChainNotAdvancing"}
    used = {n for r in rules for n in re.findall(r"dealvault_\w+", r["expr"])}
    assert used and used <= served_names, used - served_names
    headings = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", (ROOT / "docs" / "playbook.md").read_text(), re.M)}
    for r in rules:
        page, _, anchor = r["annotations"]["runbook"].partition("#")
        assert page == "docs/playbook.md" and anchor in headings, (r["alert"], anchor)
        assert r["annotations"]["summary"] and r["labels"]["severity"] in ("page", "warning")
