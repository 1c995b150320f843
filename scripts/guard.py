"""`ape run guard`: a keeper that watches deals and acts before a cap or a crisis binds.

\b
    ape run guard --network <ecosystem:network:provider> --deals deals/ --account <operator> \
        --guardian-account <guardian> [--dry-run] [--once] [--interval S] \
        [--metrics-port N] [--notify json://host/path ...]

Each poll reads every watched vault (risk view, parameters, oracle, and simulated transfers and
redemption: never sent) in a constant number of round trips, then per deal (the spec's `guard:`
section, deals/README.md): LTV within the margin of the cap: add collateral from the opportunistic
bucket, then repay from the books, then deleverage, as far as the restore point; the oracle stale
or invalid, USDTz frozen, the vault blacklisted on its stablecoin, the desk halted or dry: the
guardian holds the deal; interest, the loss budget, the health factor: alerts. Each rule fires once
until it clears (hysteresis) and waits its cool-down after acting. Every leg goes through the deal's
crash-safe journal, with the deal's locks held only while acting. A key not given: that action is
alert only. RPC errors, a stalled chain and reorgs are reported; the guard goes on.
--metrics-port serves Prometheus metrics (README, "Metrics and alerts"); --notify sends each
decision and new problem through apprise (webhook, Slack, email, Telegram), with retries.

Exit codes: 0 (stopped by SIGTERM/SIGINT, or --once with nothing failed), 1 an action failed
(--once), 2 bad input (nothing sent), 5 the chain could not be read (--once).
The logic lives in dealvault.guard; this is a thin wrapper.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dealvault.cli import account_option, network_option, rpc_options
from dealvault.guard.command import GuardOptions, guard

PathType = click.Path(path_type=Path)


@click.command(help=__doc__)
@network_option()
@rpc_options()
@click.option("--deals", "deals", required=True, multiple=True, type=PathType, help="deal spec files or directories of them")
@account_option("--account", "account", help="the operator's ape account: the risk-reducing legs (none: alert only)")
@account_option("--guardian-account", "guardian_account", help="the guardian's ape account: hold (none: alert only)")
@click.option("--config", default=None, type=PathType, help="network config (vault_address specs)")
@click.option("--deployments-dir", "deployments_dir", default=None, type=PathType,
              help="where the deployment records are (<dir>/<network>/<deal>.json; default deployments/)")
@click.option("--db", default=None, help="deal record URL (default DATABASE_URL or .dealvault/deals.db)")
@click.option("--dry-run", "dry_run", is_flag=True, help="send nothing; say what would be done")
@click.option("--once", is_flag=True, help="one poll, then exit")
@click.option("--interval", default=12.0, show_default=True, type=float, help="seconds between polls")
@click.option("--stall-polls", "stall_polls", default=3, show_default=True, type=int,
              help="report the chain as stalled after this many polls at one block")
@click.option("--metrics-port", "metrics_port", default=None, type=int, help="serve Prometheus metrics on this port")
@click.option("--metrics-host", "metrics_host", default="127.0.0.1", show_default=True, help="the metrics server's address")
@click.option("--notify", "notify", multiple=True, metavar="URL",
              help="apprise URL to notify of each decision and problem (repeatable; also $DEALVAULT_NOTIFY, space-separated)")
@click.option("--polls", default=None, type=int, hidden=True, help="stop after N polls (tests)")
def cli(provider: object = None, **flags: object) -> None:
    sys.exit(guard(GuardOptions(provider=provider, **flags)))  # type: ignore[arg-type]
