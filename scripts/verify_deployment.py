"""`ape run verify_deployment`: re-run the deployment check against a record at any time.

    ape run verify_deployment --network chain138:mainnet:node --deal <deal-id | deals/<id>.yaml> \
        [--config deployments/chain138.config.yaml] [--record deployments/<network>/<id>.json]

Reads deployments/<network>/<deal-id>.json (or --record) and checks, on the connected chain: chain
id and genesis hash; the runtime code of the vault's core, of its extension (``vault.extension()``)
and of the recorded DealVaultLens against the recorded bytecode hashes (immutables masked); the
core's and the extension's immutables against ``vault.setup()``; and every recorded constructor
parameter, read back through the lens (caps the owner tightened since are reported, not failed).
Exit 0 verified, 1 mismatch (every difference listed), 2 missing or bad record (a v1 record has no
extension/lens block) or a network whose URI is not set, 5 the node could not be reached. The
logic lives in dealvault.deploy (verify_command).
"""

from __future__ import annotations

from pathlib import Path

import click

from dealvault.cli import connect_provider, exit_with, network_option
from dealvault.deploy import DEPLOYMENTS_DIR, verify_command


@click.command(help=__doc__)
@network_option()
@click.option("--deal", default=None, help="deal id, or the deal spec YAML")
@click.option("--record", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="the deployment record itself (instead of --deal)")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="network config naming the records folder (default as for `ape run deploy`)")
@click.option("--deployments", "deployments_dir", type=click.Path(file_okay=False, path_type=Path), default=DEPLOYMENTS_DIR,
              show_default=True)
def cli(provider, deal, record, config_path, deployments_dir):
    def run() -> int:
        with connect_provider(provider) as connected:
            return verify_command(connected, deal=deal, record=record, config_path=config_path, deployments_dir=deployments_dir,
                                  out=click.echo, err=lambda m: click.echo(m, err=True))

    exit_with(run)
