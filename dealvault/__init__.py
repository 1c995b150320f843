"""DealVault: on-chain risk caps for a discount-arbitrage deal on Chain 138.

The Python harness: the Chain 138 market kit (mirror + venues overlay), the funding helper,
and (later) the deal orchestrator. Money math is integer or ``Decimal``; never float.
"""

__version__ = "0.1.0"
