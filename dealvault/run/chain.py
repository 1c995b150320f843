"""The node under a deal run (not the vault: that is :mod:`dealvault.vault`): which chain it is,
what to do when it cannot be reached, several requests in one round trip, and a local chain's clock.

- :func:`rpc_guard`: a connection refused or a timeout becomes :class:`ChainError` (exit 5, resumable);
- :func:`check_network`: chain id and genesis hash against the deal spec's network;
- :func:`cache_chain_id`: web3 asks the node ``eth_chainId`` before every eth_call / estimateGas
  (its validation middleware); a provider's chain id never changes, so it is cached once per provider;
- :func:`batch`: raw JSON-RPC requests in one HTTP request, each answered by its result or an
  :class:`RpcFailure` (a revert keeps its data, so it decodes by name);
- :func:`mine`, :func:`increase_time`, :func:`latest_timestamp`: a local chain's clock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from web3 import Web3

from dealvault.run.errors import ChainError, InputError

if TYPE_CHECKING:
    from dealvault.spec import DealSpec

__all__ = [
    "RESUME_HINT", "rpc_guard", "is_conn_error", "genesis_hash", "check_network", "NetworkIdentity", "cache_chain_id", "RpcFailure",
    "batch", "mine", "increase_time", "latest_timestamp", "eth_call", "receipt_of",
]


def is_conn_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the node could not be reached (refused, reset, timed out)."""
    import requests

    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError, TimeoutError))


RESUME_HINT = "the deal record is intact: re-run with --resume once the node is back"


@contextlib.contextmanager
def rpc_guard(what: str, *, hint: str = RESUME_HINT) -> Iterator[None]:
    """Turn a node that cannot be reached (or web3's TimeExhausted) into :class:`ChainError`,
    its message ending with ``hint`` (what the caller may do: by default, resume the deal)."""
    try:
        yield
    except ChainError:
        raise
    except Exception as exc:
        if is_conn_error(exc):
            raise ChainError(f"{what}: the chain could not be reached ({type(exc).__name__}: {str(exc)[:200]}); {hint}") from exc
        if type(exc).__name__ == "TimeExhausted":
            raise ChainError(f"{what}: timed out waiting for the chain ({exc}); {hint}") from exc
        raise


def cache_chain_id(w3: Web3) -> None:
    """Answer ``eth_chainId`` from web3's own request cache after the first time (this provider
    only; nothing else is cached unless the caller enabled it)."""
    prov: Any = w3.provider
    if not hasattr(prov, "cacheable_requests") or getattr(prov, "cache_allowed_requests", True):
        return  # not a caching provider, or the caller configured caching already
    prov.cacheable_requests = {"eth_chainId"}
    prov.request_cache_validation_threshold = None  # eth_chainId is always cacheable: no validation request
    prov.cache_allowed_requests = True


def genesis_hash(w3: Web3) -> str:
    """Block 0's hash (0x, lower case)."""
    with rpc_guard("eth_getBlockByNumber(0)"):
        return "0x" + bytes(w3.eth.get_block(0)["hash"]).hex()


@dataclass(frozen=True)
class NetworkIdentity:
    chain_id: int
    genesis_hash: str


def check_network(w3: Web3, spec: DealSpec, *, mainnet_genesis: str | None = None,
                  recorded_genesis: str | None = None, deployed_genesis: str | None = None) -> NetworkIdentity:
    """Chain id + genesis hash against the spec's network; raises InputError naming both values.

    ``mainnet_genesis``: Chain 138 mainnet's pinned block 0 hash (from the network config): a
    local spec refuses it (a mirror is never mainnet) and a mainnet spec requires it when the spec
    pins none. ``recorded_genesis``: the genesis the deal record was made on (resume).
    ``deployed_genesis``: the genesis the vault's deployment record names; a node with another
    one is refused whatever else is pinned (a mirror's deployment never drives the real chain,
    nor the other way round)."""
    cache_chain_id(w3)
    with rpc_guard("eth_chainId"):
        chain_id = int(w3.eth.chain_id)
    genesis = genesis_hash(w3)
    net = spec.network
    errors = net.identity_errors(chain_id, genesis)
    if not errors:
        if net.local and mainnet_genesis and genesis == mainnet_genesis.lower():
            errors.append(f"network: the spec's network {net.name} is local, but this node's genesis {genesis} is Chain 138 mainnet's")
        if not net.local and net.genesis_hash is None:
            if not mainnet_genesis:
                errors.append(f"network: {net.name} is not local and no genesis hash is pinned (spec network.genesis_hash or the "
                              f"network config); the node reports {genesis}: pin it after checking it independently")
            elif genesis != mainnet_genesis.lower():
                errors.append(f"network: genesis hash is {genesis}, the network config pins {mainnet_genesis} ({net.name})")
    if deployed_genesis and deployed_genesis.lower() != genesis:
        errors.append(f"network: the vault was deployed on the chain with genesis {deployed_genesis} (its deployment record); "
                      f"this node's is {genesis}")
    if recorded_genesis and recorded_genesis.lower() != genesis:
        errors.append(f"network: the deal record was made on the chain with genesis {recorded_genesis}, this node's is {genesis}")
    if errors:
        raise InputError("wrong network, nothing sent:\n  - " + "\n  - ".join(errors))
    return NetworkIdentity(chain_id, genesis)


@dataclass(frozen=True)
class RpcFailure:
    """A JSON-RPC error answer: the node's message and, for a revert, its data (0x...)."""

    message: str
    data: str | None = None
    code: int | None = None

    def exception(self) -> Exception:
        """As web3 would raise it (a ContractLogicError carrying the revert data), for
        :func:`dealvault.vault.explain`."""
        from web3.exceptions import ContractLogicError

        return ContractLogicError(self.message, data=self.data)


def _answer(resp: Any) -> Any:
    if isinstance(resp, dict) and resp.get("error") is not None:
        err = resp["error"]
        if isinstance(err, dict):
            data = err.get("data")
            if isinstance(data, dict):  # some nodes nest it: {"data": {"data": "0x..."}}
                data = data.get("data")
            return RpcFailure(str(err.get("message", err)), data if isinstance(data, str) else None, err.get("code"))
        return RpcFailure(str(err))
    return resp.get("result") if isinstance(resp, dict) else resp


def batch(w3: Web3, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
    """Raw JSON-RPC ``calls`` ((method, params), params JSON-ready) in one HTTP request; each
    answer is the raw result or an :class:`RpcFailure`. A provider without batches gets them one
    by one. Connection failures raise (wrap in :func:`rpc_guard`)."""
    prov: Any = w3.provider
    responses: Any = None
    if hasattr(prov, "make_batch_request"):
        try:
            responses = prov.make_batch_request(list(calls))
        except NotImplementedError:
            responses = None
    if not isinstance(responses, list) or len(responses) != len(calls):  # no batches here: one by one
        responses = [prov.make_request(m, p) for m, p in calls]
    return [_answer(r) for r in responses]


def receipt_of(raw: Any) -> Any:
    """A raw ``eth_getTransactionReceipt`` result (from :func:`batch`) as web3 returns it (an
    AttributeDict: ints, HexBytes), or None."""
    if raw is None:
        return None
    from web3._utils.method_formatters import receipt_formatter
    from web3.datastructures import AttributeDict

    return AttributeDict.recursive(receipt_formatter(raw))


def eth_call(to: str, data: str | bytes) -> tuple[str, list[Any]]:
    """A raw ``eth_call`` of ``data`` (0x hex or bytes) to ``to`` at the latest block, for :func:`batch`."""
    hexdata = "0x" + data.hex() if isinstance(data, bytes) else data
    return "eth_call", [{"to": to, "data": hexdata}, "latest"]


def mine(w3: Web3) -> None:
    """One new (empty) block on a local node."""
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def increase_time(w3: Web3, seconds: int) -> None:
    """Move a local node's clock by ``seconds`` and mine a block stamped with it."""
    w3.provider.make_request("evm_increaseTime", [int(seconds)])  # type: ignore[arg-type]
    mine(w3)


def latest_timestamp(w3: Web3) -> int:
    """The latest block's timestamp."""
    return int(w3.eth.get_block("latest")["timestamp"])
