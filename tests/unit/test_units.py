"""dealvault.units: exact conversions between integer amounts and whole units, and the text
people read (no float anywhere, no exponent notation)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dealvault.units import amount_text, from_units, to_units


@pytest.mark.parametrize(("value", "decimals", "text"), [
    (0, 18, "0"), (1500 * 10**18, 18, "1,500"), (25 * 10**4, 6, "0.25"), (1, 18, "0.000000000000000001"),
    (10**40, 18, "10,000,000,000,000,000,000,000"), (-5 * 10**17, 18, "-0.5"), (1_305_000_263_564, 6, "1,305,000.263564"),
    (7, 0, "7"), (1000, 0, "1,000"),
])
def test_amount_text_is_exact_and_plain(value, decimals, text):
    assert amount_text(value, decimals) == text
    assert to_units(text.replace(",", ""), decimals) == value  # round-trips exactly


def test_from_units_keeps_every_digit():
    big = 123_456_789_012_345_678_901_234_567_890_123
    assert from_units(big, 18) == Decimal("123456789012345.678901234567890123")


def test_amount_text_ungrouped_is_a_plain_decimal_for_a_command_line():
    assert amount_text(2_294_317_050, 6, grouped=False) == "2294.31705"
    assert amount_text(10**21, 18, grouped=False) == "1000" and amount_text(0, 18, grouped=False) == "0"
