"""What a leg pays (dealvault.run.fees): EIP-1559 from the base fee, legacy where the chain has
none, a ceiling, and the replacement bump (issue 13). Pure functions; the chain-level behaviour
(a type-2 leg, its replacement mined, a cancel) is in test_orchestrator.py."""

from __future__ import annotations

import pytest

from dealvault.run.fees import BUMP_BPS, FeeError, Fees, bump, quote
from dealvault.spec.model import GasPolicy

GWEI = 10**9
AUTO = GasPolicy()
LONDON = {"baseFeePerGas": hex(7 * GWEI), "gasLimit": hex(30_000_000)}
BERLIN = {"gasLimit": hex(30_000_000)}  # no baseFeePerGas: the chain has no EIP-1559


def test_auto_is_eip1559_from_the_base_fee():
    f = quote(AUTO, LONDON, gas_price=9 * GWEI, priority=GWEI)
    assert (f.legacy, f.max_fee, f.priority) == (False, 15 * GWEI, GWEI)
    assert f.tx_fields() == {"maxFeePerGas": 15 * GWEI, "maxPriorityFeePerGas": GWEI}
    # a node without eth_maxPriorityFeePerGas: its gas price less the base fee
    assert quote(AUTO, LONDON, gas_price=9 * GWEI, priority=None).priority == 2 * GWEI
    assert quote(AUTO, {"baseFeePerGas": 7 * GWEI}, gas_price=None, priority=0).max_fee == 14 * GWEI  # web3's int form


def test_auto_is_legacy_where_the_chain_has_no_base_fee():
    f = quote(AUTO, BERLIN, gas_price=3 * GWEI, priority=None)
    assert (f.legacy, f.tx_fields()) == (True, {"gasPrice": 3 * GWEI})


def test_the_auto_ceiling_caps_every_fee_and_refuses_one_below_the_base_fee():
    capped = GasPolicy(max_fee_wei=10 * GWEI)
    f = quote(capped, LONDON, gas_price=None, priority=5 * GWEI)
    assert (f.max_fee, f.priority) == (10 * GWEI, 3 * GWEI)  # the tip leaves the base fee paid
    assert quote(capped, BERLIN, gas_price=12 * GWEI, priority=None).gas_price == 10 * GWEI
    with pytest.raises(FeeError, match=r"gas.max_fee_gwei 6 gwei is below the chain's base fee 7 gwei.*nothing sent"):
        quote(GasPolicy(max_fee_wei=6 * GWEI), LONDON, gas_price=None, priority=0)


def test_fixed_fees_are_the_specs():
    fixed = GasPolicy(mode="fixed", max_fee_wei=20 * GWEI, priority_fee_wei=GWEI)
    assert quote(fixed, LONDON, None, None).tx_fields() == {"maxFeePerGas": 20 * GWEI, "maxPriorityFeePerGas": GWEI}
    legacy = GasPolicy(mode="fixed", max_fee_wei=20 * GWEI, priority_fee_wei=GWEI, legacy=True)
    assert quote(legacy, LONDON, None, None).tx_fields() == {"gasPrice": 20 * GWEI}


@pytest.mark.parametrize("old", [Fees(max_fee=15 * GWEI, priority=GWEI), Fees(max_fee=3, priority=0), Fees(gas_price=8 * GWEI)])
def test_a_replacement_raises_every_fee_by_the_bump(old):
    fresh = quote(AUTO, LONDON if not old.legacy else BERLIN, gas_price=GWEI, priority=0)  # the market fell: the bump still applies
    new = bump(old, AUTO, fresh)
    assert new is not None and new.legacy == old.legacy
    for a, b in zip(old.tx_fields().values(), new.tx_fields().values()):
        assert b * 10_000 >= a * (10_000 + BUMP_BPS) and b > a


def test_a_replacement_follows_the_market_when_it_rose():
    old = Fees(max_fee=15 * GWEI, priority=GWEI)
    fresh = quote(AUTO, {"baseFeePerGas": 40 * GWEI}, gas_price=None, priority=2 * GWEI)
    assert bump(old, AUTO, fresh) == Fees(max_fee=82 * GWEI, priority=2 * GWEI)


def test_no_replacement_above_the_ceiling_or_the_fixed_fees():
    old = Fees(max_fee=9 * GWEI, priority=GWEI)
    assert bump(old, GasPolicy(max_fee_wei=10 * GWEI), old) is None  # 9 x 1.125 > 10
    assert bump(old, GasPolicy(max_fee_wei=11 * GWEI), old) == Fees(max_fee=10_125_000_000, priority=1_125_000_000)
    fixed = GasPolicy(mode="fixed", max_fee_wei=9 * GWEI, priority_fee_wei=GWEI)
    assert bump(old, fixed, old) is None  # the operator must raise the spec's fees first
    raised = GasPolicy(mode="fixed", max_fee_wei=12 * GWEI, priority_fee_wei=2 * GWEI)
    assert bump(old, raised, old) == Fees(max_fee=12 * GWEI, priority=2 * GWEI)
