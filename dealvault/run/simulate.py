"""Calls simulated in order from one address on top of the latest block, each seeing the state
the previous ones left, nothing sent: what the owner's Safe would meet executing a batch.

    from dealvault.run.simulate import Call, simulate_calls
    sim = simulate_calls(w3, owner, [Call(vault, data), Call(lens, view_data, view=True)])
    sim.method, sim.block, [r.ok for r in sim.results]

Two ways, the first the node supports:

- ``eth_simulateV1`` (the execution APIs' multi-call simulation: geth, Besu, anvil 1.7.1...): all
  calls in one simulated block (number and time one past the latest block), ``from`` the sender,
  validation off (no signature, nonce or base-fee checks; balances still count, so a Safe without
  the ETH it sends fails like it would on chain); one request.
- a throwaway anvil forking the node at that block (:func:`dealvault.kit.anvil.start_anvil`):
  the sender impersonated, each call read (``eth_call``) and then sent and mined, views only read;
  the anvil is stopped afterwards. Needs the node's URL.

A call that fails ends the simulation: its result carries the revert data, and the results stop
there. A node that refuses the whole simulation (a sender short of ETH is refused before any call
runs) is asked again for each prefix of the calls, so the failure is pinned to its call.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_typing import HexStr
from eth_utils import to_checksum_address
from web3 import Web3
from web3.types import Wei

from dealvault.errors import DealVaultError, ExitCode
from dealvault.run.chain import RpcFailure, batch, rpc_guard

__all__ = ["Call", "CallResult", "Simulation", "SimulationUnavailable", "simulate_calls", "METHODS"]

#: the ways to simulate, in the order tried
METHODS = ("eth_simulateV1", "anvil fork")
_NOT_SUPPORTED = ("method not found", "not supported", "does not exist", "not available", "unknown method")


class SimulationUnavailable(DealVaultError):  # noqa: N818 - says what happened, like ChainError
    """Neither way works here (the node has no eth_simulateV1 and there is no URL to fork):
    refused, nothing written."""

    exit_code = ExitCode.REFUSED


@dataclass(frozen=True)
class Call:
    """One call: ``data`` (0x hex) to ``to`` with ``value`` wei; ``view``: it only reads (a fork
    reads it and sends nothing)."""

    to: str
    data: str
    value: int = 0
    view: bool = False


@dataclass(frozen=True)
class CallResult:
    """A call's outcome: ``output`` is its return data, or its revert data for a failure ("0x"
    when there is none); ``message`` the node's words for a failure."""

    ok: bool
    output: str
    gas_used: int = 0
    message: str = ""


@dataclass(frozen=True)
class Simulation:
    """What :func:`simulate_calls` saw: how, on top of which block, and each call's result, up
    to and including the first that failed."""

    method: str
    block: int
    sender: str
    results: tuple[CallResult, ...]
    seconds: float

    @property
    def failed(self) -> int | None:
        """The index of the call that failed, or None."""
        return next((i for i, r in enumerate(self.results) if not r.ok), None)


def _unsupported(failure: RpcFailure) -> bool:
    return failure.code == -32601 or any(w in failure.message.lower() for w in _NOT_SUPPORTED)


def _json_call(sender: str, c: Call) -> dict[str, Any]:
    return {"from": sender, "to": to_checksum_address(c.to), "data": c.data, "value": hex(int(c.value))}


def _simulate_v1(w3: Web3, sender: str, calls: Sequence[Call], number: int, timestamp: int) -> Any:
    payload = {
        "blockStateCalls": [{"blockOverrides": {"number": hex(number + 1), "time": hex(timestamp + 1)},
                             "calls": [_json_call(sender, c) for c in calls]}],
        "validation": False,
        "traceTransfers": False,
    }
    (answer,) = batch(w3, [("eth_simulateV1", [payload, hex(number)])])
    return answer


def _result(raw: dict[str, Any]) -> CallResult:
    ok = int(str(raw.get("status", "0x0")), 16) == 1
    err = raw.get("error") or {}
    data = err.get("data") if isinstance(err, dict) and isinstance(err.get("data"), str) else None
    output = str(data or raw.get("returnData") or "0x")
    return CallResult(ok, output, int(str(raw.get("gasUsed", "0x0")), 16), "" if ok else str(err.get("message", "reverted")))


def _by_simulate_v1(w3: Web3, sender: str, calls: Sequence[Call], number: int, timestamp: int) -> tuple[CallResult, ...] | None:
    """The results, or None if the node has no eth_simulateV1."""
    answer = _simulate_v1(w3, sender, calls, number, timestamp)
    if isinstance(answer, RpcFailure):
        if _unsupported(answer):
            return None
        # refused as a whole (the sender cannot pay...): the first prefix refused names the call
        for n in range(1, len(calls) + 1):
            part = _simulate_v1(w3, sender, calls[:n], number, timestamp)
            if isinstance(part, RpcFailure):
                done = [] if n == 1 else [_result(r) for r in _simulate_v1(w3, sender, calls[:n - 1], number, timestamp)[0]["calls"]]
                return (*done, CallResult(False, part.data or "0x", 0, part.message))
        raise SimulationUnavailable(f"eth_simulateV1 refused the calls as a whole but none alone: {answer.message}")
    results: list[CallResult] = []
    for raw in answer[0]["calls"]:
        results.append(_result(raw))
        if not results[-1].ok:
            break
    return tuple(results)


def _by_fork(w3: Web3, fork_url: str, sender: str, calls: Sequence[Call], number: int) -> tuple[CallResult, ...]:
    from dealvault.kit.anvil import start_anvil
    from dealvault.kit.evm import rpc

    chain_id = int(w3.eth.chain_id)
    results: list[CallResult] = []
    with start_anvil(chain_id=chain_id, fork_url=fork_url, fork_block=number, hardfork=None,
                     extra=["--base-fee", "0", "--gas-price", "0", "--disable-min-priority-fee"]) as node:
        fw3 = node.web3()
        rpc(fw3, "anvil_impersonateAccount", [sender])
        for c in calls:
            tx = _json_call(sender, c)
            (out,) = batch(fw3, [("eth_call", [tx, "latest"])])
            if isinstance(out, RpcFailure):
                results.append(CallResult(False, out.data or "0x", 0, out.message))
                break
            if c.view:
                results.append(CallResult(True, str(out)))
                continue
            sent = fw3.eth.send_transaction({"from": sender, "to": to_checksum_address(c.to), "data": HexStr(c.data),
                                             "value": Wei(int(c.value)), "gasPrice": Wei(0)})
            receipt = fw3.eth.wait_for_transaction_receipt(sent)
            results.append(CallResult(int(receipt["status"]) == 1, str(out), int(receipt["gasUsed"]),
                                      "" if int(receipt["status"]) == 1 else "the mined transaction reverted"))
            if not results[-1].ok:
                break
    return tuple(results)


def simulate_calls(w3: Web3, sender: str, calls: Sequence[Call], *, fork_url: str | None = None,
                   methods: Sequence[str] = METHODS) -> Simulation:
    """Simulate ``calls`` in order from ``sender`` on top of the latest block (see the module's
    doc). ``fork_url``: the node's URL, for the fork when the node has no eth_simulateV1;
    ``methods``: which of :data:`METHODS` to try, in order. Raises :class:`SimulationUnavailable`
    when none works, :class:`~dealvault.errors.ChainError` when the node cannot be reached."""
    sender = to_checksum_address(sender)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown simulation method(s) {unknown}; known: {', '.join(METHODS)}")
    start = time.perf_counter()
    with rpc_guard("simulate the calls", hint="check the node (--rpc / --network)"):
        head = w3.eth.get_block("latest")
        number, timestamp = int(head["number"]), int(head["timestamp"])
        tried: list[str] = []
        for method in methods:
            if method == "eth_simulateV1":
                results = _by_simulate_v1(w3, sender, calls, number, timestamp)
                if results is not None:
                    return Simulation(method, number, sender, results, time.perf_counter() - start)
                tried.append("the node has no eth_simulateV1")
            elif fork_url:
                results = _by_fork(w3, fork_url, sender, calls, number)
                return Simulation(method, number, sender, results, time.perf_counter() - start)
            else:
                tried.append("no node URL to fork with anvil (connect with --rpc URL)")
    raise SimulationUnavailable("cannot simulate the batch: " + "; ".join(tried))
