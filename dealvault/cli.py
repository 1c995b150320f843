"""What the `ape run` scripts share: connecting to the node (an ape network or a plain RPC URL).

    from dealvault.cli import connect
    with connect(rpc="http://127.0.0.1:8545", network_choice=None, timeout=60) as w3:
        ...
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

from web3 import Web3

__all__ = ["DEFAULT_RPC_TIMEOUT", "connect"]

DEFAULT_RPC_TIMEOUT = 60.0  # seconds per JSON-RPC request over --rpc


def connect(rpc: str | None, network_choice: str | None, *, timeout: float = DEFAULT_RPC_TIMEOUT) -> ContextManager[Web3]:
    """A context manager yielding a :class:`~web3.Web3` for ``rpc`` (a plain HTTP provider with a
    ``timeout`` in seconds per request) or else for the ape network choice
    ``ecosystem:network:provider`` (the provider is connected for the block). Raises
    :class:`~dealvault.run.InputError` when neither is given."""
    if rpc:
        return contextlib.nullcontext(Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": timeout})))
    if network_choice:
        return _ape(network_choice)
    from dealvault.run import InputError

    raise InputError("give --network <ecosystem:network:provider> or --rpc URL")


@contextlib.contextmanager
def _ape(network_choice: str):
    from ape import networks

    with networks.parse_network_choice(network_choice) as provider:
        yield provider.web3
