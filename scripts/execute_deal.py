"""`ape run execute_deal`: run a deal's legs (split, position, buy, monetize, close) against its vault.

\b
    ape run execute_deal --network <ecosystem:network:provider> --account <alias> --deal deals/example.yaml \
        [--dry-run] [--until STEP] [--resume DEAL_ID | --unwind DEAL_ID] [--json] [--yes] [--rpc-timeout SECONDS] [--max-wait SECONDS] \
        [--plot FILE.png]
    ape run execute_deal --rpc http://127.0.0.1:8545 --account TEST::1 --owner-account TEST::0 --deal ... \
        --deployment deployments/local/mirror/demo-001.json

The vault's addresses come from its deployment record (deployments/<network>/<deal>.json, or
--deployment) or, for a spec with a vault address, from the network config (--config); its views
through the record's DealVaultLens, else the config's venues.lens. Before the buy the TWAP
observation must be twapWindow old: a local chain's clock is advanced; a real network is waited
for, at most --max-wait seconds (longer: exit 4, nothing sent; re-run with --resume).

--unwind DEAL_ID takes the deal to CLOSED from whatever state it is in: the USDTz redeemed (or sold
at the floor), the debt repaid from the books, then by deleverage, then close; where the operator
cannot (debt left, a close the vault refuses) the owner's Safe batch is written, simulated from the
owner, and the run exits 4 naming it.

Exit codes (dealvault.errors.ExitCode): 0 done, 1 unexpected failure, 2 bad input (nothing sent),
3 HOLDING (the message lists the safe options), 4 an owner action or a longer wait is needed,
5 the chain could not be reached (re-run with --resume), 6 a cap check or the simulation refused a
leg (reverts decoded by name). --json prints the report on stdout; logs go to stderr.

--plot FILE.png writes the deal's chart after the run, from the record (LTV and exposure after each
leg with the caps, the NAV waterfall) and says `chart: FILE.png` on stderr; a file name without
.png or in a folder that does not exist is bad input (exit 2, nothing sent).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dealvault.cli import account_option, network_option, plot_option, rpc_options
from dealvault.run.execute import ExecuteOptions, execute_deal

PathType = click.Path(path_type=Path)


@click.command(help=__doc__)
@network_option()
@rpc_options()
@account_option("--account", "account", required=True, help="the operator's ape account (alias, or TEST::N)")
@account_option("--owner-account", "owner_account", help="local chains only: the owner's account (funds the vault)")
@click.option("--deal", "deal", required=True, type=PathType, help="deal spec YAML")
@click.option("--deployment", default=None, type=PathType, help="the vault's deployment record")
@click.option("--config", default=None, type=PathType, help="network config (vault_address specs)")
@click.option("--db", default=None, help="deal record URL (default DATABASE_URL or .dealvault/deals.db)")
@click.option("--dry-run", "dry_run", is_flag=True, help="simulate every leg on a throw-away fork; send nothing")
@click.option("--until", default=None, help="stop after this step (0..4 or split|position|buy|monetize|close)")
@click.option("--resume", default=None, help="continue this deal from the record and the chain")
@click.option("--unwind", default=None, help="take this deal to CLOSED from whatever state it is in (repay, deleverage, close)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable result on stdout")
@click.option("--yes", is_flag=True, help="no confirmation prompt on non-local networks")
@click.option("--max-wait", "max_wait", default=3600.0, show_default=True, type=click.FloatRange(min=0),
              help="real networks: the longest wait (s) for the buy's TWAP observation; longer: exit 4, resumable")
@plot_option("write the deal's chart (PNG: LTV and exposure per leg, the NAV waterfall) after the run, from the record")
def cli(provider: object = None, **flags: object) -> None:
    options = ExecuteOptions(provider=provider, **flags)  # type: ignore[arg-type]
    sys.exit(execute_deal(options, confirm=lambda question: click.confirm(question, err=True)))
