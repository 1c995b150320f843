"""The unwind's deleverage size (``deleverage_amount``) against the vault's own arithmetic
(``DealVault.deleverage``: value = collateral x price / STABLE_TO_E26, 6 dp; refused with
DeleverageTooLarge when value x (BPS - slippage) > debt x (BPS + DELEVERAGE_MARGIN_BPS)).
Rounded down since the bound is shared with the guard (vault.risk.deleverage_bound_wei): the
vault always accepts it, and the sale's least proceeds still cover the debt."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from dealvault.run.unwind import DELEVERAGE_TARGET_BPS, deleverage_amount
from dealvault.units import BPS, STABLE_TO_E26
from dealvault.vault import RiskView
from dealvault.vault.risk import DELEVERAGE_MARGIN_BPS, deleverage_bound_wei


def _rv(debt: int, price: int) -> RiskView:
    """A risk view with only the two numbers deleverage_amount reads."""
    return RiskView(**{**{f.name: 0 for f in dataclasses.fields(RiskView)}, "debt": debt, "ethPrice": price})


def _vault_value(wei: int, price: int) -> int:
    return wei * price // STABLE_TO_E26


@given(debt=st.integers(200, 10**15), price=st.integers(10**6, 10**14), slip=st.integers(0, 2_000),
       extra=st.integers(0, 10**24))
def test_the_vault_accepts_the_amount_and_its_least_proceeds_cover_the_debt(debt, price, slip, extra):
    bound = deleverage_bound_wei(debt, price, slip, DELEVERAGE_TARGET_BPS)
    collateral = bound + extra
    amount = deleverage_amount(_rv(debt, price), slip, collateral)
    assert amount == bound  # enough collateral: the whole bound
    value = _vault_value(amount, price)
    assert value * (BPS - slip) <= debt * (BPS + DELEVERAGE_MARGIN_BPS)  # no DeleverageTooLarge
    assert value * (BPS - slip) >= debt * BPS  # the least the sale may pay covers the debt
    # one wei more would still be accepted (the target sits inside the vault's margin), so rounding
    # down costs nothing but that wei
    assert _vault_value(amount + 1, price) * (BPS - slip) <= debt * (BPS + DELEVERAGE_MARGIN_BPS)


@given(debt=st.integers(0, 10**15), price=st.integers(10**6, 10**14), slip=st.integers(0, 2_000),
       collateral=st.integers(0, 10**20))
def test_the_amount_never_exceeds_the_collateral(debt, price, slip, collateral):
    assert deleverage_amount(_rv(debt, price), slip, collateral) <= collateral


def test_no_price_no_deleverage():
    assert deleverage_amount(_rv(10**9, 0), 100, 10**18) == 0
    assert deleverage_amount(_rv(10**9, -1), 100, 10**18) == 0
