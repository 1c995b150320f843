"""One guard poll: every watched deal's risk view, parameters and probes, and the block they were
read at, in a constant number of HTTP requests whatever the number of deals (issue 15).

    poll = read_all(w3, targets)          # 1 round trip, 2 when some deal has a desk to probe
    poll.readings["demo-001"].risk.ltvBps, poll.readings["demo-001"].probes.desk, poll.errors

Round trip 1 is one JSON-RPC batch (:func:`dealvault.run.chain.batch`): the latest block's header,
the lens's ``riskView`` and ``params`` of every vault, the two transfer probes of every vault, and
the header again. The lens reads go either as two ``eth_call`` per vault (``mode="batch"``) or
packed into a few Multicall3 ``aggregate3`` calls with ``allowFailure`` (``mode="multicall"``; a
chain without code at :data:`MULTICALL3` falls back to ``batch``, remembered per Web3). Transfer
and desk probes are simulated from the vault / the operator, so they stay plain ``eth_call``s
(Multicall3 would be their sender). If the header moved during the batch, the batch is re-read
pinned to the newer block (one more round trip, rare). Round trip 2, only when some vault is
MONETIZING with USDTz held, simulates each such vault's smallest accepted redemption at that block.

:data:`DEFAULT_MODE` is ``"batch"``: ``bench/guard.py`` measures both on anvil, the same within the noise
at 1,000 vaults, and the batch needs nothing deployed.
Nothing is ever sent: every probe is an ``eth_call``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3 import Web3

from dealvault.guard.model import GuardReading, Poll, Probes, Target
from dealvault.run.chain import RpcFailure, batch, rpc_guard
from dealvault.run.errors import ChainError
from dealvault.vault.client import Params, RiskView, decode_lens, lens_call_data
from dealvault.vault.enums import Phase
from dealvault.vault.revert import explain

__all__ = ["MULTICALL3", "DEFAULT_MODE", "DESK_WOULD_FAIL", "Mode", "read_all", "desk_amount", "has_multicall3"]

Mode = Literal["batch", "multicall"]
MULTICALL3 = to_checksum_address("0xcA11bde05977b3631167028862bE2a173976CA11")
# bench/guard.py (1,000 vaults on anvil, 2 CPUs): batch ~0.6-0.67 s, multicall ~0.53-0.8 s per poll, the
# same within the noise (the node's eth_call work dominates; the client's CPU is ~0.16 s either way):
# batch, which needs nothing deployed and is one round trip on any chain.
DEFAULT_MODE: Mode = "batch"
MULTICALL_CHUNK = 100  # vaults per aggregate3 call (2 lens reads each), well inside an eth_call's gas
MULTICALL_GAS = 1_000_000_000
DESK_WOULD_FAIL = "RedemptionFailed: the desk would fail this redemption"

_TRANSFER = function_signature_to_4byte_selector("transfer(address,uint256)")
_REDEEM = function_signature_to_4byte_selector("redeem(address,uint256)")
_AGGREGATE3 = function_signature_to_4byte_selector("aggregate3((address,bool,bytes)[])")
_HAS_MC = "_dealvault_multicall3"  # per-Web3 memo: Multicall3 found (True) or not (False)


def has_multicall3(w3: Web3) -> bool | None:
    """What :func:`read_all` learnt about Multicall3 on this Web3: True, False, or None (not tried)."""
    v = w3.__dict__.get(_HAS_MC)
    return None if v is None else bool(v)


def desk_amount(risk: RiskView, params: Params) -> int | None:
    """The smallest redemption the vault accepts now, or None when the desk probe does not apply
    (not MONETIZING, no USDTz, or no amount passes the vault's rules). DealVault.redeem: 0 <
    amount <= usdtzHeld, amount >= minTranche unless it is the whole of usdtzHeld, amount <= the
    current rung's size."""
    held = risk.usdtzHeld
    if risk.phase != Phase.MONETIZING or held <= 0:
        return None
    amount = held if held <= params.minTranche else max(params.minTranche, 1)
    size = params.rungs[min(risk.rung, 2)]
    if amount > size:
        return None  # minTranche above the rung, or the whole remainder above it: the vault refuses any tranche
    return amount


@dataclass
class _Counter:
    trips: int = 0

    def send(self, w3: Web3, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        self.trips += 1 if hasattr(w3.provider, "make_batch_request") else len(calls)
        with rpc_guard("guard poll", hint="the next poll retries"):
            return batch(w3, calls)


def _call(frm: str | None, to: str, data: str, block: str) -> tuple[str, list[Any]]:
    tx: dict[str, Any] = {"to": to, "data": data}
    if frm is not None:
        tx["from"] = frm
    return "eth_call", [tx, block]


def _word(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address[2:])


def _transfer_to_self(vault: str) -> str:
    return "0x" + (_TRANSFER + _word(vault) + bytes(32)).hex()


def _failure_text(f: RpcFailure, abi: Any = None) -> str:
    return explain(f.exception(), abi)


def _transfer_probe(answer: Any, token: str) -> str | None:
    """None when the simulated transfer went through: no return data (a token returning no bool)
    or true; else why."""
    if isinstance(answer, RpcFailure):
        return f"transfer of {token} reverts: {_failure_text(answer)}"
    data = str(answer or "0x")
    if data in ("0x", ""):
        return None
    ok = _bool(data)
    if ok is None:
        return f"transfer of {token} returned {data[:66]} (not a bool)"
    return None if ok else f"transfer of {token} returned false"


def _bool(data: str) -> bool | None:
    """A returned bool (one word, 0 or 1), or None for anything else."""
    if len(data) != 66:
        return None
    v = int(data, 16)
    return None if v > 1 else v == 1


def _lens_calls(targets: Sequence[Target], mode: Mode, block: str) -> list[tuple[str, list[Any]]]:
    if mode == "batch":
        return [_call(None, t.lens, lens_call_data(fn, t.vault), block) for t in targets for fn in ("riskView", "params")]
    out = []
    for i in range(0, len(targets), MULTICALL_CHUNK):
        calls = [(t.lens, lens_call_data(fn, t.vault)) for t in targets[i:i + MULTICALL_CHUNK] for fn in ("riskView", "params")]
        out.append(("eth_call", [{"to": MULTICALL3, "data": _aggregate3_data(calls), "gas": hex(MULTICALL_GAS)}, block]))
    return out


def _aggregate3_data(calls: list[tuple[str, str]]) -> str:
    """The calldata of ``aggregate3`` of ``(target, allowFailure=true, data)`` for each (target,
    0x data) (eth_abi takes ~0.1 ms an item): the array's length, each item's offset, then each
    item: target, true, the bytes' offset (0x60), their length and their words."""
    def w(n: int) -> str:
        return f"{n:064x}"

    items = []
    for target, data in calls:
        body = data[2:]
        items.append(w(int(target, 16)) + w(1) + w(0x60) + w(len(body) // 2) + body + "0" * (-len(body) % 64))
    heads, at = [], 32 * len(items)
    for it in items:
        heads.append(w(at))
        at += len(it) // 2
    return "0x" + _AGGREGATE3.hex() + w(32) + w(len(items)) + "".join(heads) + "".join(items)


def _lens_answers(answers: list[Any], n: int, mode: Mode) -> list[Any] | None:
    """Each vault's (riskView, params) answers as 2n items (hex or RpcFailure); None when
    Multicall3 is not there (an empty answer)."""
    if mode == "batch":
        return answers
    out: list[Any] = []
    for k, a in enumerate(answers):
        if a in (None, "0x", ""):
            return None  # no code at MULTICALL3: the call "succeeds" with nothing
        if isinstance(a, RpcFailure):  # the aggregate itself failed: each of its vaults gets why
            out.extend([a] * 2 * min(MULTICALL_CHUNK, n - k * MULTICALL_CHUNK))
            continue
        for ok, ret in _aggregate3_results(bytes.fromhex(str(a)[2:])):
            out.append("0x" + bytes(ret).hex() if ok else RpcFailure("execution reverted", "0x" + bytes(ret).hex()))
    return out


def _aggregate3_results(raw: bytes) -> list[tuple[bool, bytes]]:
    """aggregate3's ``(bool success, bytes returnData)[]``, read by offsets (eth_abi takes
    ~0.3 ms an item; a poll of 1,000 vaults has 2,000); bounds checked, ValueError otherwise."""
    def word(at: int) -> int:
        if at + 32 > len(raw):
            raise ValueError("aggregate3 answer cut short")
        return int.from_bytes(raw[at:at + 32], "big")

    start = word(0)  # the array: its length, then each item's offset from just after the length
    base = start + 32
    out = []
    for k in range(word(start)):
        item = base + word(base + 32 * k)
        ok, at = word(item), item + word(item + 32)
        size = word(at)
        if ok > 1 or at + 32 + size > len(raw):
            raise ValueError("aggregate3 answer malformed")
        out.append((ok == 1, raw[at + 32:at + 32 + size]))
    return out


def _read_lens(answer: Any, cls: type, fn: str) -> Any:
    if isinstance(answer, RpcFailure):
        raise _ReadError(f"lens {fn} fails: {_failure_text(answer)}")
    if answer in (None, "0x", ""):
        raise _ReadError(f"lens {fn} returned nothing (no lens or no vault there?)")
    try:
        return decode_lens(cls, fn, answer)
    except Exception as exc:
        raise _ReadError(f"lens {fn} returned data that is not a {cls.__name__}: {type(exc).__name__}") from None


class _ReadError(Exception):
    pass


def _header(raw: Any) -> dict[str, Any]:
    if isinstance(raw, RpcFailure) or not isinstance(raw, dict):
        raise ChainError(f"guard poll: eth_getBlockByNumber answered {raw}; the next poll retries")
    return raw


def _round_one(w3: Web3, c: _Counter, targets: Sequence[Target], mode: Mode,
               block: str) -> tuple[dict[str, Any], list[Any], list[Any], Mode]:
    n = len(targets)
    lens = _lens_calls(targets, mode, block)
    probes = [_call(t.vault, tok, _transfer_to_self(t.vault), block) for t in targets for tok in (t.usdtz, t.stable)]
    calls = [("eth_getBlockByNumber", [block, False]), *lens, *probes, ("eth_getBlockByNumber", [block, False])]
    answers = c.send(w3, calls)
    first, last = _header(answers[0]), _header(answers[-1])
    if first.get("hash") != last.get("hash") and block == "latest":  # a block came in during the batch
        return _round_one(w3, c, targets, mode, str(last["number"]))
    lens_out = _lens_answers(answers[1:1 + len(lens)], n, mode)
    if lens_out is None:  # no Multicall3 on this chain
        w3.__dict__[_HAS_MC] = False
        more = c.send(w3, _lens_calls(targets, "batch", str(last["number"])))
        lens_out, mode = more, "batch"
    elif mode == "multicall":
        w3.__dict__[_HAS_MC] = True
    return last, lens_out, answers[1 + len(lens):-1], mode


def read_all(w3: Web3, targets: Sequence[Target], *, mode: Mode | None = None) -> Poll:
    """Read every target at one block (see the module's docstring). A target whose lens reads
    fail goes to ``Poll.errors`` with why; the others are read. ``mode``: ``"batch"`` or
    ``"multicall"`` (default :data:`DEFAULT_MODE`; ``"multicall"`` becomes ``"batch"`` on a
    chain without Multicall3). Raises :class:`dealvault.run.errors.ChainError` when the node
    cannot be reached or answers no block header."""
    chosen: Mode = mode or DEFAULT_MODE
    if chosen == "multicall" and w3.__dict__.get(_HAS_MC) is False:
        chosen = "batch"
    c = _Counter()
    targets = list(targets)
    head, lens_out, probe_out, chosen = _round_one(w3, c, targets, chosen, "latest")
    block = str(head["number"])
    readings: dict[str, tuple[Target, RiskView, Params, str | None, str | None]] = {}
    errors: dict[str, str] = {}
    for i, t in enumerate(targets):
        try:
            risk = _read_lens(lens_out[2 * i], RiskView, "riskView")
            params = _read_lens(lens_out[2 * i + 1], Params, "params")
        except _ReadError as exc:
            errors[t.deal_id] = f"{t.vault}: {exc}"
            continue
        readings[t.deal_id] = (t, risk, params, _transfer_probe(probe_out[2 * i], "USDTz"),
                               _transfer_probe(probe_out[2 * i + 1], "the stablecoin"))

    desk: dict[str, str | None] = {}
    asks = [(deal, t, amt) for deal, (t, risk, params, _, _) in readings.items() if (amt := desk_amount(risk, params)) is not None]
    if asks:
        answers = c.send(w3, [_call(t.operator, t.vault, "0x" + (_REDEEM + _word(t.stable) + amt.to_bytes(32, "big")).hex(), block)
                              for _, t, amt in asks])
        for (deal, _t, amt), a in zip(asks, answers):
            desk[deal] = _desk_probe(a, amt)
    return Poll(
        block_number=int(head["number"], 16),
        block_hash=str(head["hash"]),
        parent_hash=str(head["parentHash"]),
        timestamp=int(head["timestamp"], 16),
        readings={deal: GuardReading(t, risk, params, Probes(u, s, desk.get(deal)))
                  for deal, (t, risk, params, u, s) in readings.items()},
        errors=errors,
        round_trips=c.trips,
    )


def _desk_probe(answer: Any, amount: int) -> str | None:
    """The simulated ``vault.redeem``: True -> None; False -> :data:`DESK_WOULD_FAIL` (the
    RedemptionFailed event's reason is not in an eth_call's answer); a revert -> its name."""
    if isinstance(answer, RpcFailure):
        return f"redeem({amount}) reverts: {_failure_text(answer)}"
    ok = _bool(str(answer))
    if ok is None:
        return f"redeem({amount}) returned {str(answer)[:66]} (not a bool)"
    return None if ok else f"{DESK_WOULD_FAIL} (redeem of {amount})"
