"""Where a leg is sent, and never twice: :class:`LegSender`.

Every leg: simulate (``eth_call``, with the gas estimate, the block gas limit, the nonce and the gas
price in the same round trip); sign locally; persist raw tx + nonce + hash in the deal record
BEFORE broadcasting; broadcast; wait for the receipt (and confirmations), replacing the
transaction at a higher fee (:mod:`dealvault.run.fees`, each replacement recorded before it goes
out) every ``gas.replace_after_s`` seconds it stays unmined; check ``LegCompleted`` (``legSeq`` =
the previous one + 1); record the snapshot, the risk view after, the tranche.

:meth:`LegSender.reconcile_pending` runs first on every (re)start. A pending leg has one or more
recorded transactions (attempts: the leg, its replacements, a cancel), all at its nonce:

* one of them mined: the leg is finalized from its receipt (a mined cancel: the leg was abandoned);
* none, and the nonce is used by another transaction: the leg failed;
* none, nonce unused: the vault is read again and the leg simulated again. If it still applies it
  is rebroadcast (the latest attempt's raw bytes, if the node does not have it) and waited for,
  with replacements. If it no longer applies (a guardian's hold, the owner's pause, a stale
  oracle, another leg) it is abandoned: a leg never broadcast is simply marked failed (its nonce
  unused); one that went out is cancelled (a 0-value transfer to the sender at its nonce, higher
  fees), which releases the nonce. The steps re-plan from the chain.

Legs the owner or the guardian sent in between (a LegCompleted legSeq above the one expected) are
theirs: ours is recorded with its own legSeq and the run goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_typing import HexStr
from eth_utils import to_checksum_address
from web3 import Web3

from dealvault.jsonable import jsonable
from dealvault.run.caps import require
from dealvault.run.chain import RpcFailure, batch, is_conn_error, receipt_of, rpc_guard
from dealvault.run.errors import CapError, ChainError, DealError, InputError, LegRejected
from dealvault.run.fees import Fees, bump, quote
from dealvault.signer import ImpersonatingSender, SignedTx, SignerError, decode_raw
from dealvault.units import ETH_DECIMALS, amount_text
from dealvault.vault import LEG_PHASES, Event, Phase, RiskView, Snapshot, VaultClient, explain, reason_text

if TYPE_CHECKING:
    from dealvault.record import AttemptInfo, LegInfo, Record
    from dealvault.spec import DealSpec

__all__ = ["LegResult", "LegSender", "REDEEM_MIN_GAS", "gas_limit"]

# redeem reverts GasTooLow below this gasleft() at its check (DealVault.REDEEM_GAS: the desk's and
# the approves' fixed gas x 64/63 + what the leg needs after them); the transaction's gas limit
# must also cover the intrinsic gas and the leg's work before the check
REDEEM_MIN_GAS = 567_301
_GAS_FLOOR = {"redeem": REDEEM_MIN_GAS + 150_000}
CANCEL_GAS = 21_000  # a 0-value transfer to an account without code

# what nodes answer when a transaction is already in their pool (geth, Besu, anvil, Nethermind)
_ALREADY_KNOWN = re.compile(r"already known|known transaction|already imported|AlreadyKnown", re.IGNORECASE)


def gas_limit(leg: str, estimate: int, block_gas: int) -> int:
    """The gas limit a leg is sent with: the estimate + 30% + 20k, at least the leg's floor
    (redeem: GasTooLow below REDEEM_MIN_GAS whatever the estimate says), at most the block's."""
    return min(max(estimate * 13 // 10 + 20_000, _GAS_FLOOR.get(leg, 0)), block_gas)


@dataclass
class LegResult:
    """One leg sent (or simulated on a dry run's fork) by this run."""

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
    snapshot: Snapshot | None = None     # LegCompleted's snapshot
    risk_before: RiskView | None = None
    risk_after: RiskView | None = None   # lens.riskView after the leg (a light leg's snapshot has no marks)
    events: list[Event] = field(default_factory=list)
    seconds: float = 0.0
    status: str = "confirmed"  # confirmed | reverted | simulated
    note: str = ""

    def event(self, *names: str) -> Event | None:
        """The first of this leg's vault events named one of ``names``, if any."""
        return next((e for e in self.events if e.name in names), None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "risk_before":
                continue
            if f.name in ("snapshot", "risk_after"):
                v = v.as_dict() if v is not None else None
            elif f.name == "events":
                v = [_event_json(e) for e in v]
            out[f.name] = v
        return jsonable(out)  # type: ignore[no-any-return]


def _event_json(e: Event) -> dict[str, Any]:
    # a Snapshot goes out as the event's named fields (plain ints), as the ABI decodes it
    args = {k: ({n: int(x) for n, x in dataclasses.asdict(v).items()} if isinstance(v, Snapshot) else v)
            for k, v in e.args.items()}
    return {"event": e.name, "logIndex": e.log_index, "args": args}


#: The vault events a leg's result keeps (LegResult.events).
LEG_EVENTS = ("Funded", "Split", "Observed", "Supplied", "Borrowed", "Bought", "Sold", "Redeemed", "RedemptionFailed",
              "Repaid", "RepaidOnBehalf", "CollateralSeized", "OperatorLoss", "Closed", "HoldingEntered", "LegCompleted")


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


class LegSender:
    """Sends a deal's legs to its vault, one at a time, each recorded before it is broadcast.

    ``read_after``: the risk view after a confirmed leg (the run's reading, refreshed);
    ``on_confirmed``: called with each confirmed LegResult; ``before_rebroadcast(leg, stable)``:
    a buy or sell rebroadcast from the record needs its TWAP observation ready first;
    ``signer_for(address)``: the signer of a recorded leg's sender, for its replacements and
    cancel (None: this run holds no key for it, so its leg is only waited for)."""

    def __init__(self, *, w3: Web3, client: VaultClient, record: Record, spec: DealSpec, chain_id: int,
                 read_after: Callable[[], RiskView], on_confirmed: Callable[[LegResult], None],
                 say: Callable[[str], None], console: Any = None, receipt_timeout: float = 120.0,
                 before_rebroadcast: Callable[[str, str], None] | None = None,
                 signer_for: Callable[[str], Any] | None = None) -> None:
        self.w3 = w3
        self.client = client
        self.record = record
        self.spec = spec
        self.chain_id = chain_id
        self.read_after = read_after
        self.on_confirmed = on_confirmed
        self.say = say
        self.console = console
        self.receipt_timeout = receipt_timeout
        self.before_rebroadcast = before_rebroadcast
        self.signer_for = signer_for
        self.poll = 0.02 if spec.network.local else 1.0
        self.sent = 0  # legs sent by this process (the crash-safety hooks count them)

    # ---- one leg

    def send(self, step: int, leg: str, fn_args: tuple[Any, ...], args: dict[str, Any], *, sender: Any,
             risk_before: RiskView, value: int = 0) -> LegResult:
        """Send the vault function ``leg`` with ``fn_args``: simulate, sign, persist, broadcast,
        wait, check LegCompleted, record. ``args``: what the record keeps about it."""
        t0 = time.perf_counter()
        data = self.client.contract.encode_abi(leg, args=list(fn_args))
        tx: dict[str, Any] = {"from": sender.address, "to": self.client.address, "data": data, "value": int(value),
                              "chainId": self.chain_id}
        est, block_gas, nonce, fees = self._simulate(step, leg, tx)
        tx.update(gas=gas_limit(leg, est, block_gas), nonce=nonce, **fees.tx_fields())
        res = LegResult(step=step, leg=leg, args=args, sender=sender.address, nonce=nonce, risk_before=risk_before)
        self.sent += 1
        rb = risk_before.as_dict()
        if isinstance(sender, ImpersonatingSender):  # dry run on a throw-away fork: no key, no raw tx
            with rpc_guard(f"{leg}: send (fork)"):
                h = "0x" + bytes(sender.send({k: v for k, v in tx.items() if k != "chainId"})).hex()
            rec_leg = self.record.record_signed(self.spec.deal_id, step, leg, raw_tx="0x00", nonce=nonce, tx_hash=h,
                                                sender=sender.address, args=args, risk_before=rb, fees=fees.tx_fields())
            rec_leg = self.record.mark_broadcast(rec_leg)
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
                                                sender=sender.address, args=args, risk_before=rb, fees=fees.tx_fields())
            _test_hook("before-broadcast", h, self.sent)
            with rpc_guard(f"{leg}: eth_sendRawTransaction"):
                self.w3.eth.send_raw_transaction(signed.raw)
            rec_leg = self.record.mark_broadcast(rec_leg)
            _test_hook("after-broadcast", h, self.sent)
        res.tx_hash = h
        can_sign = not isinstance(sender, ImpersonatingSender)
        mined, receipt = self.wait_leg(rec_leg, f"step {step} {leg}", sender if can_sign else None)
        if mined is None:
            self.record.mark_failed(rec_leg, f"never mined: nonce {nonce} was used by another transaction")
            raise DealError(f"step {step} {leg}: nonce {nonce} of {sender.address} was used by another transaction "
                            "(the key is used elsewhere?); the leg was not mined; re-run with --resume")
        res.tx_hash = mined.tx_hash
        self.finalize(rec_leg, receipt, res, expected_seq=risk_before.legSeq + 1)
        res.seconds = time.perf_counter() - t0
        return res

    def _simulate(self, step: int, leg: str, tx: Mapping[str, Any]) -> tuple[int, int, int, Fees]:
        """eth_call + eth_estimateGas + the latest block (gas limit, base fee) + the pending nonce
        + the sender's balance (+ the node's gas price and priority fee): one round trip.
        LegRejected (nothing sent) if the call or the estimate reverts."""
        call = {"from": tx["from"], "to": tx["to"], "data": tx["data"], "value": hex(int(tx["value"]))}
        g = self.spec.gas
        calls: list[tuple[str, list[Any]]] = [("eth_call", [call, "latest"]), ("eth_estimateGas", [call]),
                                              ("eth_getBlockByNumber", ["latest", False]),
                                              ("eth_getTransactionCount", [tx["from"], "pending"]),
                                              ("eth_getBalance", [tx["from"], "latest"])]
        if g.is_auto:
            calls += [("eth_gasPrice", []), ("eth_maxPriorityFeePerGas", [])]
        with rpc_guard(f"{leg}: eth_call"):
            out = batch(self.w3, calls)
        for (method, _p), answer, what in zip(calls, out, ("the simulation", "gas estimation", "", "", "", "")):
            if isinstance(answer, RpcFailure) and method != "eth_maxPriorityFeePerGas":  # not every node has it
                if what:
                    raise LegRejected(f"step {step} {leg}: {what} reverted: {explain(answer.exception())}; nothing sent")
                raise DealError(f"step {step} {leg}: {method}: {answer.message}")
        est, block, nonce, balance = int(out[1], 16), out[2], int(out[3], 16), int(out[4], 16)
        price = int(out[5], 16) if g.is_auto else None
        tip = int(out[6], 16) if g.is_auto and not isinstance(out[6], RpcFailure) else None
        fees = quote(g, block, price, tip)
        block_gas = int(block["gasLimit"], 16)
        worst = gas_limit(leg, est, block_gas) * fees.per_gas + int(tx["value"])
        if balance < worst:
            raise InputError(f"step {step} {leg}: {tx['from']} holds {amount_text(balance, ETH_DECIMALS)} ETH; the leg can cost up to "
                             f"{amount_text(worst, ETH_DECIMALS)} ETH (gas limit x price + value): fund the account; nothing sent")
        return est, block_gas, nonce, fees

    def wait_leg(self, leg: LegInfo, label: str, signer: Any) -> tuple[AttemptInfo | None, Any]:
        """Wait until one of ``leg``'s transactions is mined, then for ``spec.confirmations``:
        (that attempt, its receipt). Each ``gas.replace_after_s`` seconds without one, the latest
        is replaced at higher fees (:func:`~dealvault.run.fees.bump`), recorded before it goes
        out, if ``signer`` can sign and the gas policy allows it. (None, None) if another
        transaction took the nonce. ChainError after the receipt timeout (the record keeps every
        attempt: --resume waits for them again)."""
        attempts = self.record.attempts(leg)
        sender = to_checksum_address(str(leg.sender))
        start = last = time.monotonic()
        told = False
        nonce_gone = 0
        ctx = (self.console.status(f"[bold]{label}[/]: waiting for {attempts[-1].tx_hash[:12]}...", spinner="dots")
               if self.console else contextlib.nullcontext())
        with ctx:
            while True:
                calls: list[tuple[str, list[Any]]] = [("eth_getTransactionReceipt", [a.tx_hash]) for a in attempts]
                calls.append(("eth_getTransactionCount", [sender, "latest"]))
                with rpc_guard(f"{label}: waiting for the receipt of {attempts[-1].tx_hash}"):
                    out = batch(self.w3, calls)
                for a, r in zip(attempts, out):
                    if r is not None and not isinstance(r, RpcFailure):
                        return a, self._confirmed(receipt_of(r), a.tx_hash, label)
                used = out[-1]
                if not isinstance(used, RpcFailure) and int(used, 16) > int(leg.nonce or 0):
                    nonce_gone += 1  # twice in a row: a block between the receipts and the count is no proof
                    if nonce_gone >= 2:
                        return None, None
                    time.sleep(self.poll)
                    continue
                nonce_gone = 0
                now = time.monotonic()
                if now - start > self.receipt_timeout:
                    raise ChainError(f"{label}: {attempts[-1].tx_hash} (nonce {leg.nonce}) not mined after "
                                     f"{self.receipt_timeout:g} s; the record keeps its {len(attempts)} transaction(s): "
                                     "re-run with --resume (it is replaced at a higher fee if gas allows)")
                if signer is not None and now - last >= self.spec.gas.replace_after_s:
                    last = now
                    new = self._replace(leg, attempts[-1], signer, label)
                    if new is not None:
                        attempts.append(new)
                    elif not told:
                        told = True
                        self.say(f"{label}: {attempts[-1].tx_hash} is not mined after {self.spec.gas.replace_after_s} s and "
                                 "the spec's gas policy allows no higher fee (gas.max_fee_gwei): waiting; raise it and "
                                 "--resume to replace it")
                time.sleep(self.poll)

    def _replace(self, leg: LegInfo, latest: AttemptInfo, signer: Any, label: str, *, cancel: bool = False) -> AttemptInfo | None:
        """Sign, record (before sending) and broadcast a replacement of ``latest`` (or, ``cancel``,
        a 0-value transfer to the sender) at the same nonce with fees bumped; None if the gas
        policy allows no such fee."""
        call = decode_raw(latest.raw_tx)
        old = Fees.from_fields(latest.fees or call)
        with rpc_guard(f"{label}: fees"):
            block, price, tip = batch(self.w3, [("eth_getBlockByNumber", ["latest", False]), ("eth_gasPrice", []),
                                                ("eth_maxPriorityFeePerGas", [])])
        fresh = quote(self.spec.gas, block, None if isinstance(price, RpcFailure) else int(price, 16),
                      None if isinstance(tip, RpcFailure) else int(tip, 16))
        fees = bump(old, self.spec.gas, fresh)
        if fees is None:
            return None
        sender = to_checksum_address(str(leg.sender))
        tx: dict[str, Any] = {"chainId": self.chain_id, "nonce": int(leg.nonce or 0), **fees.tx_fields()}
        if cancel:
            tx.update(to=sender, data="0x", value=0, gas=CANCEL_GAS)
        else:
            tx.update(to=to_checksum_address(call["to"]), data=call["data"], value=call["value"], gas=call["gas"])
        try:
            signed: SignedTx = signer.sign(tx)
        except Exception as exc:
            raise SignerError(f"{label}: signing the {'cancel' if cancel else 'replacement'} failed: {exc}") from exc
        kind = "cancel" if cancel else "replacement"
        attempt = self.record.record_attempt(leg, kind, signed.raw_hex, signed.hash, fees=fees.tx_fields())
        self.say(f"{label}: {kind} {signed.hash} of {latest.tx_hash} at nonce {leg.nonce}: {fees.text()} "
                 f"(was {old.text()})")
        with rpc_guard(f"{label}: eth_sendRawTransaction ({kind})"):
            try:
                self.w3.eth.send_raw_transaction(signed.raw)
            except Exception as exc:
                if is_conn_error(exc):
                    raise
                if not _ALREADY_KNOWN.search(str(exc)):
                    # e.g. "nonce too low": an earlier attempt was mined meanwhile; the wait finds it
                    self.say(f"{label}: the node refused the {kind} ({str(exc)[:160]}); waiting for the earlier transaction(s)")
        return attempt

    def _confirmed(self, receipt: Any, tx_hash: str, label: str) -> Any:
        """``receipt`` once it has ``spec.confirmations`` confirmations."""
        confirmations = int(self.spec.confirmations)
        if confirmations > 1:
            target = int(receipt["blockNumber"]) + confirmations - 1
            deadline = time.monotonic() + self.receipt_timeout
            with rpc_guard(f"{label}: waiting for {confirmations} confirmations of {tx_hash}"):
                while int(self.w3.eth.block_number) < target:
                    if self.spec.network.local:
                        self.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
                    elif time.monotonic() > deadline:
                        raise ChainError(f"{label}: {confirmations} confirmations of {tx_hash} did not arrive; re-run with --resume")
                    else:
                        time.sleep(self.poll)
        return receipt

    def finalize(self, rec_leg: Any, receipt: Any, res: LegResult, *, expected_seq: int | None) -> LegResult:
        """Record a mined leg: check LegCompleted (its leg and legSeq), store the snapshot and the
        risk view after, the tranche of a redeem."""
        res.block_number = int(receipt["blockNumber"])
        res.gas_used = int(receipt["gasUsed"])
        res.effective_gas_price = int(receipt.get("effectiveGasPrice") or 0)
        if int(receipt["status"]) != 1:
            self.record.mark_reverted(rec_leg, receipt, error=f"{res.leg} reverted in block {res.block_number}")
            res.status = "reverted"
            raise DealError(f"step {res.step} {res.leg}: transaction {res.tx_hash} reverted in block {res.block_number} "
                            "(the simulation passed: the state changed in between); the record has it; re-run with --resume")
        res.events = self.client.events(receipt, LEG_EVENTS)
        done = [e for e in res.events if e.name == "LegCompleted"]
        if len(done) != 1:
            raise DealError(f"step {res.step} {res.leg}: {len(done)} LegCompleted events in {res.tx_hash} (expected 1)")
        seq, kind = int(done[0].args["legSeq"]), done[0].args["leg"]
        if kind.name.lower() != res.leg.lower():
            raise DealError(f"step {res.step} {res.leg}: LegCompleted says leg {kind.name}")
        if expected_seq is not None and seq < expected_seq:
            raise DealError(f"step {res.step} {res.leg}: LegCompleted legSeq {seq}, expected {expected_seq} or more "
                            "(the chain went back?); the record keeps the leg pending: re-run with --resume")
        if expected_seq is not None and seq > expected_seq:
            # the owner or the guardian sent legs (hold, resume, ownerRepay...) between our read and
            # this transaction's mining: theirs are in the vault's logs, ours is recorded as mined
            res.note = f"{seq - expected_seq} leg(s) by another actor ran before it (legSeq {expected_seq}..{seq - 1})"
            self.say(f"step {res.step} {res.leg}: legSeq {seq}: {res.note}")
        res.leg_seq, res.snapshot = seq, done[0].args["snapshot"]
        try:
            res.risk_after = self.read_after()
        except ChainError:
            res.risk_after = None
        self.record.mark_confirmed(rec_leg, receipt, leg_seq=seq, snapshot_after={
            "snapshot": res.snapshot.as_dict() if res.snapshot is not None else None,
            "risk": res.risk_after.as_dict() if res.risk_after is not None else None})
        if res.leg == "redeem":
            self._record_tranches(rec_leg, res)
        self.on_confirmed(res)
        return res

    def _record_tranches(self, rec_leg: Any, res: LegResult) -> None:
        for e in res.events:
            a = e.args
            if e.name == "Redeemed":
                amount, received = int(a["amount"]), int(a["received"])
                self.record.add_tranche(self.spec.deal_id, rung=int(a["rung"]), size=amount, received=received,
                                        fee=max(amount - received, 0), ok=True, leg=rec_leg)
            elif e.name == "RedemptionFailed":
                reason = a["reason"]
                reason_hex = "0x" + bytes(reason).hex() if isinstance(reason, (bytes, bytearray)) else str(reason)
                self.record.add_tranche(self.spec.deal_id, rung=int(a["rung"]), size=int(a["amount"]), received=0,
                                        fee=0, ok=False, reason=reason_text(reason_hex), leg=rec_leg)

    # ---- pending legs (never send twice)

    def reconcile_pending(self) -> None:
        """Finish what a previous process left signed or broadcast (see the module's docstring),
        after the mined legs are checked against the chain by hash (one batch of receipts): a leg
        whose transaction the chain no longer has (a reorg, a rewound node) is pending again."""
        mined = [leg for leg in self.record.legs(self.spec.deal_id)
                 if leg.status in ("confirmed", "reverted") and leg.tx_hash and leg.raw_tx and str(leg.raw_tx) != "0x00"]
        if mined:
            with rpc_guard("eth_getTransactionReceipt"):
                receipts = batch(self.w3, [("eth_getTransactionReceipt", [str(leg.tx_hash)]) for leg in mined])
            for leg, receipt in zip(mined, receipts):
                if receipt is None:
                    self.record.mark_rewound(leg, f"rewound: block {leg.block_number} no longer has {leg.tx_hash}")
                    self.say(f"record: leg {leg.leg} (legSeq {leg.leg_seq}) {leg.tx_hash} is no longer on the chain "
                             f"(block {leg.block_number} was rewound): reconciling it again")
        for leg in self.record.pending_legs(self.spec.deal_id):
            self._reconcile(leg)

    def _reconcile(self, leg: LegInfo) -> None:
        attempts = self.record.attempts(leg)
        sender = to_checksum_address(str(leg.sender))
        calls: list[tuple[str, list[Any]]] = [("eth_getTransactionReceipt", [a.tx_hash]) for a in attempts]
        calls += [("eth_getTransactionByHash", [a.tx_hash]) for a in attempts]
        calls.append(("eth_getTransactionCount", [sender, "latest"]))
        with rpc_guard("eth_getTransactionReceipt"):
            out = batch(self.w3, calls)
        n = len(attempts)
        receipts, txs, used = out[:n], out[n:2 * n], out[-1]
        mined: tuple[AttemptInfo | None, Any] = next(
            ((a, receipt_of(r)) for a, r in zip(attempts, receipts) if r is not None and not isinstance(r, RpcFailure)), (None, None))
        why: str | None = None
        if mined[0] is None:
            h = str(leg.tx_hash)
            known = any(t is not None and not isinstance(t, RpcFailure) for t in txs)
            if not known and not isinstance(used, RpcFailure) and int(used, 16) > int(leg.nonce or 0):
                self.record.mark_failed(leg, f"never mined: nonce {leg.nonce} was used by another transaction")
                self.say(f"record: leg {leg.leg} ({h}) was never mined; its nonce {leg.nonce} is used: marked failed")
                return
            stable = (leg.args or {}).get("stable")
            if not known and leg.leg in ("buy", "sell") and stable and self.before_rebroadcast is not None:
                # the signed leg needs the TWAP observation ready when it is mined
                self.before_rebroadcast(leg.leg, str(stable))
            # the chain may have moved since it was signed (a guardian's hold, the owner's pause, a
            # stale oracle, another leg): simulate it again before it goes out, or stays out
            why = self._still_applies(leg)
            signer = self.signer_for(sender) if self.signer_for is not None else None
            if why is not None and not known and leg.status == "signed":
                self.record.mark_failed(leg, f"abandoned before rebroadcast: {why}")
                self.say(f"record: leg {leg.leg} {h} no longer applies ({why}); abandoned, never sent: its nonce "
                         f"{leg.nonce} stays unused and the steps re-plan from the chain")
                return
            if why is not None and signer is None:
                if not known:
                    self.record.mark_failed(leg, f"abandoned before rebroadcast: {why}")
                    self.say(f"record: leg {leg.leg} {h} no longer applies ({why}); abandoned (not rebroadcast; this run "
                             f"holds no key for {sender} to cancel nonce {leg.nonce})")
                    return
                self.say(f"record: leg {leg.leg} {h} no longer applies ({why}) but is pending at the node and this run "
                         f"holds no key for {sender} to cancel it: waiting for it")
            elif why is not None:
                self.say(f"record: leg {leg.leg} {h} no longer applies ({why}); "
                         f"{'pending at the node' if known else 'it went out'}: cancelling nonce {leg.nonce}")
                if self._replace(leg, attempts[-1], signer, leg.leg, cancel=True) is None:
                    self.say(f"record: the gas policy allows no fee above {h}'s to cancel it: waiting for it instead")
            elif not known:
                self.say(f"record: leg {leg.leg} {h} unknown to the node, nonce {leg.nonce} unused, its simulation passes "
                         "again: rebroadcasting the same raw tx")
                with rpc_guard("eth_sendRawTransaction"):
                    try:
                        self.w3.eth.send_raw_transaction(HexStr(str(leg.raw_tx)))
                    except Exception as exc:  # a race with our own earlier broadcast is fine
                        if not _ALREADY_KNOWN.search(str(exc)):
                            raise
                if leg.status == "signed":
                    leg = self.record.mark_broadcast(leg)
            mined = self.wait_leg(leg, leg.leg, signer if why is None else None)
            if mined[0] is None:
                self.record.mark_failed(leg, f"never mined: nonce {leg.nonce} was used by another transaction")
                self.say(f"record: leg {leg.leg} ({h}) was never mined; its nonce {leg.nonce} is used: marked failed")
                return
        else:
            self.say(f"record: leg {leg.leg} {mined[0].tx_hash} was mined in block {mined[1]['blockNumber']}: recording it")
        attempt, receipt = mined
        assert attempt is not None
        if attempt.kind == "cancel":
            self.record.mark_failed(leg, f"abandoned: {why or 'no longer applied'}; nonce {leg.nonce} released by the cancel "
                                         f"{attempt.tx_hash} (block {receipt['blockNumber']})")
            self.say(f"record: leg {leg.leg} cancelled: nonce {leg.nonce} released by {attempt.tx_hash}; "
                     "the steps re-plan from the chain")
            return
        res = LegResult(step=leg.step, leg=leg.leg, args=dict(leg.args or {}), sender=leg.sender or "", tx_hash=attempt.tx_hash,
                        nonce=leg.nonce, note="reconciled from the record")
        rb = leg.risk_before
        self.finalize(leg, receipt, res, expected_seq=int(rb["legSeq"]) + 1 if rb and "legSeq" in rb else None)

    def _still_applies(self, leg: LegInfo) -> str | None:
        """None if the saved leg still applies: a fresh read of the vault (not HOLDING; its phase,
        pause and oracle as :func:`~dealvault.run.caps.require` wants for the leg) and the saved
        transaction's call succeeding now (``eth_call`` from its sender, at the latest block);
        else why not (the revert decoded by name)."""
        rv = self.read_after()
        if rv.phase == Phase.HOLDING:
            return f"the vault is in HOLDING (since legSeq {rv.legSeq}); the harness sends no leg there"
        if leg.leg in LEG_PHASES:
            try:
                require(leg.leg, rv)
            except CapError as exc:
                return str(exc)
        call = decode_raw(str(leg.raw_tx))
        tx = {"from": to_checksum_address(str(leg.sender)), "to": to_checksum_address(call["to"]), "data": call["data"],
              "value": hex(call["value"])}
        with rpc_guard(f"{leg.leg}: eth_call"):
            (answer,) = batch(self.w3, [("eth_call", [tx, "latest"])])
        return explain(answer.exception()) if isinstance(answer, RpcFailure) else None
