"""``ape run guard`` as a library call: :func:`guard` (the script is a thin wrapper)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import keccak, to_checksum_address

from dealvault.errors import DealVaultError, ExitCode, InputError
from dealvault.guard.lease import Leases
from dealvault.guard.loop import Guard, Keys, Watched
from dealvault.guard.model import Target

__all__ = ["GuardOptions", "guard", "load_watched"]

_OPERATOR = "0x" + keccak(text="operator()")[:4].hex()


@dataclass
class GuardOptions:
    deals: Sequence[Path]
    provider: Any = None
    rpc: str | None = None
    rpc_timeout: float = 30.0
    account: str | None = None  # the operator's ape account: the risk-reducing legs
    guardian_account: str | None = None  # the guardian's: hold
    config: Path | None = None
    deployments_dir: Path | None = None  # where the deployment records are (default deployments/)
    db: str | None = None
    dry_run: bool = False
    once: bool = False
    interval: float = 12.0
    stall_polls: int = 3
    polls: int | None = None  # stop after N polls (tests)
    metrics_port: int | None = None  # serve Prometheus metrics on this port (dealvault.observe.metrics)
    metrics_host: str = "127.0.0.1"
    notify: Sequence[str] = ()  # apprise URLs (plus DEALVAULT_NOTIFY): one message per decision or new problem


def _spec_files(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(x for x in p.iterdir() if x.suffix in (".yaml", ".yml"))
            if not found:
                raise InputError(f"--deals {p}: no .yaml deal specs in this directory")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"--deals {p}: no such file or directory")
    if not files:
        raise InputError("--deals: give one or more deal spec files or directories")
    return files


def load_watched(w3: Any, paths: Sequence[Path], *, config: Path | None = None, network: str | None = None,
                 deployments_dir: Path | None = None) -> list[Watched]:
    """The deals of the spec files (or directories of them) with their vaults (deployment records,
    as ``execute_deal`` finds them: ``<deployments_dir>/<network>/<deal>.json``) and each vault's
    operator (read from the vault, one batch)."""
    from dealvault.deploy import record_path
    from dealvault.run.chain import RpcFailure, batch, eth_call, rpc_guard
    from dealvault.run.venues import venues_for
    from dealvault.spec import load_spec
    from dealvault.spec.netconfig import CHAIN138_CONFIG, config_for_network, load_netconfig, local_config_path

    specs = []
    seen: dict[str, Path] = {}
    for f in _spec_files(paths):
        spec = load_spec(f)
        if spec.deal_id in seen:
            raise InputError(f"--deals: deal {spec.deal_id!r} is in both {seen[spec.deal_id]} and {f}")
        seen[spec.deal_id] = f
        cfg = config
        if cfg is None and network is not None:
            cfg = config_for_network(network)
        elif cfg is None and spec.network.local:
            cfg = local_config_path()
        deployment = None
        if deployments_dir is not None and spec.vault_address is None:
            deployment = record_path(deployments_dir, load_netconfig(cfg or CHAIN138_CONFIG).name, spec.deal_id)
        venues = venues_for(spec, deployment=deployment, config=cfg, spec_path=f)
        if venues.lens is None:
            raise InputError(f"deal {spec.deal_id}: its vault {venues.vault} has no lens recorded (deploy it with `ape run deploy`)")
        specs.append((spec, venues))
    with rpc_guard("the vaults' operators"):
        answers = batch(w3, [eth_call(v.vault, _OPERATOR) for _s, v in specs])
    out = []
    for (spec, venues), raw in zip(specs, answers):
        if isinstance(raw, RpcFailure) or not isinstance(raw, str) or len(raw) < 66:
            raise InputError(f"deal {spec.deal_id}: {venues.vault} is not a DealVault on this chain (operator() did not answer)")
        operator = to_checksum_address("0x" + raw[-40:])
        out.append(Watched(spec, venues, Target(deal_id=spec.deal_id, vault=venues.vault, lens=str(venues.lens),
                                                stable=venues.stable(spec), usdtz=venues.usdtz, desk=venues.desk,
                                                operator=operator)))
    return out


def guard(o: GuardOptions, *, say: Callable[[str], None] | None = None) -> int:
    """Run the guard; the exit code. --once: 0 all well, 1 an action failed, 5 the chain could not
    be read. Bad input: 2, nothing sent. Without --once it runs until SIGTERM/SIGINT (exit 0)."""
    from dealvault.cli import console

    err = console(stderr=True)
    out = say or (lambda line: err.print(line, highlight=False, markup=False))
    try:
        return _guard(o, out)
    except DealVaultError as exc:
        out(f"error: {exc}")
        return int(exc.exit_code)


def _guard(o: GuardOptions, say: Callable[[str], None]) -> int:
    from dealvault.accounts import unlock_for_signing
    from dealvault.cli import connect
    from dealvault.observe import hooks
    from dealvault.observe.metrics import DealMetrics
    from dealvault.observe.notify import Notifier, notify_urls
    from dealvault.record import open_record
    from dealvault.signer import ApeAccountSigner

    if o.interval <= 0:
        raise InputError(f"--interval {o.interval}: must be > 0 seconds")
    if o.metrics_port is not None and not 0 < o.metrics_port < 65536:
        raise InputError(f"--metrics-port {o.metrics_port}: not a TCP port")
    notifier = Notifier(notify_urls(o.notify), say=say)
    _spec_files(o.deals)  # bad paths before any node
    if not o.dry_run:
        for alias in (o.account, o.guardian_account):
            if alias is not None:
                unlock_for_signing(alias)
    stop = {"now": False}

    def _stop(*_: Any) -> None:
        stop["now"] = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    network = o.provider.network.name if o.provider is not None else None
    with connect(o.rpc, o.provider, timeout=o.rpc_timeout) as w3:
        watched = load_watched(w3, o.deals, config=o.config, network=network, deployments_dir=o.deployments_dir)
        keys = Keys(operator=ApeAccountSigner(o.account, w3) if o.account else None,
                    guardian=ApeAccountSigner(o.guardian_account, w3) if o.guardian_account else None)
        for w in watched:
            if keys.operator is not None and keys.operator.address != w.target.operator:
                raise InputError(f"--account {keys.operator.address} is not the operator of {w.spec.deal_id}'s vault "
                                 f"({w.target.operator}); nothing sent")
        record = open_record(o.db)
        leases = Leases(record)
        metrics = DealMetrics() if o.metrics_port is not None else None
        try:
            if metrics is not None and o.metrics_port is not None:
                try:
                    metrics.serve(o.metrics_port, o.metrics_host)
                except OSError as exc:
                    raise InputError(f"--metrics-port {o.metrics_port}: cannot listen on {o.metrics_host}: {exc}") from exc
                say(f"guard: Prometheus metrics on http://{o.metrics_host}:{o.metrics_port}/metrics")
            if notifier.targets:
                say(f"guard: notifications to {len(notifier.targets)} target(s): {', '.join(n for n, _ in notifier.targets)}")
            g = Guard(w3, watched, record=record, keys=keys, dry_run=o.dry_run, say=say, stall_polls=o.stall_polls,
                      leases=leases, on_poll=hooks(metrics.observe if metrics else None,
                                                   notifier.on_poll if notifier.targets else None))
            held = ", ".join(k for k, v in (("operator", keys.operator), ("guardian", keys.guardian)) if v) or "none: alert only"
            say(f"guard {leases.guard_id}: {len(watched)} deal(s) shared through the record's leases, every {o.interval:g} s; "
                f"keys: {held}"
                + ("; dry run: nothing is sent" if o.dry_run else ""))
            n = {"polls": 0}

            def done() -> bool:
                n["polls"] += 1
                return stop["now"] or (o.polls is not None and n["polls"] >= o.polls)

            report = g.run(interval=o.interval, once=o.once, stop=done)
        finally:
            leases.close()
            record.close()
            notifier.close()
            if metrics is not None:
                metrics.close()
    if o.once:
        if report.block is None:
            return int(ExitCode.CHAIN)
        return int(ExitCode.FAILED) if any("the action failed" in p for p in report.problems) else int(ExitCode.OK)
    sys.stderr.flush()
    return int(ExitCode.OK)
