"""`ape run demo`: the whole demo deal on a fresh local Chain 138 mirror, end to end.

Starts the kit (anvil with chain id 138 + the Chain 138 mirror + the venues overlay) on a free
port, deploys the vault for deals/example.yaml with the shared deploy pipeline (the vault, whose
constructor creates its extension, and a DealVaultLens for its views), funds it as the owner, runs
every leg of the deal as the operator (ape test accounts TEST::0 / TEST::1, which are the kit
node's dev accounts: ape signs locally, the raw transactions go to the kit; before the buy the
local chain's clock is advanced to the TWAP observation's readiness), prints the report (operator
loss against the loss budget included), the gas and the wall time, and stops the chain.

    ape run demo [--deal deals/example.yaml] [--json] [--keep-db]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import click


@click.command(help=__doc__)
@click.option("--deal", "deal_path", default="deals/example.yaml", show_default=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON on stdout")
@click.option("--port", type=int, default=None, help="kit port (default: a free one)")
def cli(deal_path: Path, as_json: bool, port: int | None):
    t0 = time.perf_counter()
    from rich.console import Console

    from dealvault.deploy import AnvilSigner, DeployError, ape_account, deal_params, deploy_vault
    from dealvault.kit import start_kit
    from dealvault.spec.netconfig import load_netconfig, write_local_config
    from dealvault.run import DealError, Venues, run_deal
    from dealvault.paths import ROOT
    from dealvault.record import open_record
    from dealvault.run.report import render_report
    from dealvault.signer import ApeAccountSigner
    from dealvault.spec import SpecError, load_spec

    err = Console(stderr=True)
    out = Console()
    try:
        spec = load_spec(deal_path)
    except SpecError as exc:
        err.print(f"[red]error:[/] {exc}")
        sys.exit(2)
    resolver = lambda a: str(ape_account(a).address)  # noqa: E731
    roles = spec.roles.resolve(resolver)
    kit = start_kit(port, overlay=True)
    code = 1
    try:
        w3 = kit.w3
        err.print(f"kit: Chain 138 mirror + overlay on {kit.node.url} (chain id {w3.eth.chain_id}), built in {kit.build_seconds:.1f} s")
        with tempfile.TemporaryDirectory(prefix="dealvault-demo-") as tmp:
            cfg = write_local_config(w3, kit.mirror, kit.overlay, Path(tmp) / "local" / "demo.config.yaml")
            net = load_netconfig(cfg)
            deal = deal_params(spec, resolver=resolver, path=deal_path)
            res = deploy_vault(w3, AnvilSigner(w3, roles["owner"]), net, deal, deployments_dir=Path(tmp) / "deployments",
                               confirmations=1, poll=0.02, log=lambda m: err.print(f"deploy: {m}"))
            venues = Venues.from_deploy_record(res.record)
        err.print(f"vault {venues.vault} deployed ({res.gas_used:,} gas; extension {res.extension} created by its constructor), "
                  f"lens {venues.lens} ({res.lens_gas_used or 0:,} gas) at {time.perf_counter() - t0:.1f} s")
        db = ROOT / ".dealvault" / "demo" / f"demo-{time.strftime('%Y%m%d-%H%M%S')}.db"
        record = open_record(f"sqlite:///{db}")
        owner = ApeAccountSigner(ape_account(spec.roles.owner.value), w3)
        operator = ApeAccountSigner(ape_account(spec.roles.operator.value), w3)

        def on_leg(r):
            extra = ""
            if r.leg == "redeem":
                ev = [e for e in r.events if e["event"] in ("Redeemed", "RedemptionFailed")]
                if ev:
                    extra = f" rung {int(ev[0]['args']['rung']) + 1} {'ok' if ev[0]['event'] == 'Redeemed' else 'FAILED'}"
            s = r.risk_after or r.snapshot or {}  # riskView after the leg: a light leg's snapshot has no marks
            err.print(f"  step {r.step} [bold]{r.leg:<8}[/] legSeq {r.leg_seq:>2}  gas {r.gas_used:>9,}  "
                      f"LTV {s.get('ltvBps', 0)} bps  exposure {s.get('exposureBps', 0)} bps  phase {s.get('phaseName')}{extra}")

        try:
            report = run_deal(spec, w3=w3, operator=operator, owner=owner, record=record, venues=venues,
                              console=err, on_leg=on_leg)
        except DealError as exc:
            err.print(f"[red]error:[/] {exc}")
            sys.exit(exc.exit_code)
        finally:
            record.close()
        if as_json:
            click.echo(json.dumps(report.to_json(), indent=2))
        else:
            render_report(report, out)
        legs_gas = sum(int(l.gas_used or 0) for l in report.legs)
        err.print(f"gas: deployment {res.gas_used + (res.lens_gas_used or 0):,} (vault {res.gas_used:,} + lens "
                  f"{res.lens_gas_used or 0:,}), deal legs {legs_gas:,} ({len(report.legs)} legs)")
        code = report.exit_code
        err.print(f"record: {db}")
    except (DeployError, SpecError) as exc:
        err.print(f"[red]error:[/] {exc}")
        code = 2
    finally:
        kit.stop()
        err.print(f"demo wall time: {time.perf_counter() - t0:.1f} s (chain stopped)")
    sys.exit(code)
