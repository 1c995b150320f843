"""`ape run deal_status`: a deal's record and its vault's live risk view side by side, with flags.

\b
    ape run deal_status demo-001 --rpc http://127.0.0.1:8545              # record + risk view + flags
    ape run deal_status demo-001 --network chain138:mainnet:node --watch 30   # re-read every 30 s
    ape run deal_status demo-001 --rpc URL --once                         # cron: exit 1 if any flag is raised
    ape run deal_status --rebuild demo-001 --vault 0x... --lens 0x... --rpc URL   # rebuild a lost record from the logs
    ape run deal_status --vault 0x... --deployment deployments/<net>/<deal>.json --rpc URL --json   # the risk view only

The risk view and the parameters come from the chain's DealVaultLens: --lens ADDR, else the lens of
--deployment (the deployment record), else the deal record's (the orchestrator records it), else
the network config's venues.lens (--config, default deployments/chain138.config.yaml).
Flags: LTV within --margin-bps of the cap (or over it), health factor below --min-hf, oracle age
near (--oracle-margin-bps) or over its max age, accrued interest eating --interest-share-bps of
the expected discount profit, the operator's realized loss at --loss-margin-bps of its budget or
over it, deal in HOLDING. --watch refreshes in place on a terminal and keeps going through RPC
errors (each said on stderr). Exit codes: 0 (no flag in --once mode; always 0 otherwise), 1 a
flag is raised (--once), 2 bad input, 5 the chain could not be reached (not in --watch).
The logic lives in dealvault.run.status (watch); this is a thin wrapper.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dealvault.cli import network_option, plot_option
from dealvault.run.status import DEFAULT_MARGIN_BPS

_File = click.Path(dir_okay=False, path_type=Path)


@click.command(help=__doc__)
@click.argument("deal_id", required=False)
@click.option("--rebuild", "rebuild", default=None, help="rebuild this deal's record from the vault's logs (needs --vault)")
@click.option("--vault", default=None, help="the vault address (default: the record's)")
@click.option("--lens", default=None, help="the DealVaultLens to read the vault through (default: see above)")
@click.option("--deployment", default=None, type=_File, help="the vault's deployment record (its lens)")
@click.option("--config", "config", default=None, type=_File, help="network config (venues.lens)")
@click.option("--watch", "every", default=None, type=int, help="re-read every N seconds")
@click.option("--once", is_flag=True, help="read once; exit 1 if any flag is raised (cron)")
@click.option("--rpc", default=None, help="RPC URL (web3) instead of an ape network")
@network_option()
@click.option("--db", "db_url", default=None, help="deal record URL (default DATABASE_URL or .dealvault/deals.db)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output on stdout")
@click.option("--margin-bps", default=DEFAULT_MARGIN_BPS, show_default=True, type=int, help="flag LTV within this many bps of the cap")
@click.option("--min-hf", default="1.5", show_default=True, help="flag a health factor below this")
@click.option("--oracle-margin-bps", default=2000, show_default=True, type=int, help="flag an oracle older than (1 - this) x max age")
@click.option("--interest-share-bps", default=5000, show_default=True, type=int,
              help="flag accrued interest >= this share of the expected discount profit")
@click.option("--loss-margin-bps", default=2000, show_default=True, type=int,
              help="flag an operator loss at (1 - this) x the loss budget or more")
@click.option("--from-block", default=None, type=int, help="first block of the vault's logs (default: its first recorded leg, else 0)")
@plot_option("write the deal's chart (PNG: LTV and exposure per leg, the NAV waterfall; record + live view) after every "
             "reading; --watch replaces it (atomically) at each refresh; says `chart: FILE` on stderr")
@click.option("--metrics-port", "metrics_port", default=None, type=int, help="serve each read as Prometheus metrics on this port")
@click.option("--metrics-host", "metrics_host", default="127.0.0.1", show_default=True, help="the metrics server's address")
@click.option("--iterations", default=None, type=int, hidden=True, help="--watch: stop after N reads (tests)")
def cli(provider, **opts):
    from dealvault.run.status import watch

    sys.exit(watch(network=f"{provider.network.choice}:{provider.name}" if provider is not None else None, **opts))
