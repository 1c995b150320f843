"""`ape run owner_tx`: write an owner action as a Safe Transaction Builder batch (sends nothing).

\b
    ape run owner_tx fund 5000 --vault 0x... --out fund.json               # fund() with 5000 ETH
    ape run owner_tx resume | pause | unpause | hold --vault 0x... --out p.json
    ape run owner_tx owner-repay cUSDT 1250.5 --vault 0x... --deployment <record> --out repay.json   # approve + ownerRepay
    ape run owner_tx withdraw ETH 12.5 --vault 0x... --out w.json          # withdraw(token, amount); ETH = address(0)
    ape run owner_tx set max-ltv-bps 2500 twap-window 3600 --vault 0x... --out s.json   # setParam, one per pair
    ape run owner_tx set max-slippage-bps 150 --vault 0x... --deployment <record> --rpc URL --out s.json  # says what is queued
    ape run owner_tx accept max-slippage-bps --vault 0x... --out a.json    # acceptParam after loosenDelay
    ape run owner_tx revoke max-slippage-bps --vault 0x... --out r.json    # revokeParam (owner or guardian)
    ape run owner_tx hold + withdraw ETH 12.5 --vault 0x... --deployment <record> --rpc URL --out u.json  # one batch, in order

Amounts are human decimals (ETH 18 dp, stablecoins 6 dp; set: bps / seconds, sell-floor-price in
stablecoin per USDTz, eth-floor-price in USD). A token symbol (cUSDT, cUSDC, USDTz, WETH9, WETH10)
is resolved with --deployment or --config (default Chain 138's); a token address needs --decimals
unless it is one of those. A tighter (or equal) value acts at once; a looser one is queued for the
vault's loosenDelay (at most back to the constructor's value) and needs `accept` after it.
`tighten` and the v1 setter names (setMaxLtvBps...) mean `set`. Actions joined by `+` make one
batch, their transactions in that order.

With --rpc URL or --network (and the lens from --lens or --deployment) the builder reads the
vault, says which `set` entries are queued, and SIMULATES the batch in order from the vault's
owner (eth_simulateV1, else a throwaway anvil fork of the node): a transaction that would revert
refuses the whole batch (exit 6, naming its index, method and decoded reason; nothing written);
otherwise meta.description carries the vault's risk view before and after each transaction.
Without a node the batch is written NOT simulated, and says so. Every batch carries
meta.checksum as the Safe Transaction Builder computes it.
Exit codes: 0 written, 2 bad input, 5 the node or the lens did not answer, 6 the simulation
refused the batch (or it could not be simulated); no file is written unless 0.
The logic lives in dealvault.run.owner; this is a thin wrapper.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dealvault.cli import network_option
from dealvault.run.owner import CHAIN_ID, owner_tx

_File = click.Path(dir_okay=False, path_type=Path)


@click.command(help=__doc__, context_settings={"ignore_unknown_options": True})
@click.argument("action")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--vault", required=True, help="the DealVault address")
@click.option("--out", "out", required=True, type=_File, help="the batch JSON file to write")
@click.option("--safe", default=None, help="the owner Safe's address (meta.createdFromSafeAddress)")
@click.option("--chain-id", "chain_id", default=CHAIN_ID, show_default=True, type=int)
@click.option("--deployment", default=None, type=_File, help="deployment record (token symbols, the lens)")
@click.option("--config", "config_path", default=None, type=_File, help="network config (token symbols)")
@click.option("--decimals", default=None, type=int, help="decimals of a token given by address")
@click.option("--rpc", default=None, help="read the vault (through the lens) and simulate the batch from its owner before writing it")
@network_option(help="like --rpc, through an ape network (ecosystem:network:provider)")
@click.option("--lens", default=None, help="the DealVaultLens (default: the --deployment record's)")
def cli(action, args, vault, out, safe, chain_id, deployment, config_path, decimals, rpc, provider, lens):
    network = f"{provider.network.choice}:{provider.name}" if provider is not None else None
    sys.exit(owner_tx(action, args, vault=vault, out=out, safe=safe, chain_id=chain_id, deployment=deployment,
                      config=config_path, decimals=decimals, rpc=rpc, network=network, lens=lens,
                      say=lambda m: click.echo(m, err=True)))
