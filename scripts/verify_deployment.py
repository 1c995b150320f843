"""`ape run verify_deployment`: re-run the deployment check against a record at any time.

    ape run verify_deployment --network chain138:mainnet:node --deal <deal-id | deals/<id>.yaml> \
        [--config deployments/chain138.config.yaml]

Reads deployments/<network>/<deal-id>.json and checks, on the connected chain: chain id and
genesis hash; the runtime code of the vault's core, of its extension (``vault.extension()``) and
of the recorded DealVaultLens against the recorded bytecode hashes (immutables masked); the core's
and the extension's immutables against ``vault.setup()``; and every recorded constructor parameter,
read back through the lens (caps the owner tightened since are reported, not failed).
Exit 0 verified, 1 mismatch (every difference listed), 2 missing or bad record (a v1 record has no
extension/lens block).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand

from dealvault.deploy import DEPLOYMENTS_DIR, default_config_path, record_path, run_verify


@click.command(cls=ConnectedProviderCommand, help=__doc__)
@click.option("--deal", required=True, help="deal id, or the deal spec YAML")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="network config naming the records folder (default as for `ape run deploy`)")
@click.option("--deployments", "deployments_dir", type=click.Path(file_okay=False, path_type=Path), default=DEPLOYMENTS_DIR,
              show_default=True)
def cli(provider, deal, config_path, deployments_dir):
    from dealvault.spec.netconfig import ConfigError, load_netconfig
    from dealvault.spec import SpecError, load_spec

    err = lambda m: click.echo(m, err=True)  # noqa: E731
    try:
        net = load_netconfig(config_path or default_config_path(provider.network.name))
        deal_id = load_spec(deal).deal_id if deal.endswith((".yaml", ".yml")) else deal
    except (ConfigError, SpecError) as exc:
        err(f"error: {exc}")
        sys.exit(2)
    path = record_path(deployments_dir, net.name, deal_id)
    if not path.exists():
        err(f"error: record: no deployment record {path}")
        sys.exit(2)
    sys.exit(run_verify(provider.web3, record_file=path, out=click.echo, err=err))
