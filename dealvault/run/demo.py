"""`ape run demo` as a function: the whole demo deal on a fresh local Chain 138 mirror, end to end.

Starts the kit (anvil with chain id 138 + the Chain 138 mirror + the venues overlay) on a free
port, deploys the vault for the deal spec with the shared deploy pipeline (the vault, whose
constructor creates its extension, and a DealVaultLens for its views), funds it as the owner, runs
every leg of the deal as the operator (the spec's role aliases: ape test accounts TEST::0 /
TEST::1, the kit node's dev accounts), prints the report, the gas and the wall time, writes the
deal's chart beside its record (``.dealvault/demo/demo-<time>.png``, :mod:`dealvault.run.plot`)
and prints its path, and stops the chain.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from dealvault.errors import DealVaultError, ExitCode

__all__ = ["run_demo"]


def run_demo(deal_path: Path, *, as_json: bool = False, port: int | None = None, t0: float | None = None) -> int:
    """Run the demo of ``deal_path``; returns the exit code. ``t0``: when the command started
    (``time.perf_counter()``), for the wall time."""
    from dealvault.accounts import ape_account
    from dealvault.cli import console
    from dealvault.deploy import DeployError
    from dealvault.kit import start_kit
    from dealvault.spec import SpecError, load_spec

    t0 = time.perf_counter() if t0 is None else t0
    err, out = console(stderr=True), console()
    try:
        spec = load_spec(deal_path)
    except SpecError as exc:
        err.print(f"[red]error:[/] {exc}")
        return int(ExitCode.INPUT)

    def resolver(alias: str) -> str:
        return str(ape_account(alias).address)

    roles = spec.roles.resolve(resolver)
    kit = start_kit(port, overlay=True)
    try:
        return _demo(kit, spec, roles, deal_path, as_json=as_json, t0=t0, err=err, out=out)
    except (DeployError, SpecError, DealVaultError) as exc:
        err.print(f"[red]error:[/] {exc}")
        return int(ExitCode.INPUT) if isinstance(exc, (DeployError, SpecError)) else int(exc.exit_code)
    finally:
        kit.stop()
        err.print(f"demo wall time: {time.perf_counter() - t0:.1f} s (chain stopped)")


def _demo(kit: Any, spec: Any, roles: Any, deal_path: Path, *, as_json: bool, t0: float, err: Any, out: Any) -> int:
    from dealvault.accounts import ape_account
    from dealvault.deploy import AnvilSigner, deal_params, deploy_vault
    from dealvault.paths import ROOT
    from dealvault.record import open_record
    from dealvault.run.deal import run_deal
    from dealvault.run.errors import DealError
    from dealvault.run.execute import leg_line, write_chart
    from dealvault.run.report import render_report
    from dealvault.run.venues import Venues
    from dealvault.signer import ApeAccountSigner
    from dealvault.spec.netconfig import load_netconfig, write_local_config

    w3 = kit.w3
    err.print(f"kit: Chain 138 mirror + overlay on {kit.node.url} (chain id {w3.eth.chain_id}), built in {kit.build_seconds:.1f} s")
    with tempfile.TemporaryDirectory(prefix="dealvault-demo-") as tmp:
        net = load_netconfig(write_local_config(w3, kit.mirror, kit.overlay, Path(tmp) / "local" / "demo.config.yaml"))
        deal = deal_params(spec, resolver=lambda a: str(ape_account(a).address), path=deal_path)
        res = deploy_vault(w3, AnvilSigner(w3, roles["owner"]), net, deal, deployments_dir=Path(tmp) / "deployments",
                           confirmations=1, poll=0.02, log=lambda m: err.print(f"deploy: {m}"))
        venues = Venues.from_deploy_record(res.record)
    lens_gas = res.lens_gas_used or 0
    err.print(f"vault {venues.vault} deployed ({res.gas_used:,} gas; extension {res.extension} created by its constructor), "
              f"lens {venues.lens} ({lens_gas:,} gas) at {time.perf_counter() - t0:.1f} s")
    db = ROOT / ".dealvault" / "demo" / f"demo-{time.strftime('%Y%m%d-%H%M%S')}.db"
    record = open_record(f"sqlite:///{db}")
    owner = ApeAccountSigner(ape_account(spec.roles.owner.value), w3)
    operator = ApeAccountSigner(ape_account(spec.roles.operator.value), w3)
    try:
        report = run_deal(spec, w3=w3, operator=operator, owner=owner, record=record, venues=venues, console=err,
                          on_leg=lambda r: err.print(leg_line(r, aligned=True)))
        chart = write_chart(db.with_suffix(".png"), record, report, w3, venues.lens, err)
    except DealError as exc:
        err.print(f"[red]error:[/] {exc}")
        return int(exc.exit_code)
    finally:
        record.close()
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        render_report(report, out)
    legs_gas = sum(int(leg.gas_used or 0) for leg in report.legs)
    vault_gas = res.gas_used or 0
    err.print(f"gas: deployment {vault_gas + lens_gas:,} (vault {vault_gas:,} + lens {lens_gas:,}), "
              f"deal legs {legs_gas:,} ({len(report.legs)} legs)")
    err.print(f"record: {db}")
    if chart is not None:
        err.print(f"chart: {chart}")
    return int(report.exit_code)
