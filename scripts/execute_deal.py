"""`ape run execute_deal`: run a deal's legs (step 0 to step 4) against its vault.

    ape run execute_deal --network <ecosystem:network:provider> --account <alias> --deal deals/example.yaml \
        [--dry-run] [--until STEP] [--resume DEAL_ID] [--json] [--yes] [--rpc-timeout SECONDS] [--max-wait SECONDS]
    ape run execute_deal --rpc http://127.0.0.1:8545 --account TEST::1 --owner-account TEST::0 --deal ... \
        --deployment deployments/local/mirror/demo-001.json

The vault's addresses come from its deployment record (``deployments/<network>/<deal>.json``,
written by ``ape run deploy``; or --deployment) or, for a spec with a vault address, from the
network config (--config). Its views are read through the chain's DealVaultLens: the deployment
record's lens, else the network config's venues.lens.

Before the buy the vault's TWAP observation (taken at split) must be twapWindow old: on a local
chain the clock is advanced (evm_increaseTime); on a real network the run waits, printing how long,
at most --max-wait seconds (longer: exit 4, nothing sent; re-run with --resume after the time shown).

Exit codes: 0 done, 1 unexpected failure, 2 bad input (nothing sent), 3 HOLDING (a tranche failed;
the message lists the safe options), 4 an owner action is needed, or the TWAP wait is longer than
--max-wait (nothing sent; re-run with --resume), 5 the chain could not be reached (re-run with
--resume), 6 a cap check or simulation refused a leg (e.g. the pair's spot price too far above its
TWAP, or a revert such as LossBudgetExceeded, decoded by name).
--json prints the machine-readable report on stdout; logs go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click


@click.command(help=__doc__)
@click.option("--network", "network_choice", default=None, help="ape network choice (ecosystem:network:provider)")
@click.option("--rpc", default=None, help="connect to this RPC URL with web3 instead of an ape provider")
@click.option("--account", "alias", required=True, help="operator's ape account alias (TEST::N = test account N)")
@click.option("--owner-account", "owner_alias", default=None, help="local chains only: the owner's alias (funds the vault)")
@click.option("--deal", "deal_path", required=True, type=click.Path(path_type=Path), help="deal spec YAML")
@click.option("--deployment", "deployment", default=None, type=click.Path(path_type=Path), help="the vault's deployment record")
@click.option("--config", "config_path", default=None, type=click.Path(path_type=Path), help="network config (vault_address specs)")
@click.option("--db", "db_url", default=None, help="deal record URL (default DATABASE_URL or .dealvault/deals.db)")
@click.option("--dry-run", "dry", is_flag=True, help="simulate every leg on a throw-away fork; send nothing")
@click.option("--until", "until", default=None, help="stop after this step (0..4 or split|position|buy|monetize|close)")
@click.option("--resume", "resume_id", default=None, help="continue this deal from the record and the chain")
@click.option("--json", "as_json", is_flag=True, help="machine-readable result on stdout")
@click.option("--yes", is_flag=True, help="no confirmation prompt on non-local networks")
@click.option("--rpc-timeout", "rpc_timeout", default=60.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="--rpc: seconds per JSON-RPC request before giving up (exit 5)")
@click.option("--max-wait", "max_wait", default=3600.0, show_default=True, type=click.FloatRange(min=0),
              help="real networks: the longest wait (s) for the buy's TWAP observation; longer: exit 4, resumable")
def cli(network_choice, rpc, alias, owner_alias, deal_path, deployment, config_path, db_url, dry, until, resume_id, as_json, yes, rpc_timeout,
        max_wait):
    sys.exit(main(network_choice, rpc, alias, owner_alias, deal_path, deployment, config_path, db_url, dry, until, resume_id, as_json, yes,
                  rpc_timeout, max_wait))


def main(network_choice, rpc, alias, owner_alias, deal_path, deployment, config_path, db_url, dry, until, resume_id, as_json, yes,
         rpc_timeout=60.0, max_wait=3600.0) -> int:
    from rich.console import Console

    from dealvault.cli import connect
    from dealvault.deploy import DEPLOYMENTS_DIR, DeployError, ape_account, load_record, record_path
    from dealvault.spec.netconfig import CHAIN138_CONFIG, ConfigError, load_netconfig
    from dealvault.run import EXIT_INPUT, DealError, InputError, Venues, parse_until, run_deal
    from dealvault.record import RecordError, open_record
    from dealvault.run.report import render_report
    from dealvault.signer import ApeAccountSigner
    from dealvault.spec import SpecError, load_spec

    err = Console(stderr=True)

    def fail(msg: str, code: int = EXIT_INPUT) -> int:
        err.print(f"[red]error:[/] {msg}", highlight=False)
        if as_json:
            click.echo(json.dumps({"status": "error", "exit_code": code, "message": msg}))
        return code

    # ---- input, before touching any chain
    try:
        spec = load_spec(deal_path)
        parse_until(until)
    except (SpecError, InputError) as exc:
        return fail(str(exc))
    if resume_id is not None and resume_id != spec.deal_id:
        return fail(f"--resume {resume_id!r} but the spec's deal_id is {spec.deal_id!r}")
    try:
        operator_acct = ape_account(alias)
        owner_acct = ape_account(owner_alias) if owner_alias else None
    except DeployError as exc:
        return fail(str(exc))
    if owner_acct is not None and not spec.network.local:
        return fail("--owner-account is for local chains only: on Chain 138 the owner is a multisig (use `ape run owner_tx`)")
    try:
        if deployment is not None or spec.vault_address is None:
            net_name = None
            if deployment is None:
                cfg = load_netconfig(config_path or CHAIN138_CONFIG)
                net_name = cfg.name
                deployment = record_path(DEPLOYMENTS_DIR, net_name, spec.deal_id)
            if not Path(deployment).exists():
                return fail(f"no deployment record {deployment}: deploy the vault first (`ape run deploy --deal {deal_path}`) or pass --deployment")
            rec = load_record(Path(deployment))
            cfg_lens = None
            if not (rec.get("lens") or {}).get("address"):  # the record names none: the network config's
                cfg_lens = load_netconfig(config_path or CHAIN138_CONFIG).venues.lens
            venues = Venues.from_deploy_record(rec, lens=cfg_lens)
        else:
            venues = Venues.from_netconfig(load_netconfig(config_path or CHAIN138_CONFIG), spec.vault_address)
        if venues.lens is None:
            return fail(f"vault {venues.vault}: no DealVaultLens: the deployment record names none and the network config has no "
                        "venues.lens (deploy one with `ape run deploy`, or set venues.lens)")
        mainnet_genesis = None
        with contextlib.suppress(Exception):
            mainnet_genesis = load_netconfig(CHAIN138_CONFIG).genesis_hash
    except (ConfigError, DeployError, InputError, KeyError) as exc:
        return fail(f"vault addresses: {exc}")

    # ---- connect
    try:
        provider_ctx = connect(rpc, network_choice, timeout=rpc_timeout)
    except InputError as exc:
        return fail(str(exc))

    try:
        with provider_ctx as w3:
            operator = ApeAccountSigner(operator_acct, w3)
            owner = ApeAccountSigner(owner_acct, w3) if owner_acct is not None else None
            if not spec.network.local and not dry and not yes:
                if not click.confirm(f"send the legs of {spec.deal_id} to {spec.network.name} (chain {spec.network.chain_id}) as {operator.address}?", err=True):
                    return fail("not confirmed; nothing sent")
            record = open_record(db_url)

            def on_leg(r):
                s = r.risk_after or r.snapshot or {}  # riskView after the leg: a light leg's snapshot has no marks
                extra = ""
                for e in r.events:
                    if e["event"] in ("Redeemed", "RedemptionFailed"):
                        extra = f" rung {int(e['args']['rung']) + 1} {'ok' if e['event'] == 'Redeemed' else 'FAILED'}"
                err.print(f"  step {r.step} [bold]{r.leg:<8}[/] legSeq {r.leg_seq}  gas {r.gas_used:,}  LTV {s.get('ltvBps')} bps  "
                          f"exposure {s.get('exposureBps')} bps  phase {s.get('phaseName')}{extra}  {r.tx_hash}", highlight=False)

            try:
                report = run_deal(spec, w3=w3, operator=operator, owner=owner, record=record, venues=venues, until=until,
                                  dry_run=dry, resume=resume_id is not None, console=err, on_leg=on_leg, mainnet_genesis=mainnet_genesis,
                                  max_wait=max_wait)
            finally:
                record.close()
    except DealError as exc:
        return fail(str(exc), exc.exit_code)
    except (RecordError, ValueError) as exc:
        return fail(str(exc), 1)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        render_report(report)
    if report.exit_code:
        err.print(report.message, highlight=False)
    return report.exit_code
