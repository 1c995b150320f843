"""`ape run deal_status`: a deal's record and its vault's live risk view side by side, with flags.

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
over it, deal in HOLDING. The output shows the operator loss against the loss budget.
Exit codes: 0 (no flag in --once mode; always 0 otherwise), 1 a flag is raised (--once),
2 bad input, 5 the chain could not be reached.
"""

from __future__ import annotations

import json
import sys
import time
from decimal import Decimal

import click

EXIT_OK, EXIT_FLAGGED, EXIT_INPUT, EXIT_CHAIN = 0, 1, 2, 5

_RISK_ROWS = (
    ("phaseName", "phase", None), ("paused", "paused", None), ("legSeq", "legSeq", None),
    ("fundedCapital", "capital (ETH)", 18), ("coreEth", "core (ETH)", 18), ("workingEth", "working (ETH)", 18),
    ("opportunisticEth", "opportunistic (ETH)", 18), ("collateralWeth", "collateral (ETH)", 18), ("debt", "debt", 6),
    ("ltvBps", "LTV (bps)", None), ("healthFactor", "health factor", 18), ("stableHeld", "stable held", 6),
    ("usdtzHeld", "USDTz held", 6), ("usdtzCost", "USDTz cost", 6), ("nav", "NAV (USD)", 8),
    ("exposureBps", "exposure (bps)", None), ("rung", "rung", None), ("redeemedTotal", "redeemed", 6),
    ("feesPaid", "desk fees", 6), ("ethPrice", "ETH/USD", 8), ("priceUpdatedAt", "price updated at", None),
    ("oracleStatusName", "oracle", None), ("realizedPnlEth", "realized PnL (ETH)", 18), ("realizedPnlUsd", "realized PnL (USD)", 8),
    ("writtenOffUsdtz", "written off", 6), ("operatorLoss", "operator loss (USD)", 6), ("lossBudget", "loss budget (USD)", 6),
    ("splitValue", "split value (USD)", 6), ("repaidOnBehalf", "repaid on behalf", 6), ("poolDebt", "pool debt", 6),
)


def _fmt(v, dec):
    if dec is None or not isinstance(v, int) or isinstance(v, bool):
        return str(v)
    if v >= 2**255:
        return "max"
    return f"{Decimal(v).scaleb(-dec).quantize(Decimal('0.0001')):,}"


def snapshot(w3, vault, record, deal_id, *, margin_bps, min_hf, oracle_margin_bps, interest_share_bps, from_block=0,
             lens=None, loss_margin_bps=2000):
    """One read: {"status": read_status(...), "flags": [...], "block": ..., "timestamp": ...}."""
    from dealvault.run import read_risk, read_status
    from dealvault.run.status import loss_budget_line, spread_inputs, status_flags, vault_params

    st = read_status(w3, vault, record, deal_id, lens=lens)
    lens = st["lens"]
    block = w3.eth.get_block("latest")
    risk = read_risk(w3, vault, lens=lens)
    params = vault_params(w3, vault, lens=lens)
    flags = status_flags(risk, params, margin_bps, now=int(block["timestamp"]), min_health_factor=min_hf,
                         oracle_margin_bps=oracle_margin_bps, interest_share_bps=interest_share_bps,
                         loss_margin_bps=loss_margin_bps, **spread_inputs(w3, vault, from_block, risk, lens=lens))
    return {"status": st, "params": params, "flags": [f.to_json() for f in flags], "block": int(block["number"]),
            "timestamp": int(block["timestamp"]), "risk_raw": risk, "loss_budget": loss_budget_line(risk)}


def render(snap, console):
    from rich.columns import Columns
    from rich.table import Table

    st = snap["status"]
    risk = snap["risk_raw"]
    rt = Table(title=f"vault {st['vault']} @ block {snap['block']}", show_header=False)
    for key, label, dec in _RISK_ROWS:
        if key in risk:
            rt.add_row(label, _fmt(risk[key], dec))
    rt.add_row("max LTV (bps)", str(snap["params"]["maxLtvBps"]))
    rt.add_row("oracle max age (s)", str(snap["params"]["oracleMaxAge"]))
    rt.add_row("max operator loss (bps)", str(snap["params"]["maxOperatorLossBps"]))
    rt.caption = f"lens {st['lens']}"
    panels = []
    if "deal" in st:
        d = st["deal"]
        lt = Table(title=f"record: deal {d['id']} ({d['status']}, {d['network']})")
        for col in ("legSeq", "step", "leg", "status", "gas", "tx"):
            lt.add_column(col)
        for l in st["legs"]:
            lt.add_row(str(l["leg_seq"]), str(l["step"]), l["leg"], l["status"], f"{l['gas_used'] or 0:,}", (l["tx_hash"] or "")[:18])
        for t in st.get("tranches", []):
            lt.add_row("", "", f"tranche rung {t['rung'] + 1}", "ok" if t["ok"] else "FAILED",
                       f"{Decimal(t['size']).scaleb(-6):,}", f"recv {Decimal(t['received']).scaleb(-6):,}")
        s = st.get("stats") or {}
        if s.get("attempted"):
            lt.caption = f"tranches {s['succeeded']}/{s['attempted']} ok, Wilson lower bound {s['wilson_lower']}"
        panels.append(lt)
    else:
        panels.append("[yellow]no record for this deal[/] (rebuild it: --rebuild DEAL_ID --vault ADDR)")
    panels.append(rt)
    console.print(Columns(panels))
    console.print(snap["loss_budget"], highlight=False)
    if snap["flags"]:
        for f in snap["flags"]:
            color = "red" if f["severity"] == "critical" else "yellow"
            console.print(f"[{color}]FLAG {f['code']}[/]: {f['message']}", highlight=False)
    else:
        console.print("[green]no flags[/]")


@click.command(help=__doc__)
@click.argument("deal_id", required=False)
@click.option("--rebuild", "rebuild_id", default=None, help="rebuild this deal's record from the vault's logs (needs --vault)")
@click.option("--vault", default=None, help="the vault address (default: the record's)")
@click.option("--lens", default=None, help="the DealVaultLens to read the vault through (default: see above)")
@click.option("--deployment", "deployment", default=None, type=click.Path(dir_okay=False), help="the vault's deployment record (its lens)")
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False), help="network config (venues.lens)")
@click.option("--watch", "watch", default=None, type=int, help="re-read every N seconds")
@click.option("--once", is_flag=True, help="read once; exit 1 if any flag is raised (cron)")
@click.option("--rpc", default=None, help="RPC URL (web3) instead of an ape network")
@click.option("--network", "network_choice", default=None, help="ape network choice (ecosystem:network:provider)")
@click.option("--db", "db_url", default=None, help="deal record URL (default DATABASE_URL or .dealvault/deals.db)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output on stdout")
@click.option("--margin-bps", default=200, show_default=True, type=int, help="flag LTV within this many bps of the cap")
@click.option("--min-hf", default="1.5", show_default=True, help="flag a health factor below this")
@click.option("--oracle-margin-bps", default=2000, show_default=True, type=int, help="flag an oracle older than (1 - this) x max age")
@click.option("--interest-share-bps", default=5000, show_default=True, type=int,
              help="flag accrued interest >= this share of the expected discount profit")
@click.option("--loss-margin-bps", default=2000, show_default=True, type=int,
              help="flag an operator loss at (1 - this) x the loss budget or more")
@click.option("--from-block", default=None, type=int, help="first block of the vault's logs (default: its first recorded leg, else 0)")
@click.option("--iterations", default=None, type=int, hidden=True, help="--watch: stop after N reads (tests)")
def cli(deal_id, rebuild_id, vault, lens, deployment, config_path, watch, once, rpc, network_choice, db_url, as_json, margin_bps,
        min_hf, oracle_margin_bps, interest_share_bps, loss_margin_bps, from_block, iterations):
    sys.exit(main(deal_id, rebuild_id, vault, watch, once, rpc, network_choice, db_url, as_json, margin_bps, min_hf,
                  oracle_margin_bps, interest_share_bps, from_block, iterations, lens=lens, deployment=deployment,
                  config_path=config_path, loss_margin_bps=loss_margin_bps))


def _lens_from_files(deployment, config_path):
    """The lens of a deployment record, else of a network config (default Chain 138's, if it names one)."""
    from dealvault.deploy import load_record
    from dealvault.spec.netconfig import CHAIN138_CONFIG, load_netconfig

    if deployment is not None:
        rec = load_record(deployment)
        lens = (rec.get("lens") or {}).get("address")
        if not lens:
            raise ValueError(f"--deployment {deployment}: the record names no lens (a DealVault v1 record?)")
        return lens
    if config_path is not None:
        return load_netconfig(config_path).venues.lens
    try:
        return load_netconfig(CHAIN138_CONFIG).venues.lens
    except Exception:  # noqa: BLE001 - the default config is optional here
        return None


def main(deal_id, rebuild_id, vault, watch, once, rpc, network_choice, db_url, as_json, margin_bps, min_hf, oracle_margin_bps,
         interest_share_bps, from_block, iterations, *, lens=None, deployment=None, config_path=None, loss_margin_bps=2000) -> int:
    from rich.console import Console

    from dealvault.cli import connect
    from dealvault.run import ChainError, InputError, _rpc_guard
    from dealvault.record import RecordError, open_record
    from dealvault.run.report import jsonable

    err = Console(stderr=True)
    out = Console()

    def fail(msg, code=EXIT_INPUT):
        err.print(f"[red]error:[/] {msg}", highlight=False)
        if as_json:
            click.echo(json.dumps({"status": "error", "exit_code": code, "message": msg}))
        return code

    # ---- input
    if rebuild_id and deal_id and rebuild_id != deal_id:
        return fail(f"DEAL_ID {deal_id!r} and --rebuild {rebuild_id!r} differ")
    deal_id = deal_id or rebuild_id
    if rebuild_id and not vault:
        return fail("--rebuild needs --vault ADDR (the record is lost: the vault's address is all there is)")
    if watch is not None and watch <= 0:
        return fail(f"--watch {watch}: must be > 0 seconds")
    for name, v in (("--margin-bps", margin_bps), ("--oracle-margin-bps", oracle_margin_bps), ("--interest-share-bps", interest_share_bps),
                    ("--loss-margin-bps", loss_margin_bps)):
        if not 0 <= v <= 10_000:
            return fail(f"{name} {v}: allowed 0..10000")
    try:
        min_hf_d = Decimal(str(min_hf))
        if not min_hf_d.is_finite() or min_hf_d < 0:
            raise ValueError
    except Exception:  # noqa: BLE001
        return fail(f"--min-hf {min_hf!r}: a non-negative number")
    if vault is not None:
        from eth_utils import is_address, to_checksum_address

        if not is_address(vault):
            return fail(f"--vault {vault!r} is not an address")
        vault = to_checksum_address(vault)
    if not deal_id and not vault:
        return fail("give DEAL_ID (its vault comes from the record) or --vault ADDR")
    if lens is not None:
        from eth_utils import is_address, to_checksum_address

        if not is_address(lens):
            return fail(f"--lens {lens!r} is not an address")
        lens = to_checksum_address(lens)
    try:
        file_lens = _lens_from_files(deployment, config_path)
    except Exception as exc:  # noqa: BLE001 - RecordError, ConfigError, ValueError: bad input
        return fail(str(exc))
    try:
        provider_ctx = connect(rpc, network_choice)
    except InputError as exc:
        return fail(str(exc))

    try:
        record = open_record(db_url) if (deal_id or db_url) else None
    except Exception as exc:  # noqa: BLE001
        return fail(f"deal record: {exc}", 1)
    try:
        with provider_ctx as w3:
            if rebuild_id:
                from dealvault.run.status import rebuild_record

                with record.lock(rebuild_id), _rpc_guard("rebuild"):
                    try:
                        res = rebuild_record(w3, vault, record, rebuild_id, from_block=from_block or 0, lens=lens or file_lens)
                    except (ValueError, RecordError) as exc:
                        return fail(str(exc))
                err.print(f"rebuilt deal {rebuild_id} from the logs of {res.vault}: {len(res.added)} leg(s) added "
                          f"(legSeq {res.added}), {len(res.skipped)} already recorded, {res.tranches_added} tranche(s); "
                          f"status {res.status}", highlight=False)
            if deal_id and vault is None:
                d = record.get_deal(deal_id)
                if d is None:
                    return fail(f"unknown deal {deal_id!r} in the record {record.url!r}: give --vault, or --rebuild {deal_id} --vault ADDR")
                if not d.vault_address:
                    return fail(f"deal {deal_id} has no vault address in the record: give --vault")
                vault = d.vault_address
            deal_lens = None
            if record is not None and deal_id and record.get_deal(deal_id) is not None:
                deal_lens = record.get_deal(deal_id).lens_address
            lens = lens or (file_lens if deployment is not None else None) or deal_lens or file_lens
            if lens is None:
                return fail(f"no DealVaultLens known for the vault {vault}: give --lens ADDR, --deployment RECORD or --config "
                            "(a network config with venues.lens)")
            fb = from_block
            if fb is None:
                blocks = [l.block_number for l in record.legs(deal_id)] if (record is not None and deal_id and record.get_deal(deal_id)) else []
                blocks = [b for b in blocks if b is not None]
                fb = min(blocks) if blocks else 0
            n = 0
            code = EXIT_OK
            while True:
                with _rpc_guard("deal status"):
                    snap = snapshot(w3, vault, record, deal_id, margin_bps=margin_bps, min_hf=min_hf_d,
                                    oracle_margin_bps=oracle_margin_bps, interest_share_bps=interest_share_bps, from_block=fb,
                                    lens=lens, loss_margin_bps=loss_margin_bps)
                n += 1
                if as_json:
                    click.echo(json.dumps(jsonable({**snap["status"], "flags": snap["flags"], "params": snap["params"],
                                                    "loss_budget": snap["loss_budget"], "block": snap["block"],
                                                    "timestamp": snap["timestamp"]})))
                else:
                    render(snap, out)
                code = EXIT_FLAGGED if (once and snap["flags"]) else EXIT_OK
                if watch is None or once or (iterations is not None and n >= iterations):
                    break
                time.sleep(watch)
            return code
    except ChainError as exc:
        return fail(str(exc), EXIT_CHAIN)
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        if record is not None:
            record.close()
