"""Prometheus metrics of the guard and of ``deal_status --watch`` (issue 16).

:class:`DealMetrics` keeps its own :class:`~prometheus_client.CollectorRegistry` (never the global
one: two instances in one process, e.g. in tests, do not collide). ``observe(report)`` is the
guard's ``on_poll`` hook; ``observe_status(deal_id, status, seconds)`` is what ``deal_status
--watch`` calls after each read; ``serve(port)`` exposes ``/metrics``.

Names follow the Prometheus conventions: base units in the names (``_seconds``, ``_ratio``,
``_total``; money in ``_usd``, collateral in ``_eth``), one ``deal_id`` label per deal (no tx
hashes or other unbounded labels; ``rule`` and ``phase`` are small fixed sets).

Money is integers everywhere in the library; Prometheus values are floats, so the one conversion
to float is :func:`as_float`, here at the metrics boundary, and nothing computes with its result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from dealvault.vault import Params, Phase, RiskView

if TYPE_CHECKING:
    from dealvault.guard.loop import PollReport
    from dealvault.run.status import DealStatus

__all__ = ["DealMetrics", "METRICS", "as_float"]

UINT256_MAX = 2**256 - 1
INF = float("inf")

#: name -> help; the per-deal gauges (label ``deal_id``), in the order of the README's table.
METRICS: dict[str, str] = {
    "dealvault_deal_ltv_ratio": "Loan-to-value (debt value / collateral value); +Inf with debt and no collateral value",
    "dealvault_deal_ltv_cap_ratio": "The vault's LTV cap (maxLtvBps / 10,000)",
    "dealvault_deal_exposure_ratio": "USDTz exposure at face / NAV",
    "dealvault_deal_exposure_cap_ratio": "The vault's exposure cap (maxExposureBps / 10,000)",
    "dealvault_deal_nav_usd": "Net asset value in USD at the oracle price (0 if negative)",
    "dealvault_deal_health_factor": "Aave health factor (+Inf without debt)",
    "dealvault_deal_oracle_age_seconds": "Block time minus the ETH feed's updatedAt",
    "dealvault_deal_oracle_max_age_seconds": "The vault's oracleMaxAge: older prices are stale",
    "dealvault_deal_phase": "The deal's phase number (0 FUNDED .. 5 HOLDING, 6 CLOSED)",
    "dealvault_deal_phase_state": "1 for the deal's current phase, 0 for the others (label phase)",
    "dealvault_deal_leg_seq": "The vault's leg sequence number (legs run so far)",
    "dealvault_deal_loss_budget_used_ratio": "The operator's realized loss / its loss budget",
    "dealvault_deal_debt_usd": "Debt value in USD (par)",
    "dealvault_deal_collateral_eth": "Collateral (WETH supplied to Aave) in ETH",
    "dealvault_deal_collateral_usd": "Collateral value in USD at the oracle price",
    "dealvault_deal_block_number": "The block the deal was last read at",
}


def as_float(value: int, decimals: int = 0) -> float:
    """The metrics boundary: an integer amount with ``decimals`` decimal places as a float (what a
    Prometheus sample holds); ``type(uint256).max`` (the lens's "unbounded") is +Inf. The only
    place money becomes a float; the result is exported, never computed with."""
    if value >= UINT256_MAX:
        return INF
    out: float = int(value) / 10**decimals  # int / int: correctly rounded
    return out


def _ratio(part: int, whole: int) -> float:
    if whole == 0:
        return 0.0 if part == 0 else INF
    return as_float(part * 10**9 // whole, 9)


class DealMetrics:
    """The metrics of one process (a guard or a ``deal_status --watch``)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.clock = clock
        self.server: Any = None
        r = self.registry
        self.deal = {name: Gauge(name, text, ["deal_id"], registry=r)
                     for name, text in METRICS.items() if name != "dealvault_deal_phase_state"}
        self.phase_state = Gauge("dealvault_deal_phase_state", METRICS["dealvault_deal_phase_state"], ["deal_id", "phase"],
                                 registry=r)
        self.poll_seconds = Histogram("dealvault_poll_duration_seconds", "Seconds one poll (or one deal_status read) took",
                                      registry=r, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.polls = Counter("dealvault_polls", "Polls (guard) or reads (deal_status --watch) done", registry=r)
        self.rpc_errors = Counter("dealvault_rpc_errors", "Polls that could not read the chain (RPC errors, timeouts)",
                                  registry=r)
        self.problems = Counter("dealvault_problems", "Problems the guard reported (RPC errors, stalls, reorgs, "
                                "unreadable deals, failed actions)", registry=r)
        self.last_success = Gauge("dealvault_last_successful_poll_timestamp_seconds",
                                  "Unix time of the last poll that read the chain", registry=r)
        self.block = Gauge("dealvault_chain_block_number", "The latest block the process has seen", registry=r)
        self.block_time = Gauge("dealvault_chain_block_timestamp_seconds", "That block's timestamp", registry=r)
        self.actions = Counter("dealvault_guard_actions", "The guard's act decisions (hold, restore LTV)",
                               ["deal_id", "rule"], registry=r)
        self.alerts = Counter("dealvault_guard_alerts", "The guard's alert decisions", ["deal_id", "rule"], registry=r)

    # ---- what a read gives

    def deal_read(self, deal_id: str, risk: RiskView, params: Params, *, block: int, timestamp: int) -> None:
        """One deal's gauges from one reading (the risk view and the parameters at ``block``)."""
        values = {
            "dealvault_deal_ltv_ratio": as_float(risk.ltvBps, 4),
            "dealvault_deal_ltv_cap_ratio": as_float(params.maxLtvBps, 4),
            "dealvault_deal_exposure_ratio": as_float(risk.exposureBps, 4),
            "dealvault_deal_exposure_cap_ratio": as_float(params.maxExposureBps, 4),
            "dealvault_deal_nav_usd": as_float(risk.nav, 8),
            "dealvault_deal_health_factor": as_float(risk.healthFactor, 18),
            "dealvault_deal_oracle_age_seconds": as_float(max(timestamp - risk.priceUpdatedAt, 0)),
            "dealvault_deal_oracle_max_age_seconds": as_float(params.oracleMaxAge),
            "dealvault_deal_phase": as_float(int(risk.phase)),
            "dealvault_deal_leg_seq": as_float(risk.legSeq),
            "dealvault_deal_loss_budget_used_ratio": _ratio(risk.operatorLoss, risk.lossBudget),
            "dealvault_deal_debt_usd": as_float(risk.debtValue, 8),
            "dealvault_deal_collateral_eth": as_float(risk.collateralWeth, 18),
            "dealvault_deal_collateral_usd": as_float(risk.collateralValue, 8),
            "dealvault_deal_block_number": as_float(block),
        }
        for name, v in values.items():
            self.deal[name].labels(deal_id=deal_id).set(v)
        for p in Phase:
            self.phase_state.labels(deal_id=deal_id, phase=p.name).set(1 if p == risk.phase else 0)

    def _chain(self, block: int, timestamp: int) -> None:
        self.block.set(block)
        self.block_time.set(timestamp)
        self.last_success.set(self.clock())

    # ---- the guard's on_poll

    def observe(self, report: PollReport) -> None:
        """The guard's ``on_poll`` hook: every deal read, the poll's duration, errors and decisions."""
        self.polls.inc()
        self.poll_seconds.observe(report.seconds)
        if report.problems:
            self.problems.inc(len(report.problems))
        poll = report.poll
        if poll is None:
            self.rpc_errors.inc()
            return
        self._chain(poll.block_number, poll.timestamp)
        for deal_id, reading in poll.readings.items():
            self.deal_read(deal_id, reading.risk, reading.params, block=poll.block_number, timestamp=poll.timestamp)
        for d in report.decisions:
            if d.kind == "act":
                self.actions.labels(deal_id=d.deal_id, rule=str(d.rule)).inc()
            elif d.kind == "alert":
                self.alerts.labels(deal_id=d.deal_id, rule=str(d.rule)).inc()

    # ---- deal_status --watch

    def observe_status(self, deal_id: str, status: DealStatus | None, seconds: float) -> None:
        """After each ``deal_status --watch`` read: ``status`` None when the chain could not be read."""
        self.polls.inc()
        self.poll_seconds.observe(seconds)
        if status is None:
            self.rpc_errors.inc()
            return
        self._chain(status.block, status.timestamp)
        self.deal_read(deal_id, status.risk, status.params, block=status.block, timestamp=status.timestamp)

    # ---- exposing

    def serve(self, port: int, host: str = "127.0.0.1") -> Any:
        """Serve ``/metrics`` on ``host:port`` (a daemon thread); the HTTP server (``.shutdown()``)."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self.server = server
        return server

    def close(self) -> None:
        """Stop serving (if :meth:`serve` was called)."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
