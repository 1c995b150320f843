"""`ape run deploy`: deploy one DealVault for a deal, verify it and record it.

    ape run deploy --network chain138:mainnet:node --account <alias> --deal deals/<id>.yaml \
        [--config deployments/chain138.config.yaml] [--dry-run] [--redeploy] [--accept-genesis 0x...]

Preflight (identity, code, tokens, feed, pool, roles, the configured lens's code, opcodes, gas)
runs before anything is sent; any failure prints every problem naming its item and exits 2. The
vault is one creation transaction (its constructor creates the extension); a DealVaultLens is
deployed first unless the network config names one (venues.lens). The record (vault, extension
and lens addresses and hashes) goes to deployments/<network>/<deal-id>.json; a re-run with the
same build and config is a no-op.
--dry-run runs the whole pipeline on a throw-away anvil fork of the network and sends nothing.
The logic lives in dealvault.deploy (run_deploy); this is a thin wrapper.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand

from dealvault.deploy import DeployError, DEPLOYMENTS_DIR, ApeSigner, ape_account, default_config_path, run_deploy


@click.command(cls=ConnectedProviderCommand, help=__doc__)
@click.option("--account", "alias", required=True, help="ape account alias that signs and pays (TEST::N on local)")
@click.option("--deal", "deal_path", required=True, type=click.Path(dir_okay=False, path_type=Path), help="deal spec YAML")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="network config (default: deployments/chain138.config.yaml; the local mirror's on local networks)")
@click.option("--deployments", "deployments_dir", type=click.Path(file_okay=False, path_type=Path), default=DEPLOYMENTS_DIR,
              show_default=True, help="records folder")
@click.option("--dry-run", "dry", is_flag=True, help="run everything on a throw-away fork; send nothing")
@click.option("--redeploy", is_flag=True, help="deploy again although a record exists (the old one is kept in history)")
@click.option("--accept-genesis", default=None, help="accept this block 0 hash while the config's genesis_hash is null")
def cli(provider, alias, deal_path, config_path, deployments_dir, dry, redeploy, accept_genesis):
    w3 = provider.web3
    err = lambda m: click.echo(m, err=True)  # noqa: E731
    try:
        account = ape_account(alias)
    except DeployError as exc:
        err(f"error: {exc}")
        sys.exit(2)
    config_path = config_path or default_config_path(provider.network.name)
    resolver = lambda a: str(ape_account(a).address)  # noqa: E731 - roles given as alias:NAME (local chains)
    code = run_deploy(
        w3,
        deal_path=deal_path,
        config_path=config_path,
        signer=None if dry else ApeSigner(account, w3),
        deployer=str(account.address),
        upstream_url=getattr(provider, "http_uri", None) or getattr(provider, "uri", None),
        dry=dry,
        redeploy=redeploy,
        accept_genesis=accept_genesis,
        deployments_dir=deployments_dir,
        resolver=resolver,
        out=click.echo,
        err=err,
    )
    sys.exit(code)
