"""`ape run deploy`: deploy one DealVault for a deal, verify it and record it.

    ape run deploy --network chain138:mainnet:node --account <alias> --deal deals/<id>.yaml \
        [--config deployments/chain138.config.yaml] [--dry-run] [--redeploy] [--accept-genesis 0x...]

Preflight (identity, code, tokens, feed, pool, roles, the configured lens's code, opcodes, gas)
runs before anything is sent; any failure prints every problem naming its item and exits 2. The
vault is one creation transaction (its constructor creates the extension); a DealVaultLens is
deployed first unless the network config names one (venues.lens). The record (vault, extension
and lens addresses and hashes) goes to deployments/<network>/<deal-id>.json; a re-run with the
same build and config is a no-op. A network whose URI is not set (CHAIN138_RPC_URL) exits 2, a
node that does not answer 5; nothing is sent either way.
--dry-run runs the whole pipeline on a throw-away anvil fork of the network and sends nothing.
The logic lives in dealvault.deploy (deploy_command); this is a thin wrapper.
"""

from __future__ import annotations

from pathlib import Path

import click

from dealvault.cli import account_option, connect_provider, exit_with, network_option
from dealvault.deploy import DEPLOYMENTS_DIR, deploy_command

PATH = click.Path(dir_okay=False, path_type=Path)


@click.command(help=__doc__)
@network_option()
@account_option("--account", "account", required=True, help="the ape account that signs and pays (TEST::N on local)")
@click.option("--deal", "deal_path", required=True, type=PATH, help="deal spec YAML")
@click.option("--config", "config_path", type=PATH, default=None,
              help="network config (default: deployments/chain138.config.yaml; the local mirror's on local networks)")
@click.option("--deployments", "deployments_dir", type=click.Path(file_okay=False, path_type=Path), default=DEPLOYMENTS_DIR,
              show_default=True, help="records folder")
@click.option("--dry-run", "dry", is_flag=True, help="run everything on a throw-away fork; send nothing")
@click.option("--redeploy", is_flag=True, help="deploy again although a record exists (the old one is kept in history)")
@click.option("--accept-genesis", default=None, help="accept this block 0 hash while the config's genesis_hash is null")
def cli(provider, account, deal_path, config_path, deployments_dir, dry, redeploy, accept_genesis):
    def run() -> int:
        with connect_provider(provider) as connected:
            return deploy_command(connected, account, deal_path=deal_path, config_path=config_path, deployments_dir=deployments_dir,
                                  dry=dry, redeploy=redeploy, accept_genesis=accept_genesis, out=click.echo,
                                  err=lambda m: click.echo(m, err=True))

    exit_with(run)
