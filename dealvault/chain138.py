"""Chain 138 (DeFi Oracle Meta Mainnet) facts: the canonical addresses the mirror installs and
the fork tests check. Source: the project's network notes (public token lists, wallet guides,
DefiLlama adapters). Verify on-chain before trusting them in a deployment."""

from __future__ import annotations

from dataclasses import dataclass

CHAIN_ID = 138
NAME = "DeFi Oracle Meta Mainnet"
PUBLIC_RPC = "https://rpc.d-bis.org"
EXPLORER = "https://explorer.d-bis.org"

WETH9 = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
# Checksummed (EIP-55). The network notes spell it ...8A9f, which web3 rejects as a bad checksum.
WETH10 = "0xf4BB2e28688e89fCcE3c0580D37d36A7672E8A9F"
CUSDT = "0x93E66202A11B1772E55407B32B44e5Cd8eda7f22"
CUSDC = "0xf22258f57794CC8E06237084b353Ab30fFfa640b"
ETH_USD_FEED = "0x3304b747E565a97ec8AC220b0B6A1f6ffDB837e6"

# The mainnet WETH9 deployer and its nonce at the WETH9 deployment: deploying from it at this
# nonce puts WETH9 at its canonical address with its constructor run (name/symbol/decimals set).
WETH9_DEPLOYER = "0x4F26FfBe5F04ED43630fdC30A87638d53D0b0876"
WETH9_DEPLOYER_NONCE = 446


@dataclass(frozen=True)
class TokenFact:
    symbol: str
    address: str
    decimals: int
    name: str


TOKENS: tuple[TokenFact, ...] = (
    TokenFact("WETH", WETH9, 18, "Wrapped Ether"),
    TokenFact("WETH10", WETH10, 18, "Wrapped Ether v10"),
    TokenFact("cUSDT", CUSDT, 6, "Compliant Tether USD"),
    TokenFact("cUSDC", CUSDC, 6, "Compliant USD Coin"),
)
