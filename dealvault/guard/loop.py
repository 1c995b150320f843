"""The guard's loop (issue 15): poll every watched deal, evaluate the rules, act.

Each poll reads every deal in a constant number of round trips (:func:`dealvault.guard.read.read_all`,
plus one batch for the interest), checks the chain (a block that does not advance for
``stall_polls`` polls, a parent hash that does not match the block seen before: a reorg), evaluates
:class:`~dealvault.guard.rules.RuleBook` and acts:

* every leg goes through the deal's crash-safe journal (:class:`~dealvault.run.sender.LegSender`:
  simulate, sign, persist, broadcast, reconcile); a guard killed mid-action and restarted first
  reconciles what it left, so it never sends twice;
* it takes the deal's locks (the record's deal and vault locks, and this host's vault lock) only
  while acting: a deal ``execute_deal`` is driving is skipped for that poll and tried again;
* the operator's key sends the risk-reducing legs, the guardian's the hold; a key the guard does not
  hold makes that action "alert only";
* ``dry_run``: nothing is sent, nothing locked; each action is said as "would ..." with its numbers.

RPC errors, timeouts, a stalled chain and a reorg are reported and the loop goes on; it never
crashes on them. With ``leases`` (:mod:`dealvault.guard.lease`), it watches only the deals it holds
the lease of, so several guards share the deals.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dealvault.errors import DealVaultError
from dealvault.guard.model import Poll, Target
from dealvault.guard.read import read_all
from dealvault.guard.rules import Decision, Rule, RuleBook, Step, plan_ltv, restore_point
from dealvault.record import DealLocked, Record, host_vault_lock, vault_lock_name
from dealvault.run.caps import require
from dealvault.run.chain import RpcFailure, batch, eth_call, genesis_hash, rpc_guard
from dealvault.run.errors import CapError, LegRejected
from dealvault.run.pool import decode_reserves, reserve_call
from dealvault.run.steps import DEADLINE_S
from dealvault.vault import Phase
from dealvault.vault.risk import ray_mul

if TYPE_CHECKING:
    from web3 import Web3

    from dealvault.run.venues import Venues
    from dealvault.spec import DealSpec

__all__ = ["GUARD_STEP", "Watched", "Keys", "Guard", "PollReport"]

#: The record's step number of the guard's legs (the deal's own steps are 0..4).
GUARD_STEP = 5
#: The most legs one LTV action plans (add collateral, repay, deleverage); it sends at most one more
#: when the interest accrued between its legs leaves the LTV a hair above the restore point.
MAX_LEGS_PER_ACTION = 3


@dataclass(frozen=True)
class Watched:
    """A deal the guard watches: its spec, its venues, what it reads of it."""

    spec: DealSpec
    venues: Venues
    target: Target


@dataclass(frozen=True)
class Keys:
    """The signers the guard holds (None: that role's actions are alert only)."""

    operator: Any = None
    guardian: Any = None


@dataclass
class PollReport:
    block: int | None
    poll: Poll | None = None  # what was read (None: the chain could not be read)
    decisions: list[Decision] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)  # tx hashes
    problems: list[str] = field(default_factory=list)  # RPC errors, stalls, reorgs, unreadable deals
    seconds: float = 0.0
    round_trips: int = 0


_SCALED = "0x1da24f3e"  # scaledBalanceOf(address)
_PREV_INDEX = "0xe0753986"  # getPreviousIndex(address)
_BALANCE = "0x70a08231"  # balanceOf(address)


def _arg(address: str) -> str:
    return address.lower().replace("0x", "").rjust(64, "0")


class Guard:
    """Watches ``deals`` on ``w3``. ``say``: one line per event (decisions, legs, problems)."""

    def __init__(self, w3: Web3, deals: Sequence[Watched], *, record: Record, keys: Keys, dry_run: bool = False,
                 say: Callable[[str], None] = print, stall_polls: int = 3, leases: Any = None,
                 clock: Callable[[], float] = time.monotonic,
                 on_poll: Callable[[PollReport], None] | None = None) -> None:
        self.w3 = w3
        self.deals = {d.spec.deal_id: d for d in deals}
        self.record = record
        self.keys = keys
        self.dry_run = dry_run
        self.say = say
        self.stall_polls = stall_polls
        self.leases = leases
        self.clock = clock
        self.on_poll = on_poll  # called with every poll's report (metrics, notifications)
        self.rules = RuleBook()
        self.polls = 0
        self._hashes: dict[int, str] = {}  # block number -> hash, the last few seen
        self._last_block: int | None = None
        self._same_block = 0
        self._stall_said = False
        self._debt_tokens: dict[str, str] = {}

    # ---- one poll

    def poll_once(self) -> PollReport:
        """Read, check, evaluate, act; never raises for RPC trouble (it is in the report)."""
        t0 = time.perf_counter()
        self.polls += 1
        report = PollReport(block=None)
        deal_ids = list(self.deals)
        if self.leases is not None:
            try:
                held = self.leases.claim(deal_ids, share=True)
            except Exception as exc:  # the record's database is down: watch nothing this poll
                self._problem(report, f"leases: {exc}")
                held = frozenset()
            deal_ids = [d for d in deal_ids if d in held]
        targets = [self.deals[d].target for d in deal_ids]
        try:
            poll = read_all(self.w3, targets)
            interest = self._interest(targets)
        except Exception as exc:  # RPC errors and timeouts: reported, the loop goes on
            self._problem(report, f"poll {self.polls}: the chain could not be read ({type(exc).__name__}: {str(exc)[:200]})")
            report.seconds = time.perf_counter() - t0
            return report
        report.block, report.round_trips, report.poll = poll.block_number, poll.round_trips + 1, poll
        self._check_chain(poll, report)
        for deal_id, why in poll.errors.items():
            self._problem(report, f"{deal_id}: cannot read its vault: {why}")
        now = self.clock()
        for deal_id, reading in poll.readings.items():
            w = self.deals[deal_id]
            books = reading.risk.stableHeld
            decisions = self.rules.evaluate(reading, w.spec, now, wrapper=w.venues.wrapper(w.spec), stable_books=books,
                                            interest=interest.get(deal_id))
            for d in decisions:
                report.decisions.append(d)
                self.say(f"guard: {deal_id} {d.rule} {d.kind}: {d.text}")
                if d.kind == "act":
                    self._act(w, d, report, now)
        report.seconds = time.perf_counter() - t0
        return report

    def run(self, *, interval: float, once: bool = False, stop: Callable[[], bool] | None = None) -> PollReport:
        """Poll every ``interval`` seconds until ``stop()`` (or once); the last poll's report."""
        while True:
            started = time.monotonic()
            report = self.poll_once()
            if self.on_poll is not None:
                try:
                    self.on_poll(report)
                except Exception as exc:  # a metrics or notification problem never stops the guard
                    self.say(f"guard: problem: on_poll: {type(exc).__name__}: {exc}")
            if once or (stop is not None and stop()):
                return report
            time.sleep(max(0.0, interval - (time.monotonic() - started)))

    # ---- the chain

    def _check_chain(self, poll: Poll, report: PollReport) -> None:
        n = poll.block_number
        if self._last_block is not None:
            if n == self._last_block:
                self._same_block += 1
                if self._same_block >= self.stall_polls and not self._stall_said:
                    self._stall_said = True
                    self._problem(report, f"chain not advancing: still block {n} after {self._same_block + 1} polls")
            else:
                if self._stall_said:
                    self.say(f"guard: the chain advances again (block {n})")
                self._same_block, self._stall_said = 0, False
            if n < self._last_block:
                self._problem(report, f"the chain went back: block {n} after block {self._last_block} (a reorg or a rewound node)")
        known = self._hashes.get(n - 1)
        if known is not None and known != poll.parent_hash:
            self._problem(report, f"reorg: block {n - 1} was {known}, block {n}'s parent is {poll.parent_hash}; "
                                  "the deals are read again at the new head")
        if self._hashes.get(n) not in (None, poll.block_hash):
            self._problem(report, f"reorg: block {n} was {self._hashes[n]}, now {poll.block_hash}")
        self._hashes[n] = poll.block_hash
        for old in [k for k in self._hashes if k < n - 64]:
            del self._hashes[old]
        self._last_block = n

    def _interest(self, targets: Sequence[Target]) -> dict[str, tuple[int, int]]:
        """Per deal: (interest accrued since its debt last changed, the debt then), 6 dp, from
        Aave's variable debt token (balance - scaled balance x the index at the last change)."""
        missing = [t for t in targets if t.deal_id not in self._debt_tokens]
        if missing:
            calls = [reserve_call(self.deals[t.deal_id].venues.pool, t.stable) for t in missing]
            with rpc_guard("getReserveData"):
                out = batch(self.w3, calls)
            for t, raw in zip(missing, out):
                try:
                    (reserve,) = decode_reserves([t.stable], [raw])
                except ValueError:
                    continue  # no Aave reserve answer: no interest alert for this deal
                self._debt_tokens[t.deal_id] = reserve.variable_debt
        have = [t for t in targets if t.deal_id in self._debt_tokens]
        calls = []
        for t in have:
            token = self._debt_tokens[t.deal_id]
            calls += [eth_call(token, sel + _arg(t.vault)) for sel in (_BALANCE, _SCALED, _PREV_INDEX)]
        if not calls:
            return {}
        with rpc_guard("the debt tokens"):
            out = batch(self.w3, calls)
        result: dict[str, tuple[int, int]] = {}
        for i, t in enumerate(have):
            answers = out[3 * i: 3 * i + 3]
            if any(isinstance(a, RpcFailure) or not a or a == "0x" for a in answers):
                continue
            balance, scaled, index = (int(a, 16) for a in answers)
            principal = ray_mul(scaled, index) if index else 0
            result[t.deal_id] = (max(balance - principal, 0), principal)
        return result

    # ---- acting

    def _act(self, w: Watched, d: Decision, report: PollReport, now: float) -> None:
        spec = w.spec
        signer = self.keys.guardian if d.rule != Rule.LTV else self.keys.operator
        role = "guardian" if d.rule != Rule.LTV else "operator"
        if signer is None:
            self.say(f"guard: {spec.deal_id} {d.rule}: alert only: the guard holds no {role} key "
                     f"(would: {'; '.join(s.text for s in d.steps)})")
            return
        if self.dry_run:
            for s in d.steps:
                self.say(f"guard: {spec.deal_id} {d.rule}: would {s.text} ({s.leg}, as the {s.role}; dry run: nothing sent)")
            self.rules.acted(spec.deal_id, d.rule, now)
            return
        from dealvault.run.deal import DealRun

        try:
            chain_id = self._chain_id()
            with self.record.lock(spec.deal_id), self.record.lock(vault_lock_name(chain_id, w.venues.vault)), \
                    host_vault_lock(chain_id, w.venues.vault):
                run = DealRun(spec, w3=self.w3, operator=signer, record=self.record, venues=w.venues)
                self.record.create_deal(spec, chain_id=run.chain_id, genesis_hash=genesis_hash(self.w3),
                                        vault_address=w.venues.vault, lens_address=w.venues.lens, exist_ok=True)
                run.sender.reconcile_pending()  # a guard killed mid-action: finish its leg first, never twice
                if d.rule == Rule.LTV:
                    self._restore_ltv(run, w, d, signer, report)
                else:
                    self._hold(run, w, d, signer, report)
        except DealLocked as exc:
            self.rules.reset(spec.deal_id, d.rule)  # tried again at the next poll
            self._problem(report, f"{spec.deal_id} {d.rule}: not acting this poll: {exc}")
            return
        except DealVaultError as exc:
            self._problem(report, f"{spec.deal_id} {d.rule}: the action failed: {exc}")
        self.rules.acted(spec.deal_id, d.rule, now)

    def _restore_ltv(self, run: Any, w: Watched, d: Decision, signer: Any, report: PollReport) -> None:
        spec = w.spec
        for sent in range(MAX_LEGS_PER_ACTION + 2):  # up to MAX + 1 legs, then one last reading
            rv = run.risk()
            params = run.reading().params
            goal = restore_point(spec, params.maxLtvBps)
            steps = plan_ltv(rv, spec, goal_bps=goal, max_slippage_bps=params.maxSlippageBps,
                             wrapper=w.venues.wrapper(spec), stable=w.target.stable, stable_books=rv.stableHeld)
            if not steps or sent == MAX_LEGS_PER_ACTION + 1:
                break
            self._send(run, w, d, steps[0], signer, rv, report)
        # restored: the condition cleared (a new fall is a new condition). Read after the last leg too:
        # an action whose last allowed leg restored the LTV must clear, or the rule, still active, would
        # never act on the next fall (the CI failure of 2026-11-30: four legs, the fourth restoring)
        if rv.ltvBps <= goal:
            self.rules.reset(spec.deal_id, Rule.LTV)
            self.say(f"guard: {spec.deal_id} ltv: restored to {rv.ltvBps} bps (cleared)")

    def _hold(self, run: Any, w: Watched, d: Decision, signer: Any, report: PollReport) -> None:
        rv = run.risk()
        if rv.phase == Phase.HOLDING:  # e.g. a hold a killed guard left, reconciled just now
            self.say(f"guard: {w.spec.deal_id} {d.rule}: the deal is in HOLDING already (legSeq {rv.legSeq}): nothing to send")
            return
        for s in d.steps:
            self._send(run, w, d, s, signer, rv, report)

    def _send(self, run: Any, w: Watched, d: Decision, s: Step, signer: Any, rv: Any, report: PollReport) -> None:
        args: tuple[Any, ...] = s.args
        if s.leg == "deleverage":
            args = (*s.args, 0, run.block_time() + DEADLINE_S)  # the vault's own bound is the minimum out
        try:
            require(s.leg, rv)
        except CapError as exc:
            raise LegRejected(f"{s.leg}: {exc}") from exc
        res = run.send(GUARD_STEP, s.leg, args, {"by": "guard", "rule": str(d.rule), "args": [str(a) for a in args]},
                       rv=rv, sender=signer)
        after = res.risk_after
        report.sent.append(str(res.tx_hash))
        self.say(f"guard: {w.spec.deal_id} {d.rule}: sent {s.text}: {res.tx_hash} legSeq {res.leg_seq}"
                 + (f", LTV {after.ltvBps} bps, phase {after.phase.name}" if after is not None else ""))

    def _chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def _problem(self, report: PollReport, text: str) -> None:
        report.problems.append(text)
        self.say(f"guard: problem: {text}")
