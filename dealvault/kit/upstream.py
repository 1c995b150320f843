"""What an upstream Chain 138 *has*, taken as found: a Mirror-like record for a fork.

On a fork of the real chain (or of a separately started mirror standing in for it) nothing is
installed: WETH9, WETH10, cUSDT, cUSDC and the ETH/USD feed are already at their canonical
addresses (:mod:`dealvault.chain138`). :func:`find_upstream` checks them with
:func:`dealvault.kit.mirror.check_upstream` (chain id, code, name/symbol/decimals, feed answers) and
returns an :class:`Upstream` record carrying the same address fields as
:class:`dealvault.kit.mirror.Mirror`, so :func:`dealvault.kit.overlay.deploy_overlay` and the vault config
builders accept it. It deliberately carries **no** minter information (``cusdt_token`` /
``cusdc_token`` are None): we do not own the real tokens, so the overlay funds its liquidity with
:func:`dealvault.kit.funding.fund` (storage-slot discovery) instead of minting.

Issuer roles of the real cUSDT/cUSDC are unknown in advance, and so is the kind of token (Circle's
FiatToken on Chain 138, a Tether-style token in a ``tools/test_fork.sh --usdt-style`` run):
:func:`dealvault.kit.features.token_features` finds what blacklist or pause the token has and who
administers it, from the token itself, so a test can act as that admin by impersonation (works on
any fork).

The feed: we cannot move the real oracle. :func:`settable_feed` saves the feed's code and the
storage it will touch, swaps in the settable ``PriceFeed`` at the same address with
``anvil_setCode`` (starting from the feed's current answer), yields a record usable with
:func:`dealvault.kit.mirror.set_eth_price` / :func:`dealvault.kit.mirror.make_feed_stale`, and restores
code and storage on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3

from dealvault import chain138
from dealvault.artifacts import own
from dealvault.kit.errors import KitError
from dealvault.kit.evm import contract_at, get_storage, impersonating, role_address, send, set_code, set_storage
from dealvault.kit.mirror import CanonicalTokens, check_upstream

SETTABLE_FEED_OWNER = "fork.settable_feed.owner"


class UpstreamError(KitError):
    """The upstream chain is not what Chain 138 should be; the message lists every problem."""


@dataclass(frozen=True)
class Upstream(CanonicalTokens):
    """The canonical Chain 138 contracts as found on an upstream chain (nothing installed)."""

    block_number: int  # the block the check ran at
    # No minter information: the overlay must fund, not mint (see module doc).
    cusdt_token: None = None
    cusdc_token: None = None
    fiat_implementation: None = None
    feed_owner: None = None  # the real feed cannot be moved; see settable_feed


def find_upstream(w3: Web3) -> Upstream:
    """Check the chain behind ``w3`` against the Chain 138 facts and return what was found.

    Raises :class:`UpstreamError` naming each address and what was found there.
    """
    problems = check_upstream(w3)
    if problems:
        raise UpstreamError("the upstream is not Chain 138 as expected:\n" + "\n".join(f"  - {p}" for p in problems))
    return Upstream(
        chain_id=int(w3.eth.chain_id),
        weth9=to_checksum_address(chain138.WETH9),
        weth10=to_checksum_address(chain138.WETH10),
        cusdt=to_checksum_address(chain138.CUSDT),
        cusdc=to_checksum_address(chain138.CUSDC),
        eth_usd_feed=to_checksum_address(chain138.ETH_USD_FEED),
        block_number=int(w3.eth.block_number),
    )


# --- the settable feed ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedControl:
    """What :func:`dealvault.kit.mirror.set_eth_price` needs: the feed's address and its owner."""

    eth_usd_feed: str
    feed_owner: str
    original_answer: int


def _round_slots(round_id: int) -> list[int]:
    base = int.from_bytes(keccak(round_id.to_bytes(32, "big") + (1).to_bytes(32, "big")), "big")
    return [base, base + 1, base + 2]


_MAX_ROUNDS = 64  # rounds a scenario may push; their slots are saved up front


@contextmanager
def settable_feed(w3: Web3, feed: str = chain138.ETH_USD_FEED, answer: int | None = None) -> Iterator[FeedControl]:
    """Swap the feed at ``feed`` for the settable PriceFeed (same address), restore it on exit.

    The swapped feed starts with ``answer`` (default: the real feed's current answer) updated at
    the current block time. Code and every storage slot the PriceFeed writes (slot 0 and the
    slots of rounds 1..64) are saved before and written back after, so the original feed answers
    exactly as before (checked: its ``latestRoundData`` is compared on exit).
    """
    feed = to_checksum_address(feed)
    abi = own("PriceFeed").abi
    original_code = w3.eth.get_code(feed).to_0x_hex()
    probe = contract_at(w3, feed, abi)
    try:
        before = probe.functions.latestRoundData().call()
    except Exception:  # a feed that does not answer: start at `answer`
        before = None
    if answer is None:
        if before is None or before[1] <= 0:
            raise UpstreamError(f"feed at {feed} gives no usable answer ({before}); pass answer=")
        answer = int(before[1])
    slots = [0, 1] + [s for r in range(1, _MAX_ROUNDS + 1) for s in _round_slots(r)]
    saved = {s: get_storage(w3, feed, s) for s in slots}
    owner = role_address(SETTABLE_FEED_OWNER)
    set_code(w3, feed, own("PriceFeed").deployed_bytecode)
    set_storage(w3, feed, 0, 0)  # owner 0 + round id 0: initialize() may run
    with impersonating(w3, owner):
        send(w3, contract_at(w3, feed, abi).functions.initialize(owner, answer), owner)
    try:
        yield FeedControl(feed, owner, answer)
    finally:
        latest = get_storage(w3, feed, 0) >> 160
        if latest > _MAX_ROUNDS:
            raise UpstreamError(f"{latest} rounds were pushed on the settable feed; only {_MAX_ROUNDS} can be restored")
        set_code(w3, feed, original_code)
        for s, v in saved.items():
            set_storage(w3, feed, s, v)
        if before is not None:
            after = probe.functions.latestRoundData().call()
            if tuple(after) != tuple(before):
                raise UpstreamError(f"feed at {feed} not restored: {after} != {before}")


__all__ = ["FeedControl", "Upstream", "UpstreamError", "find_upstream", "settable_feed"]
