"""Where a deal's state lives while it runs: :class:`DealRun`, and :func:`run_deal`, which checks
the network, the vault and the spec (nothing sent on bad input), finishes the legs a previous
process left pending, runs the steps (:mod:`dealvault.run.steps`) and builds the
:class:`DealReport`.

DealRun holds the run's one reading of the vault (``lens.riskView`` + ``lens.params`` [+ the
pair's TWAP], one round trip through :class:`~dealvault.vault.VaultClient`): it is read again
after every leg (the risk view after it) and whenever the clock moves; a step reuses it while it is
younger than :data:`READING_TTL`, so the steps between two legs cost no extra reads.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from web3 import Web3

from dealvault.errors import ExitCode
from dealvault.jsonable import jsonable
from dealvault.record import DealLocked, Record, host_vault_lock, open_record, vault_lock_name
from dealvault.run.caps import DEAL_LEGS, Caps, require
from dealvault.run.chain import (
    NetworkIdentity,
    RpcFailure,
    batch,
    cache_chain_id,
    check_network,
    eth_call,
    genesis_hash,
    latest_timestamp,
    rpc_guard,
)
from dealvault.run.errors import InputError, OwnerActionNeeded, WaitNeeded
from dealvault.run.history import LegHistory
from dealvault.run.pool import decode_reserves, pool_problems, reserve_call
from dealvault.run.sender import LegResult, LegSender
from dealvault.run.steps import STEP_ORDER, STEPS, Holding, parse_until
from dealvault.run.twap import twap_ready
from dealvault.run.venues import Venues, lens_for, read_risk
from dealvault.signer import ImpersonatingSender
from dealvault.spec import DealSpec, check_against_vault
from dealvault.vault import Leg, Phase, Reading, RiskView, VaultClient

__all__ = [
    "DealRun", "DealReport", "run_deal", "run_leg", "read_status", "build_report", "HOLDING_OPTIONS", "DEFAULT_MAX_WAIT",
    "READING_TTL",
]

log = logging.getLogger("dealvault.run")

DEFAULT_MAX_WAIT = 3_600  # seconds the run waits for the TWAP observation on a real network
READING_TTL = 1.0  # seconds a reading of the vault serves the steps before it is read again

HOLDING_OPTIONS = (
    "the vault is in HOLDING (a redemption tranche failed). Safe options:\n"
    "  1. owner resume (`ape run owner_tx resume`), then `ape run execute_deal --resume {deal}` to retry the ladder from rung 1;\n"
    "  2. sell USDTz on the router above the floor (risk-reducing, allowed in HOLDING);\n"
    "  3. deleverage (sell collateral to repay debt, the LTV may not rise);\n"
    "  4. owner repay with the owner's own stablecoin (`ape run owner_tx owner-repay STABLE AMOUNT`);\n"
    "  5. repay and close with the remaining USDTz written off at cost (`--resume {deal}` runs step 4 once debt can be repaid);\n"
    "  6. all of 2-5 in one command: `ape run execute_deal --unwind {deal}` (it writes the owner's batch where one is needed)."
)

_GET_AMOUNTS_OUT = keccak(text="getAmountsOut(uint256,address[])")[:4]  # UniswapV2Router02


@dataclass
class DealReport:
    deal_id: str
    status: str                    # completed | holding | stopped | owner-action | waiting | dry-run
    exit_code: int
    message: str
    vault: str
    network: str
    chain_id: int
    legs: list[LegResult]          # legs sent (or simulated) by this run
    all_legs: list[dict[str, Any]]  # the record's legs of the deal (audit trail)
    risk: dict[str, Any]           # the vault's riskView at the end (RiskView.as_dict())
    tranches: list[dict[str, Any]]
    stats: dict[str, Any]
    spec: DealSpec | None = None
    dry_run: bool = False
    seconds: float = 0.0
    eth_price: int = 0             # 8 dp, at the end

    def to_json(self) -> dict[str, Any]:
        from dealvault.run.report import report_json

        return report_json(self)


class DealRun:
    """One run of one deal (held under the deal's lock): its vault reading, its leg sender, the
    legs it sent. Use :func:`run_deal`."""

    def __init__(
        self,
        spec: DealSpec,
        *,
        w3: Web3,
        operator: Any,
        owner: Any = None,
        record: Record,
        venues: Venues,
        dry_run: bool = False,
        console: Any = None,
        on_leg: Callable[[LegResult], None] | None = None,
        receipt_timeout: float = 120.0,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> None:
        if not venues.lens:
            raise InputError(f"vault {venues.vault}: no DealVaultLens to read it through: the deployment record (lens.address) "
                             "or the network config (venues.lens) must name one; `ape run deploy` deploys and records one")
        self.spec = spec
        self.w3 = w3
        self.operator = operator
        self.owner = owner
        self.record = record
        self.venues = venues
        self.dry = dry_run
        self.console = console
        self.on_leg = on_leg
        self.max_wait = max_wait
        self.stable = venues.stable(spec)
        self.client = VaultClient(w3, venues.vault, venues.lens)
        self.legs: list[LegResult] = []
        cache_chain_id(w3)
        with rpc_guard("eth_chainId"):
            self.chain_id = int(w3.eth.chain_id)
        self.sender = LegSender(w3=w3, client=self.client, record=record, spec=spec, chain_id=self.chain_id,
                                read_after=self._read_after, on_confirmed=self._confirmed, say=self.say, console=console,
                                receipt_timeout=receipt_timeout, before_rebroadcast=self._ready_for,
                                signer_for=self._signer_for)
        self._reading: Reading | None = None
        self._read_at = 0.0
        self._history: LegHistory | None = None

    def _signer_for(self, address: str) -> Any:
        """The signer this run holds for ``address`` (the operator, the owner on a local chain),
        for a recorded leg's replacement or cancel; None for none (or a dry run's fork)."""
        for s in (self.operator, self.owner):
            if s is not None and hasattr(s, "sign") and str(s.address).lower() == address.lower():
                return s
        return None

    # ---- the vault's state

    def reading(self, *, twap: bool = False) -> Reading:
        """riskView + params (+ the deal's pair's TWAP): the last reading if it is younger than
        READING_TTL (and has the TWAP if asked), else a new one (one round trip)."""
        r = self._reading
        if r is not None and time.monotonic() - self._read_at <= READING_TTL and (not twap or self.stable in r.twaps):
            return r
        with rpc_guard("riskView"):
            r = self.client.read(twap=[self.stable] if twap else ())
        self._reading, self._read_at = r, time.monotonic()
        return r

    def invalidate(self) -> None:
        """The chain moved (a leg, a block, the clock): the next reading is a new one."""
        self._reading = None

    def risk(self) -> RiskView:
        return self.reading().risk

    def caps(self) -> Caps:
        """The vault's parameters now, each tightened by the spec."""
        return Caps.of(self.reading().params, self.spec)

    def history(self) -> LegHistory:
        """The vault's completed legs and the USDTz bought (its logs, read once per run)."""
        if self._history is None:
            self._history = LegHistory.read(self.w3, self.client, self.venues.deploy_block)
        return self._history

    def stable_books(self, stable: str) -> int:
        """``lens.stableOf``: the vault's books of ``stable``."""
        with rpc_guard("stableOf"):
            return int(self.client.lens.functions.stableOf(self.venues.vault, stable).call())

    def quote(self, amount_in: int, path: list[str]) -> int:
        """The router's ``getAmountsOut`` for ``amount_in`` along ``path`` (the last amount)."""
        return self.quotes([amount_in], path)[0]

    def quotes(self, amounts: Sequence[int], path: list[str]) -> list[int]:
        """:meth:`quote` for each of ``amounts``, in one JSON-RPC batch (one round trip). A quote
        the router refuses raises its revert, as a single call would."""
        calls = [eth_call(self.venues.router, _GET_AMOUNTS_OUT + abi_encode(["uint256", "address[]"], [int(a), path]))
                 for a in amounts]
        with rpc_guard("getAmountsOut"):
            answers = batch(self.w3, calls)
        out = []
        for ans in answers:
            if isinstance(ans, RpcFailure):
                raise ans.exception()
            out.append(int(abi_decode(["uint256[]"], bytes.fromhex(str(ans)[2:]))[0][-1]))
        return out

    def block_time(self) -> int:
        with rpc_guard("eth_getBlockByNumber"):
            return latest_timestamp(self.w3)

    def say(self, msg: str) -> None:
        log.info(msg)
        if self.console is not None:
            self.console.print(msg)

    # ---- legs

    def send(self, step: int, leg: str, fn_args: Sequence[Any], args: dict[str, Any], *, rv: RiskView,
             sender: Any = None, value: int = 0) -> LegResult:
        """Send the vault function ``leg`` (default: as the operator); see :class:`LegSender`."""
        self.invalidate()
        return self.sender.send(step, leg, tuple(fn_args), args, sender=sender or self.operator, risk_before=rv, value=value)

    def _read_after(self) -> RiskView:
        self.invalidate()
        return self.risk()

    def _confirmed(self, res: LegResult) -> None:
        self.legs.append(res)
        if self._history is not None:
            self._history.add(res.events)
        if self.on_leg:
            self.on_leg(res)

    def _ready_for(self, leg: str, stable: str) -> None:
        twap_ready(self, to_checksum_address(stable), leg)


# --------------------------------------------------------------------------------------------
# the run


def _check_lens(run: DealRun, ident: NetworkIdentity, vault_code: bytes, lens_code: bytes) -> None:
    """The vault and the lens have code, and the lens's is the recorded (or this build's) DealVaultLens."""
    venues = run.venues
    if not vault_code:
        raise InputError(f"vault {venues.vault}: no contract at this address on chain {ident.chain_id}")
    if not lens_code:
        raise InputError(f"lens {venues.lens}: no contract at this address on chain {ident.chain_id} (the deployment record's "
                         "lens.address or the network config's venues.lens); nothing sent")
    got = "0x" + keccak(lens_code).hex()
    if venues.lens_code_hash:
        want, what = venues.lens_code_hash.lower(), "the deployment record's"
    else:
        from dealvault.artifacts import own

        want = "0x" + keccak(bytes.fromhex(own("DealVaultLens").deployed_bytecode.removeprefix("0x"))).hex()
        what = "the DealVaultLens build's"
    if got != want:
        raise InputError(f"lens {venues.lens}: its code hashes to {got}, not {what} {want}: its views cannot be trusted; "
                         "nothing sent")


def _first_read(run: DealRun) -> tuple[bytes, bytes, str, str, list[Any]]:
    """One round trip: the vault's and the lens's code, the vault's operator and owner, and the
    pool's reserve data of the deal's wrapper and stablecoin (decoded only if the pool is checked)."""
    venues = run.venues
    vault, lens = to_checksum_address(venues.vault), to_checksum_address(str(venues.lens))
    calls: list[tuple[str, list[Any]]] = [
        ("eth_getCode", [vault, "latest"]), ("eth_getCode", [lens, "latest"]),
        eth_call(vault, keccak(text="operator()")[:4]), eth_call(vault, keccak(text="owner()")[:4]),
        reserve_call(venues.pool, venues.wrapper(run.spec)), reserve_call(venues.pool, run.stable)]
    with rpc_guard("eth_getCode"):
        out = batch(run.w3, calls)
    codes = [bytes.fromhex(str(x)[2:]) if isinstance(x, str) else b"" for x in out[:2]]

    def address(x: Any) -> str:
        return to_checksum_address("0x" + str(x)[-40:]) if isinstance(x, str) and len(str(x)) >= 42 else "(none)"

    return codes[0], codes[1], address(out[2]), address(out[3]), list(out[4:])


def _check_pool(run: DealRun, rv: RiskView, reserve_answers: list[Any]) -> None:
    """The Aave pool's limits for the position step ahead (:mod:`dealvault.run.pool`): InputError
    naming each limit and its numbers, nothing sent."""
    spec, venues = run.spec, run.venues
    supply = rv.workingEth if rv.phase == Phase.SPLIT else spec.bucket_wei()["working"]
    wrapper = venues.wrapper(spec)
    try:
        reserves = decode_reserves([wrapper, run.stable], reserve_answers)
    except ValueError as exc:
        raise InputError(f"the Aave pool {venues.pool}: {exc}; nothing sent") from None
    problems, notes = pool_problems(run.w3, venues.pool, wrapper=wrapper, wrapper_name=spec.wrapper,
                                    stable=run.stable, stable_name=venues.stable_name(run.stable), supply_wei=supply,
                                    eth_price_e8=rv.ethPrice, target_ltv_bps=run.caps().target_ltv_bps, reserves=reserves)
    for note in notes:
        run.say(f"pool: {note}")
    if problems:
        raise InputError("the Aave pool cannot take this deal's position, nothing sent:\n  - " + "\n  - ".join(problems))


def _preflight(run: DealRun, *, resume: bool, mainnet_genesis: str | None) -> None:
    """Network, vault, lens, roles, the spec against the vault's parameters, the vault's phase:
    InputError (nothing sent) on any mismatch; then the deal is in the record."""
    spec, venues = run.spec, run.venues
    existing = run.record.get_deal(spec.deal_id)
    ident = check_network(run.w3, spec, mainnet_genesis=mainnet_genesis,
                          recorded_genesis=existing.genesis_hash if existing is not None else None,
                          deployed_genesis=venues.genesis_hash)
    vault_code, lens_code, onchain_op, onchain_owner, reserve_answers = _first_read(run)
    _check_lens(run, ident, vault_code, lens_code)
    if onchain_op != run.operator.address:
        raise InputError(f"account: {run.operator.address} is not the vault's operator ({onchain_op}); nothing sent")
    if run.owner is not None and onchain_owner != run.owner.address:
        raise InputError(f"owner account {run.owner.address} is not the vault's owner ({onchain_owner}); nothing sent")
    reading = run.reading()
    problems = check_against_vault(spec, reading.params)
    if problems:
        raise InputError("the spec is looser than the vault (the vault's parameters rule), nothing sent:\n  - " + "\n  - ".join(problems))
    rv = reading.risk
    if existing is not None and existing.vault_address and to_checksum_address(existing.vault_address) != venues.vault:
        raise InputError(f"deal {spec.deal_id} is recorded with vault {existing.vault_address}, not {venues.vault}")
    confirmed = [leg for leg in run.record.legs(spec.deal_id) if leg.status == "confirmed"] if existing is not None else []
    if not resume:
        if confirmed:
            raise InputError(f"deal {spec.deal_id} already has {len(confirmed)} confirmed legs in the record: continue it with --resume {spec.deal_id}")
        if rv.phase != Phase.FUNDED or (rv.legSeq > 0 and run.history().any_but(Leg.Fund)):
            raise InputError(f"vault {venues.vault} is in phase {rv.phase.name} (legSeq {rv.legSeq}): a new deal needs a vault in FUNDED "
                             f"with no leg run; to continue a deal use --resume {spec.deal_id}; nothing sent")
    elif existing is None and rv.legSeq > 0:
        log.warning("resume without a record: rebuilding from the chain (the vault's logs rule)")
    if rv.phase in (Phase.FUNDED, Phase.SPLIT) and run.history().done(Leg.Supply) == 0:
        _check_pool(run, rv, reserve_answers)
    run.record.create_deal(spec, chain_id=ident.chain_id, genesis_hash=ident.genesis_hash, vault_address=venues.vault,
                           lens_address=venues.lens, exist_ok=True)
    if existing is not None and existing.vault_address is None:
        run.record.update_deal(spec.deal_id, vault_address=venues.vault)
    if existing is not None and existing.lens_address != venues.lens:  # any DealVaultLens serves any vault
        run.record.update_deal(spec.deal_id, lens_address=venues.lens)


def run_deal(
    spec: DealSpec,
    *,
    w3: Web3,
    operator: Any,
    owner: Any = None,
    record: Record | None = None,
    venues: Venues,
    until: Any = None,
    dry_run: bool = False,
    resume: bool = False,
    console: Any = None,
    on_leg: Callable[[LegResult], None] | None = None,
    mainnet_genesis: str | None = None,
    lock_timeout: float = 0.0,
    max_wait: float = DEFAULT_MAX_WAIT,
    node_url: str | None = None,
    unwind: bool = False,
) -> DealReport:
    """Run ``spec`` from step 0 to step 4 (or ``until``). Raises :class:`DealError` subclasses for
    bad input (``exit_code`` 2, nothing sent), refused legs, owner actions, chain failures; returns
    a :class:`DealReport` (``status`` completed / holding / stopped / dry-run, ``exit_code``).

    ``operator`` / ``owner``: :mod:`dealvault.signer` signers (owner only on local chains, for
    funding). ``record``: the deal record (default: :func:`dealvault.record.open_record`).
    ``dry_run``: everything on a throw-away anvil fork of ``w3``'s node, with a temporary record;
    nothing is sent to ``w3`` and the real record is not touched. ``max_wait``: seconds to wait
    on a real network for the buy's TWAP observation (longer: exit 4, resumable). ``node_url``: the
    node's HTTP URL for the dry run's fork (default: ``w3``'s provider's). ``unwind``: instead of
    the steps, take the deal to CLOSED from whatever state it is in (:mod:`dealvault.run.unwind`;
    implies ``resume``)."""
    t0 = time.perf_counter()
    last = parse_until(until)
    if unwind and last is not None:
        raise InputError("--unwind runs to CLOSED: not with --until")
    resume = resume or unwind
    if record is None:
        record = open_record()
    # any RPC failure not caught closer to its call (connection refused, timeout) is a ChainError (exit 5)
    with rpc_guard(f"deal {spec.deal_id}"):
        if dry_run:
            return _dry_run(spec, w3=w3, operator=operator, owner=owner, venues=venues, last=last, resume=resume,
                            console=console, on_leg=on_leg, mainnet_genesis=mainnet_genesis, t0=t0, node_url=node_url,
                            unwind=unwind)
        run = DealRun(spec, w3=w3, operator=operator, owner=owner, record=record, venues=venues, console=console, on_leg=on_leg,
                      max_wait=max_wait)
        try:
            with record.lock(spec.deal_id, timeout=lock_timeout), \
                    record.lock(vault_lock_name(run.chain_id, run.venues.vault), timeout=lock_timeout), \
                    host_vault_lock(run.chain_id, run.venues.vault, timeout=lock_timeout):
                return _drive(run, last=last, resume=resume, mainnet_genesis=mainnet_genesis, t0=t0, unwind=unwind)
        except DealLocked as exc:
            raise InputError(str(exc)) from exc


def _drive(run: DealRun, *, last: int | None, resume: bool, mainnet_genesis: str | None, t0: float, dry: bool = False,
           unwind: bool = False) -> DealReport:
    from dealvault.run.unwind import unwind as unwind_step

    spec = run.spec
    _preflight(run, resume=resume, mainnet_genesis=mainnet_genesis)
    run.sender.reconcile_pending()
    status, code, message = "completed", int(ExitCode.OK), f"deal {'unwound' if unwind else 'completed'}: the vault is CLOSED"
    steps = (unwind_step,) if unwind else STEP_ORDER
    try:
        for n, step in enumerate(steps):
            if last is not None and n > last:
                status, message = "stopped", f"stopped after step {last} ({STEPS[last]}) as asked (--until); continue with --resume {spec.deal_id}"
                break
            step(run)
    except Holding:
        status, code = "holding", int(ExitCode.HOLDING)
        message = HOLDING_OPTIONS.format(deal=spec.deal_id)
    except OwnerActionNeeded as exc:
        status, code, message = ("waiting" if isinstance(exc, WaitNeeded) else "owner-action"), int(exc.exit_code), str(exc)
    if status == "completed" and run.risk().phase != Phase.CLOSED:
        status, message = "stopped", "steps done but the vault is not CLOSED"
    if dry:
        status = "dry-run" if status == "completed" else f"dry-run ({status})"
        message = "dry run on a throw-away fork: nothing was sent. " + message
    run.record.set_status(spec.deal_id, status)
    return build_report(run, status=status, exit_code=code, message=message, seconds=time.perf_counter() - t0, dry=dry)


def build_report(run: DealRun, *, status: str, exit_code: int, message: str, seconds: float, dry: bool = False) -> DealReport:
    """The run's :class:`DealReport`: the vault's risk view now, the record's legs and tranches."""

    rv = run.risk()
    deal_id = run.spec.deal_id
    stats = run.record.tranche_stats(deal_id)
    leg_keys = ("id", "leg_seq", "step", "leg", "status", "tx_hash", "nonce", "sender", "block_number", "gas_used",
                "effective_gas_price", "error")
    return DealReport(
        deal_id=deal_id, status=status, exit_code=exit_code, message=message, vault=run.venues.vault,
        network=run.spec.network.name, chain_id=run.chain_id, legs=list(run.legs),
        all_legs=[jsonable({k: getattr(leg, k) for k in leg_keys}) for leg in run.record.legs(deal_id)],
        risk=rv.as_dict(), tranches=[t.to_json() for t in run.record.tranches(deal_id)], stats=stats.to_json(),
        spec=run.spec, dry_run=dry, seconds=seconds, eth_price=rv.ethPrice,
    )


def _dry_run(spec: DealSpec, *, w3: Web3, operator: Any, owner: Any, venues: Venues, last: int | None, resume: bool,
             console: Any, on_leg: Any, mainnet_genesis: str | None, t0: float, node_url: str | None = None,
             unwind: bool = False) -> DealReport:
    from dealvault.kit.anvil import start_anvil

    # identity against the real node first (a dry run for the wrong chain is refused too)
    check_network(w3, spec, mainnet_genesis=mainnet_genesis, deployed_genesis=venues.genesis_hash)
    url = node_url or getattr(w3.provider, "endpoint_uri", None)
    if not url:
        raise InputError("dry run: the node's RPC URL is unknown (needed to fork it)")
    with tempfile.TemporaryDirectory(prefix="dealvault-dry-") as tmp:
        node = start_anvil(chain_id=spec.network.chain_id, fork_url=str(url))
        try:
            fw3 = node.web3()
            rec = open_record(f"sqlite:///{tmp}/dry.db")
            try:
                op = ImpersonatingSender(fw3, operator.address)
                # the owner's funding is simulated too (impersonated on the fork, given the ETH if short)
                owner_addr = owner.address if owner is not None else VaultClient(fw3, venues.vault, lens_for(venues.vault, venues.lens)) \
                    .contract.functions.owner().call()
                ow = ImpersonatingSender(fw3, owner_addr)
                if int(fw3.eth.get_balance(ow.address)) < spec.capital_wei + 10**18:
                    from dealvault.kit.evm import set_balance

                    set_balance(fw3, ow.address, spec.capital_wei + 10**18)
                run = DealRun(spec, w3=fw3, operator=op, owner=ow, record=rec, venues=venues, dry_run=True, console=console,
                              on_leg=on_leg)
                return _drive(run, last=last, resume=resume, mainnet_genesis=mainnet_genesis, t0=t0, dry=True, unwind=unwind)
            finally:
                rec.close()
        finally:
            node.stop()


def run_leg(spec: DealSpec, leg: str, *, w3: Web3, sender: Any, record: Record, venues: Venues, args: Sequence[Any] = (),
            value: int = 0, step: int = -1) -> LegResult:
    """Run one vault function as a recorded leg (``leg`` = the function name, e.g. ``"repay"``),
    with the same simulate / sign / persist / broadcast / LegCompleted checks as a deal run."""
    run = DealRun(spec, w3=w3, operator=sender, record=record, venues=venues)
    with record.lock(spec.deal_id), record.lock(vault_lock_name(run.chain_id, venues.vault)), \
            host_vault_lock(run.chain_id, venues.vault), rpc_guard(f"{leg} leg"):
        record.create_deal(spec, chain_id=run.chain_id, genesis_hash=genesis_hash(w3), vault_address=venues.vault,
                           lens_address=venues.lens, exist_ok=True)
        rv = run.risk()
        if leg in DEAL_LEGS:
            require(leg, rv)
        return run.send(step, leg, args, {"args": [str(a) for a in args]}, rv=rv, sender=sender, value=value)


def read_status(w3: Web3, vault: str, record: Record | None = None, deal_id: str | None = None, *,
                lens: str | None = None) -> dict[str, Any]:
    """The record (deal, legs, tranches, stats) and the live risk view (``lens.riskView``) side by
    side. ``lens``: default the deal record's lens, else the one registered for the vault."""

    deal = record.get_deal(deal_id) if (record is not None and deal_id is not None) else None
    lens = lens or (deal.lens_address if deal is not None else None)
    out: dict[str, Any] = {"vault": to_checksum_address(vault), "lens": lens_for(vault, lens),
                           "risk": jsonable(read_risk(w3, vault, lens=lens))}
    if deal is not None and record is not None and deal_id is not None:
        st = record.tranche_stats(deal_id)
        out["deal"] = jsonable({k: getattr(deal, k) for k in ("id", "network", "chain_id", "genesis_hash", "vault_address",
                                                              "lens_address", "status")})
        out["legs"] = [jsonable({k: getattr(leg, k) for k in ("leg_seq", "step", "leg", "status", "tx_hash", "nonce", "gas_used",
                                                              "error")})
                       for leg in record.legs(deal_id)]
        out["tranches"] = [t.to_json() for t in record.tranches(deal_id)]
        out["stats"] = st.to_json()
    return out
