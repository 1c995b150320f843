"""`ape run execute_deal` as a function: check the input before touching any chain, connect, run
the deal (:func:`~dealvault.run.deal.run_deal`), print a line per leg and the report, and return
the exit code (:class:`~dealvault.errors.ExitCode`). The script only parses the flags.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dealvault.errors import DealVaultError, ExitCode
from dealvault.vault.enums import rung_number

__all__ = ["ExecuteOptions", "execute_deal", "leg_line", "write_chart"]


@dataclass(frozen=True)
class ExecuteOptions:
    """The flags of ``ape run execute_deal`` (see its help)."""

    deal: Path
    account: Any                    # the operator's ape AccountAPI
    owner_account: Any = None       # local chains only: the owner's (funds the vault)
    provider: Any = None            # --network: an ape ProviderAPI (or a choice string)
    rpc: str | None = None
    rpc_timeout: float = 60.0
    deployment: Path | None = None
    config: Path | None = None
    db: str | None = None
    dry_run: bool = False
    until: str | None = None
    resume: str | None = None
    unwind: str | None = None
    as_json: bool = False
    yes: bool = False
    max_wait: float = 3600.0
    plot: Path | None = None        # --plot FILE: the deal's chart (PNG), written after the run from the record


def leg_line(r: Any, *, aligned: bool = False) -> str:
    """One line per leg: step, leg, legSeq, gas, LTV, exposure and phase after it (the risk view
    after the leg; a light leg's snapshot has no marks), the tranche's rung and outcome."""
    s = r.risk_after or r.snapshot
    ev = r.event("Redeemed", "RedemptionFailed")
    extra = f" rung {rung_number(ev.args['rung'])} {'ok' if ev.name == 'Redeemed' else 'FAILED'}" if ev is not None else ""
    ltv, exposure, phase = (s.ltvBps, s.exposureBps, s.phase.name) if s is not None else (None, None, None)
    if aligned:  # the demo's columns
        return (f"  step {r.step} [bold]{r.leg:<8}[/] legSeq {r.leg_seq:>2}  gas {r.gas_used:>9,}  "
                f"LTV {ltv or 0} bps  exposure {exposure or 0} bps  phase {phase}{extra}")
    return (f"  step {r.step} [bold]{r.leg:<8}[/] legSeq {r.leg_seq}  gas {r.gas_used:,}  LTV {ltv} bps  "
            f"exposure {exposure} bps  phase {phase}{extra}  {r.tx_hash}")


def write_chart(path: Path, record: Any, report: Any, w3: Any, lens: str | None, err: Any) -> Path | None:
    """The run's chart (:func:`~dealvault.run.plot.run_chart`) at ``path``, or None after saying on
    ``err`` why not (a dry run records no legs; the chain or the record failed): the run's own
    outcome and exit code stand either way."""
    from dealvault.run.plot import run_chart

    if report.dry_run or not lens:
        err.print("[yellow]chart: not written:[/] " + ("a dry run records no legs" if report.dry_run else "no lens"), highlight=False)
        return None
    try:
        return run_chart(record, report, w3, lens, path)
    except (DealVaultError, ValueError, OSError) as exc:
        err.print(f"[yellow]chart: not written:[/] {exc}", highlight=False)
        return None


def execute_deal(o: ExecuteOptions, *, confirm: Any = None) -> int:
    """Run the deal of ``o``; returns the exit code. Errors print ``error: <message>`` on stderr
    (and a JSON error document on stdout with ``--json``). ``confirm(question) -> bool``: asked
    before sending to a real network without ``--yes``."""
    from dealvault.cli import console

    err = console(stderr=True)
    try:
        return _execute(o, err, confirm)
    except DealVaultError as exc:
        code = int(exc.exit_code)
        msg = str(exc)
    except ValueError as exc:  # a malformed answer or record: unexpected
        code, msg = int(ExitCode.FAILED), str(exc)
    err.print(f"[red]error:[/] {msg}", highlight=False)
    if o.as_json:
        print(json.dumps({"status": "error", "exit_code": code, "message": msg}))
    return code


def _execute(o: ExecuteOptions, err: Any, confirm: Any) -> int:
    from dealvault.accounts import unlock_for_signing
    from dealvault.cli import connect, provider_url
    from dealvault.record import open_record
    from dealvault.run.deal import run_deal
    from dealvault.run.errors import InputError
    from dealvault.run.plot import check_plot_path
    from dealvault.run.report import render_report
    from dealvault.run.steps import parse_until
    from dealvault.run.venues import venues_for
    from dealvault.signer import ApeAccountSigner
    from dealvault.spec import load_spec
    from dealvault.spec.netconfig import CHAIN138_CONFIG, config_for_network, load_netconfig, local_config_path

    # ---- input, before touching any chain
    spec = load_spec(o.deal)
    parse_until(o.until)
    if o.resume is not None and o.resume != spec.deal_id:
        raise InputError(f"--resume {o.resume!r} but the spec's deal_id is {spec.deal_id!r}")
    if o.unwind is not None and o.unwind != spec.deal_id:
        raise InputError(f"--unwind {o.unwind!r} but the spec's deal_id is {spec.deal_id!r}")
    if o.unwind is not None and o.until is not None:
        raise InputError("--unwind runs to CLOSED: not with --until")
    if o.account is None:
        raise InputError("--account: the operator's ape account alias is required")
    if o.plot is not None:
        check_plot_path(o.plot)
    if o.owner_account is not None and not spec.network.local:
        raise InputError("--owner-account is for local chains only: on Chain 138 the owner is a multisig (use `ape run owner_tx`)")
    # the network config (and so the deployment record's folder): --config, else the one of the
    # ape network (the mirror's for chain138:mirror and local), else the mirror's for a local spec
    config = o.config
    if config is None and o.provider is not None:
        config = config_for_network(o.provider.network.name)
    elif config is None and spec.network.local:
        config = local_config_path()
    venues = venues_for(spec, deployment=o.deployment, config=config, spec_path=o.deal)
    if not o.dry_run:  # keystore accounts sign unattended from here on (passphrase once)
        unlock_for_signing(o.account)
        if o.owner_account is not None:
            unlock_for_signing(o.owner_account)
    mainnet_genesis = load_netconfig(CHAIN138_CONFIG).genesis_hash  # a broken config is bad input (exit 2), never skipped
    # ---- connect, run
    with connect(o.rpc, o.provider, timeout=o.rpc_timeout) as w3:
        operator = ApeAccountSigner(o.account, w3)
        owner = ApeAccountSigner(o.owner_account, w3) if o.owner_account is not None else None
        if not spec.network.local and not o.dry_run and not o.yes and confirm is not None:
            question = f"send the legs of {spec.deal_id} to {spec.network.name} (chain {spec.network.chain_id}) as {operator.address}?"
            if not confirm(question):
                raise InputError("not confirmed; nothing sent")
        record = open_record(o.db)
        try:
            report = run_deal(spec, w3=w3, operator=operator, owner=owner, record=record, venues=venues, until=o.until,
                              dry_run=o.dry_run, resume=o.resume is not None, console=err,
                              on_leg=lambda r: err.print(leg_line(r), highlight=False),
                              mainnet_genesis=mainnet_genesis, max_wait=o.max_wait, node_url=o.rpc or provider_url(o.provider),
                              unwind=o.unwind is not None)
            chart = write_chart(o.plot, record, report, w3, venues.lens, err) if o.plot is not None else None
        finally:
            record.close()
    if o.as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        render_report(report)
    if chart is not None:
        err.print(f"chart: {chart}", highlight=False)
    if report.exit_code and o.as_json:  # the table (stdout) ends with the message already
        err.print(report.message, highlight=False)
    return int(report.exit_code)
