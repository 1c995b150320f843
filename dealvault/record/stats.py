"""Redemption statistics in exact Decimal arithmetic (no floats)."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal, localcontext

WILSON_PLACES = Decimal("1e-12")


def _dec(v: Decimal | int | str | float, name: str) -> Decimal:
    if isinstance(v, bool):
        raise TypeError(f"{name}: expected a number, got bool")
    if isinstance(v, float):
        v = repr(v)  # z is a statistical constant, not money; take its shortest decimal text
    return Decimal(v)


def wilson_lower_bound(successes: int, trials: int, z: Decimal | int | str = Decimal("1.96")) -> Decimal:
    """Lower bound of the Wilson score interval for a success probability.

    ``(p + z²/2n - z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)`` with ``p = successes/trials``,
    computed at 50 significant digits and rounded down to 12 decimals (a conservative
    estimate stays conservative). 0 trials -> 0. Examples: 5/5 -> 0.565509..., 0/0 -> 0.
    """
    if isinstance(successes, bool) or isinstance(trials, bool) or not isinstance(successes, int) or not isinstance(trials, int):
        raise TypeError("successes and trials must be integers")
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return Decimal(0)
    zd = _dec(z, "z")
    if zd <= 0:
        raise ValueError(f"z must be > 0, got {zd}")
    with localcontext() as ctx:
        ctx.prec = 50
        n = Decimal(trials)
        p = Decimal(successes) / n
        z2 = zd * zd
        centre = p + z2 / (2 * n)
        margin = zd * (p * (1 - p) / n + z2 / (4 * n * n)).sqrt()
        lower = (centre - margin) / (1 + z2 / n)
        lower = max(Decimal(0), min(Decimal(1), lower))
        return lower.quantize(WILSON_PLACES, rounding=ROUND_FLOOR)
