"""The owner's actions as Safe Transaction Builder batches: written to a file, sent by nobody.

On Chain 138 the vault's owner is a Safe multisig: a batch (version "1.0": chainId, meta,
transactions [{to, value, data, contractMethod, contractInputsValues}]) is loaded in the Safe's
Transaction Builder, checked by the signers and executed there.

    from dealvault.run.owner import build_batch, prepare_batch, read_param_state, write_batch
    batch = build_batch("set", ["max-ltv-bps", "2500"], vault=VAULT)          # setParam(MaxLtvBps, 2500), NOT simulated
    batch = build_batch("set", ["max-slippage-bps", "150"], vault=VAULT,
                        state=read_param_state(w3, VAULT, LENS))              # ... says whether it is queued
    batch = prepare_batch(w3, "hold", ["+", "withdraw", "ETH", "2"], vault=VAULT, lens=LENS)  # simulated from the owner
    write_batch(batch, Path("s.json"))

:func:`prepare_batch` is what any code writing a batch for the owner calls (owner_tx does): it
reads the vault's parameters, builds the batch (several actions joined by ``+``, in that order),
simulates it in order from the vault's ``owner()`` (:mod:`dealvault.run.simulate`: eth_simulateV1,
else an anvil fork) and refuses it with :class:`BatchRefused` (exit 6) if a transaction would
revert, naming it and its decoded reason; the description carries the vault's risk view before and
after each transaction (``meta.dealvault`` the same, machine-readable). Every batch carries
``meta.checksum`` as the Safe Transaction Builder computes it (:mod:`dealvault.run.txbuilder`).

Each risk parameter is the one of :mod:`dealvault.vault.params` (its Param, unit, floor, hard
limit and which way is tighter), named on the command line by its deal-spec key with dashes
(``max-ltv-bps``). A value tighter than (or equal to) the vault's current one acts at once; a
looser one is queued for the vault's loosenDelay, at most back to the constructor's value
(CapAboveCeiling past it: refused here), and applies only when someone sends ``acceptParam``
after that delay; the owner or the guardian may ``revokeParam`` meanwhile.

Bad input raises :class:`OwnerTxError` (an :class:`~dealvault.errors.InputError`, exit code 2); a
batch the simulation refuses, :class:`BatchRefused` (exit code 6); a node or lens that does not
answer, :class:`~dealvault.errors.ChainError` (exit code 5).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from eth_abi.abi import encode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import is_address, is_checksum_address, to_checksum_address
from web3 import Web3

from dealvault.chain138 import CHAIN_ID
from dealvault.errors import ChainError, DealVaultError, ExitCode, InputError
from dealvault.run.chain import rpc_guard
from dealvault.run.simulate import METHODS, Call, simulate_calls
from dealvault.run.txbuilder import add_checksum
from dealvault.units import ETH_DECIMALS, STABLE_DECIMALS, USD_DECIMALS, amount_text, from_units, to_units
from dealvault.vault.abi import vault_abi
from dealvault.vault.client import Params, RiskView, VaultClient
from dealvault.vault.params import BY_PARAM, ParamSpec, is_tighter
from dealvault.vault.revert import decode_error
from dealvault.vault.risk import MAX_UINT

__all__ = [
    "ACTIONS", "ACTION_HELP", "BUILDER_VERSION", "CHAIN_ID", "NOT_SIMULATED", "RISK_FIELDS", "SETTABLE", "ZERO", "Batch",
    "BatchRefused", "BatchSimulation", "OwnerTxError", "ParamState", "SafeTx", "build_batch", "classify", "owner_tx",
    "param_spec", "parse_address", "parse_amount", "prepare_batch", "read_param_state", "resolve_token", "risk_text",
    "simulate_batch", "write_batch",
]

ZERO = "0x0000000000000000000000000000000000000000"
BUILDER_VERSION = "1.16.5"


class OwnerTxError(InputError, ValueError):
    """Bad input; nothing written."""



def _cli_name(spec: ParamSpec) -> str:
    return spec.key.replace("_", "-")


def _enum(spec: ParamSpec) -> tuple[int, str]:
    """The IDealVault.Param of a settable parameter: (index, name)."""
    if spec.param is None:
        raise OwnerTxError(f"{spec.name} is fixed at deployment: no owner sets it")
    return int(spec.param), spec.param.name


#: The parameters the owner sets (IDealVault.Param order), by their command-line names.
SETTABLE: dict[str, ParamSpec] = {_cli_name(BY_PARAM[p]): BY_PARAM[p] for p in sorted(BY_PARAM)}
_ALIASES: dict[str, str] = (
    {_enum(s)[1].lower(): k for k, s in SETTABLE.items()}
    | {s.name.lower(): k for k, s in SETTABLE.items()}
    | {k.replace("-", ""): k for k in SETTABLE}
)
#: DealVault v1's setters (one per parameter it had: the first eight Params) mean ``set``.
_V1_SETTERS: dict[str, str] = {f"set{s.name.lower()}": k for k, s in SETTABLE.items() if s.param is not None and s.param <= 7}
_UNIT_WORDS = {"bps": "bps", "seconds": "s", "priceE6": "stablecoin per USDTz", "usd8": "USD per ETH"}
_TOKEN_DECIMALS = {"weth9": ETH_DECIMALS, "weth10": ETH_DECIMALS, "cusdt": STABLE_DECIMALS, "cusdc": STABLE_DECIMALS,
                   "usdtz": STABLE_DECIMALS}
_NARGS = {"fund": 1, "resume": 0, "pause": 0, "unpause": 0, "hold": 0, "close": 0, "owner-repay": 2, "withdraw": 2}
_PLAIN = {"resume": "leave HOLDING, back to the phase before it",
          "pause": "block the risk-adding legs (supply, borrow, buy, withdrawCollateral with debt)",
          "unpause": "allow the risk-adding legs again", "hold": "enter HOLDING from any open phase",
          "close": "close the deal (no debt may remain): the collateral withdrawn, the PnL booked, any USDTz written off "
                   "at cost; the owner's close is not limited by the operator's loss budget"}
_RENAMED = {"tighten": "set", "setparam": "set", "set-param": "set", "acceptparam": "accept", "accept-param": "accept",
            "revokeparam": "revoke", "revoke-param": "revoke", "ownerrepay": "owner-repay", "owner_repay": "owner-repay"}

ACTIONS = ("fund", "resume", "owner-repay", "withdraw", "pause", "unpause", "hold", "close", "set", "accept", "revoke")
ACTION_HELP = ("fund AMOUNT_ETH | resume | owner-repay STABLE AMOUNT | withdraw TOKEN AMOUNT | pause | unpause | hold | close | "
               "set PARAM VALUE [PARAM VALUE ...] | accept PARAM [PARAM ...] | revoke PARAM [PARAM ...] "
               "(PARAM: " + ", ".join(SETTABLE) + "; `tighten` and the v1 setter names, e.g. setMaxLtvBps VALUE, mean set)")


class SafeTx(TypedDict):
    """One transaction of a Safe Transaction Builder batch."""

    to: str
    value: str
    data: str
    contractMethod: dict[str, Any]
    contractInputsValues: dict[str, str]


class BatchMeta(TypedDict):
    name: str
    description: str
    txBuilderVersion: str
    createdFromSafeAddress: str
    createdFromOwnerAddress: str
    checksum: NotRequired[str]
    dealvault: NotRequired[dict[str, Any]]


class Batch(TypedDict):
    """A Safe Transaction Builder batch (format version "1.0")."""

    version: str
    chainId: str
    createdAt: int
    meta: BatchMeta
    transactions: list[SafeTx]


@dataclass(frozen=True)
class ParamState:
    """The vault's parameters as the batch is written: now, at construction, and the block time."""

    current: Params
    initial: Params
    now: int | None = None


# --------------------------------------------------------------------------------------------
# parsing


def parse_address(value: str, what: str, *, allow_zero: bool = False) -> str:
    """A checksummed address; refuses a malformed one, a wrong EIP-55 checksum, the zero address."""
    v = str(value).strip()
    if not (v.startswith("0x") and len(v) == 42) or not is_address(v.lower()):
        raise OwnerTxError(f"{what}: {value!r} is not an address (0x + 40 hex digits)")
    if v != v.lower() and v[2:] != v[2:].upper() and not is_checksum_address(v):
        raise OwnerTxError(f"{what}: {value!r} has a wrong EIP-55 checksum (expected {to_checksum_address(v)})")
    if not allow_zero and int(v, 16) == 0:
        raise OwnerTxError(f"{what}: the zero address is not allowed")
    return to_checksum_address(v)


def parse_amount(value: str, decimals: int, what: str, *, allow_zero: bool = False, maximum: int | None = None) -> int:
    """Human decimal -> integer base units (exact); refuses negatives, zero, NaN, too many decimals."""
    try:
        d = Decimal(str(value).strip().replace("_", ""))
    except InvalidOperation:
        raise OwnerTxError(f"{what}: {value!r} is not a number") from None
    if not d.is_finite():
        raise OwnerTxError(f"{what}: {value!r} is not a finite number")
    if d < 0:
        raise OwnerTxError(f"{what}: {value!r} is negative; it must be > 0")
    if d == 0 and not allow_zero:
        raise OwnerTxError(f"{what}: must be > 0, got {value!r}")
    try:
        n = to_units(d, decimals)
    except ValueError:
        raise OwnerTxError(f"{what}: {value!r} has more than {decimals} decimals") from None
    if maximum is not None and n > maximum:
        raise OwnerTxError(f"{what}: {value!r} is out of range (max {_fmt(maximum, decimals)})")
    return n


def param_spec(value: str, what: str) -> tuple[str, ParamSpec]:
    """A settable parameter by any of its names (``max-ltv-bps``, ``MaxLtvBps``, ``max_ltv_bps``...)."""
    p = str(value).strip().lower().replace("_", "-")
    p = _ALIASES.get(p.replace("-", ""), p)
    if p not in SETTABLE:
        raise OwnerTxError(f"{what}: unknown parameter {value!r}; allowed: {', '.join(SETTABLE)}")
    return p, SETTABLE[p]


def _read_deployment(path: Path) -> dict[str, Any]:
    try:
        rec = json.loads(Path(path).read_text())
        if not isinstance(rec, dict):
            raise TypeError("not a JSON object")
    except (OSError, ValueError, TypeError) as exc:
        raise OwnerTxError(f"--deployment {path}: not a readable deployment record ({exc})") from None
    return rec


def _tokens(deployment: Path | None, config: Path | None) -> dict[str, tuple[str, int]]:
    """symbol (lower case) -> (address, decimals) from a deployment record or a network config."""
    if deployment is not None:
        try:
            c = _read_deployment(deployment)["constructor_args"]["decoded"]
        except (KeyError, TypeError) as exc:
            raise OwnerTxError(f"--deployment {deployment}: not a readable deployment record ({exc})") from None
        return {k: (c[k], d) for k, d in _TOKEN_DECIMALS.items() if c.get(k)}
    from dealvault.spec.netconfig import CHAIN138_CONFIG, load_netconfig

    path = config or CHAIN138_CONFIG
    try:
        net = load_netconfig(path)
    except Exception as exc:  # any unreadable config is bad input
        raise OwnerTxError(f"--config {path}: {exc}") from None
    return {k: (t.address, int(t.decimals)) for k, t in net.tokens.items() if t.address}


def resolve_token(value: str, what: str, *, deployment: Path | None, config: Path | None, decimals: int | None,
                  allow_eth: bool = False) -> tuple[str, int, str]:
    """A token by symbol (from the deployment record or the network config) or address -> (address, decimals, label)."""
    v = str(value).strip()
    if allow_eth and v.upper() == "ETH":
        return ZERO, ETH_DECIMALS, "ETH"
    if v.startswith("0x"):
        addr = parse_address(v, what)
        if decimals is not None:
            return addr, decimals, addr
        try:
            known = _tokens(deployment, config)
        except OwnerTxError:
            known = {}
        for k, (a, d) in known.items():
            if a.lower() == addr.lower():
                return addr, d, k
        raise OwnerTxError(f"{what}: {addr} is not a known token of the deployment/config: give --decimals")
    toks = _tokens(deployment, config)
    if v.lower() not in toks:
        known_words = ", ".join(sorted(toks)) or "none"
        raise OwnerTxError(f"{what}: unknown token {value!r} (known: {'ETH, ' if allow_eth else ''}{known_words}; or a 0x address)")
    addr, d = toks[v.lower()]
    return parse_address(addr, what), d, v


# --------------------------------------------------------------------------------------------
# the batch


def _tx(to: str, fn_name: str, inputs: Sequence[tuple[str, str]] = (), values: Sequence[Any] = (), *, value: int = 0,
        payable: bool = False) -> SafeTx:
    sig = f"{fn_name}({','.join(t for _n, t in inputs)})"
    data = "0x" + (function_signature_to_4byte_selector(sig) + encode([t for _n, t in inputs], list(values))).hex()
    return {
        "to": to,
        "value": str(int(value)),
        "data": data,
        "contractMethod": {"inputs": [{"internalType": t, "name": n, "type": t} for n, t in inputs], "name": fn_name,
                           "payable": payable},
        "contractInputsValues": {n: str(v) for (n, _t), v in zip(inputs, values)},
    }


def _fmt(n: int, decimals: int) -> str:
    return f"{from_units(n, decimals).normalize():f}"


def _show(spec: ParamSpec, v: int) -> str:
    return str(v) if spec.decimals is None else f"{_fmt(v, spec.decimals)} ({v})"


def classify(key: str, value: int, state: ParamState | None = None) -> tuple[str, str]:
    """("now" | "queued" | "unknown", words) for setParam(key, value) against the vault's current
    and constructor values. Raises OwnerTxError for a loosening past the constructor's value (the
    vault reverts CapAboveCeiling)."""
    spec = SETTABLE[key]
    if state is None:
        return "unknown", ("acts at once if it is tighter than (or equal to) the vault's current value; if looser it is "
                           "QUEUED for the vault's loosenDelay and needs `owner_tx accept " + key + "` after it "
                           "(pass --rpc to know which)")
    cur = int(getattr(state.current, spec.name))
    if value == cur:
        return "now", f"equal to the current value {_show(spec, cur)}: acts at once (no change; drops a queued loosening of it)"
    if is_tighter(spec.name, value, cur):
        return "now", f"tightens {_show(spec, cur)} -> {_show(spec, value)}: acts at once"
    init = int(getattr(state.initial, spec.name))
    if not is_tighter(spec.name, value, init):
        raise OwnerTxError(f"set {key}: {_show(spec, value)} is looser than the constructor's value {_show(spec, init)}: the vault "
                           "refuses it (CapAboveCeiling); a loosening may go at most back to the constructor's value")
    delay = int(state.current.loosenDelay)
    when = f" for loosenDelay {delay} s"
    if state.now is not None:
        valid = state.now + delay
        when += f" (valid from block time {valid}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(valid))})"
    enum = _enum(spec)[1]
    return "queued", (f"loosens {_show(spec, cur)} -> {_show(spec, value)}: QUEUED{when}; applies only when acceptParam({enum}) "
                      f"is sent after that (`ape run owner_tx accept {key}`; anyone may send it); the owner or the guardian "
                      "may revokeParam meanwhile")


def _normalize(action: str, args: Sequence[str]) -> tuple[str, list[str]]:
    """The action's canonical name and its arguments, aliases resolved; checks the count."""
    key, rest = str(action).strip().lower(), [str(a) for a in args]
    if key in _V1_SETTERS:
        key, rest = "set", [_V1_SETTERS[key], *rest]
    elif key.replace("_", "-") in SETTABLE:
        key, rest = "set", [key.replace("_", "-"), *rest]
    key = _RENAMED.get(key, key)
    given = f"{' '.join(rest) or 'none'}"
    if key not in _NARGS and key not in ("set", "accept", "revoke"):
        raise OwnerTxError(f"unknown action {action!r}; actions: {ACTION_HELP}")
    if key in _NARGS and len(rest) != _NARGS[key]:
        raise OwnerTxError(f"{key}: expects {_NARGS[key]} argument(s), got {len(rest)} ({given}); usage: {ACTION_HELP}")
    if key == "set" and (len(rest) < 2 or len(rest) % 2):
        raise OwnerTxError(f"set: expects PARAM VALUE pairs, got {len(rest)} argument(s) ({given}); usage: {ACTION_HELP}")
    if key in ("accept", "revoke") and not rest:
        raise OwnerTxError(f"{key}: expects at least one PARAM; usage: {ACTION_HELP}")
    return key, rest


_Built = tuple[list[SafeTx], list[str], str]  # transactions, description lines, title


def _set(vault: str, args: list[str], state: ParamState | None) -> _Built:
    txs: list[SafeTx] = []
    lines: list[str] = []
    seen: set[str] = set()
    queued: list[str] = []
    at_once: list[str] = []
    for n, (pk, pv) in enumerate(zip(args[::2], args[1::2]), 1):
        p, spec = param_spec(pk, "set")
        if p in seen:
            raise OwnerTxError(f"set: {p} is given twice")
        seen.add(p)
        v = parse_amount(pv, spec.decimals or 0, f"set {p}", allow_zero=spec.floor == 0, maximum=spec.limit)
        if v < spec.floor:
            raise OwnerTxError(f"set {p}: {pv!r} is out of range (min {spec.floor})")
        verdict, words = classify(p, v, state)
        (queued if verdict == "queued" else at_once).append(p)
        index, enum = _enum(spec)
        txs.append(_tx(vault, "setParam", [("param", "uint8"), ("value", "uint256")], [index, v]))
        lines.append(f"{n}. setParam({enum} = {index}, {v}): {p} {_show(spec, v)} {_UNIT_WORDS[spec.unit]}: {words}")
    if state is not None:
        lines.append("queued (need acceptParam after loosenDelay): " + (", ".join(queued) or "none")
                     + "; at once: " + (", ".join(at_once) or "none"))
    return txs, lines, f"DealVault: setParam x {len(txs)}" + (f" ({len(queued)} queued)" if state is not None else "")


def _accept_or_revoke(vault: str, key: str, args: list[str]) -> _Built:
    fn = "acceptParam" if key == "accept" else "revokeParam"
    txs: list[SafeTx] = []
    lines: list[str] = []
    for n, pk in enumerate(args, 1):
        p, spec = param_spec(pk, key)
        index, enum = _enum(spec)
        txs.append(_tx(vault, fn, [("param", "uint8")], [index]))
        lines.append(f"{n}. acceptParam({enum} = {index}): apply the queued loosening of {p} (reverts QueuedUntil before its "
                     "time, NothingQueued if none)" if key == "accept" else
                     f"{n}. revokeParam({enum} = {index}): drop the queued loosening of {p} (owner or guardian)")
    return txs, lines, f"DealVault: {fn} x {len(txs)}"


def _money(vault: str, key: str, args: list[str], deployment: Path | None, config: Path | None,
           decimals: int | None) -> _Built:
    """fund, owner-repay, withdraw."""
    if key == "fund":
        wei = parse_amount(args[0], ETH_DECIMALS, "fund amount (ETH)")
        eth = _fmt(wei, ETH_DECIMALS)
        return ([_tx(vault, "fund", value=wei, payable=True)],
                [f"fund(): send {eth} ETH ({wei} wei) to the vault {vault} as deal capital (FUNDED phase only)"],
                f"DealVault: fund {eth} ETH")
    if key == "owner-repay":
        stable, d, label = resolve_token(args[0], "owner-repay stable", deployment=deployment, config=config, decimals=decimals)
        amount = parse_amount(args[1], d, "owner-repay amount")
        txs = [_tx(stable, "approve", [("spender", "address"), ("amount", "uint256")], [vault, amount]),
               _tx(vault, "ownerRepay", [("stable", "address"), ("amount", "uint256")], [stable, amount])]
        return txs, [f"1. approve({vault}, {amount}): let the vault pull {_fmt(amount, d)} {label} from the Safe",
                     f"2. ownerRepay({stable}, {amount}): repay {_fmt(amount, d)} {label} of the vault's debt with the Safe's "
                     "own tokens (capped at the debt; the rest is refunded)"], f"DealVault: owner repay {_fmt(amount, d)} {label}"
    token, d, label = resolve_token(args[0], "withdraw token", deployment=deployment, config=config, decimals=decimals,
                                    allow_eth=True)
    amount = parse_amount(args[1], d, "withdraw amount")
    return ([_tx(vault, "withdraw", [("token", "address"), ("amount", "uint256")], [token, amount])],
            [f"withdraw({token}, {amount}): send {_fmt(amount, d)} {label} from the vault to the owner "
             "(before CLOSED only the surplus above the books; in HOLDING also the idle ETH buckets)"],
            f"DealVault: withdraw {_fmt(amount, d)} {label}")


@dataclass(frozen=True)
class _Draft:
    """A batch before its description is final: what simulating it needs."""

    vault: str
    chain_id: int
    safe: str
    created_ms: int
    title: str
    lines: list[str]
    transactions: list[SafeTx]


def _segments(action: str, args: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``pause + withdraw ETH 1`` -> [("pause", []), ("withdraw", ["ETH", "1"])]."""
    words = [str(action), *(str(a) for a in args)]
    out: list[tuple[str, list[str]]] = []
    cur: list[str] = []
    for w in [*words, "+"]:
        if w.strip() != "+":
            cur.append(w)
            continue
        if not cur:
            raise OwnerTxError(f"an action is missing around '+' in {' '.join(words)!r}; usage: ACTION [ARGS] [+ ACTION [ARGS] ...]")
        out.append((cur[0], cur[1:]))
        cur = []
    return out


def _draft(action: str, args: Sequence[str], *, vault: str, chain_id: int, safe: str | None, deployment: Path | None,
           config: Path | None, decimals: int | None, now_ms: int | None, state: ParamState | None) -> _Draft:
    vault = parse_address(vault, "--vault")
    safe_addr = parse_address(safe, "--safe") if safe else ""
    txs: list[SafeTx] = []
    lines: list[str] = []
    titles: list[str] = []
    for one, rest_args in _segments(action, args):
        key, rest = _normalize(one, rest_args)
        if key == "set":
            part, said, title = _set(vault, rest, state)
        elif key in ("accept", "revoke"):
            part, said, title = _accept_or_revoke(vault, key, rest)
        elif key in _PLAIN:
            part, said, title = [_tx(vault, key)], [f"{key}(): {_PLAIN[key]} (vault {vault})"], f"DealVault: {key}"
        else:
            part, said, title = _money(vault, key, rest, deployment, config, decimals)
        txs += part
        lines += said
        titles.append(title)
    title = titles[0] if len(titles) == 1 else "DealVault: " + " + ".join(t.removeprefix("DealVault: ") for t in titles)
    created = int(now_ms if now_ms is not None else time.time() * 1000)
    return _Draft(vault, int(chain_id), safe_addr, created, title, lines, txs)


#: what an unsimulated batch says (owner_tx without a node)
NOT_SIMULATED = ("NOT SIMULATED: no node was given (--rpc / --network), so nobody checked that these transactions succeed "
                 "in order from the vault's owner; simulate before signing (owner_tx with --rpc, or the Safe's own simulation).")


def _finish(d: _Draft, sim: BatchSimulation | None) -> Batch:
    lines = [*d.lines, *(sim.lines() if sim is not None else [NOT_SIMULATED])]
    meta: BatchMeta = {
        "name": d.title,
        "description": f"Owner action on DealVault {d.vault} (chain {d.chain_id}); sent by nobody: review and execute in the Safe.\n"
                       + "\n".join(lines),
        "txBuilderVersion": BUILDER_VERSION,
        "createdFromSafeAddress": d.safe,
        "createdFromOwnerAddress": "",
    }
    # The builder shows meta.description and each transaction's call, and ignores any other key:
    # its import (safe-react-apps tx-builder, store/transactionLibraryContext.tsx,
    # convertToProposedTransactions) reads only to/value/data/contractMethod/contractInputsValues
    # of a transaction, while its checksum covers the whole file. So the risk views go into the
    # description for people and, machine-readable, into meta.dealvault: covered by the checksum
    # (an edit makes the builder warn), never shown, dropped if the batch is saved again in the
    # builder. Amounts are strings there, as everywhere in a batch: JavaScript reads a JSON
    # number as a double, and its checksum would then not match.
    meta["dealvault"] = sim.record() if sim is not None else {"simulated": False}
    batch: Batch = {"version": "1.0", "chainId": str(d.chain_id), "createdAt": d.created_ms, "meta": meta,
                    "transactions": d.transactions}
    return add_checksum(batch)


def build_batch(action: str, args: Sequence[str], *, vault: str, chain_id: int = CHAIN_ID, safe: str | None = None,
                deployment: Path | None = None, config: Path | None = None, decimals: int | None = None,
                now_ms: int | None = None, state: ParamState | None = None) -> Batch:
    """The Safe Transaction Builder batch for one owner action (see ACTION_HELP), or several
    joined by ``+`` (``pause + withdraw ETH 1``: their transactions in that order), with its
    ``meta.checksum``; NOT simulated (its description says so: :func:`prepare_batch` simulates).
    Raises :class:`OwnerTxError`.

    ``state``: the vault's parameters now and at construction and the block time: with it a
    ``set`` says which entries act at once and which are queued (and until when), and refuses a
    loosening past the constructor's value; the batch's ``meta.description`` lists them."""
    return _finish(_draft(action, args, vault=vault, chain_id=chain_id, safe=safe, deployment=deployment, config=config,
                          decimals=decimals, now_ms=now_ms, state=state), None)


def read_param_state(w3: Web3, vault: str, lens: str) -> ParamState:
    """The vault's current and constructor parameters (through the lens) and the block time (nothing sent)."""
    client = VaultClient(w3, vault, lens)
    return ParamState(client.params(), client.initial_params(), int(w3.eth.get_block("latest")["timestamp"]))


class BatchRefused(DealVaultError):  # noqa: N818 - says what happened to the batch
    """The batch would revert when the owner executes it (simulated in order from the owner):
    refused, nothing written. Exit code 6 (REFUSED: "the simulation refused")."""

    exit_code = ExitCode.REFUSED


def _bps(v: int) -> str:
    return "max" if v >= MAX_UINT // 2 else f"{v} bps"


def risk_text(rv: RiskView) -> str:
    """A risk view in one line: phase (paused), LTV, exposure, NAV, debt, the ETH buckets."""
    eth = rv.coreEth + rv.workingEth + rv.opportunisticEth
    return (f"phase {rv.phase.name}{' (paused)' if rv.paused else ''}, LTV {_bps(rv.ltvBps)}, exposure {_bps(rv.exposureBps)}, "
            f"NAV ${amount_text(rv.nav, USD_DECIMALS)}, debt {amount_text(rv.debt, STABLE_DECIMALS)}, "
            f"ETH buckets {amount_text(eth, ETH_DECIMALS)}")


#: the risk view fields meta.dealvault keeps for each step (Solidity names; amounts as strings)
RISK_FIELDS = ("phase", "paused", "ltvBps", "exposureBps", "nav", "debt", "coreEth", "workingEth", "opportunisticEth",
               "collateralWeth", "stableHeld", "usdtzHeld", "healthFactor")


def _risk_record(rv: RiskView) -> dict[str, Any]:
    d = rv.as_dict()
    return {k: (d["phaseName"] if k == "phase" else d[k] if isinstance(d[k], bool) else str(d[k])) for k in RISK_FIELDS}


@dataclass(frozen=True)
class BatchSimulation:
    """A batch simulated in order from the vault's owner: the risk view before the first
    transaction and after each one."""

    owner: str
    method: str
    block: int
    seconds: float
    methods: tuple[str, ...]
    before: RiskView
    after: tuple[RiskView, ...]

    def steps(self) -> list[tuple[int, str, RiskView, RiskView]]:
        """(1-based index, method, before, after) of each transaction."""
        views = (self.before, *self.after)
        return [(i + 1, m, views[i], views[i + 1]) for i, m in enumerate(self.methods)]

    def lines(self) -> list[str]:
        head = (f"Simulated in order from the vault's owner {self.owner} ({self.method} on top of block {self.block}): "
                f"all {len(self.methods)} transaction(s) succeed. The vault's risk view before and after each:")
        return [head, *(f"tx {i} {m}: before: {risk_text(b)} -> after: {risk_text(a)}" for i, m, b, a in self.steps())]

    def record(self) -> dict[str, Any]:
        return {"simulated": True, "method": self.method, "block": str(self.block), "from": self.owner,
                "steps": [{"tx": str(i), "method": m, "before": _risk_record(b), "after": _risk_record(a)}
                          for i, m, b, a in self.steps()]}


def _revert_words(output: str, message: str) -> str:
    if output not in ("", "0x"):
        return decode_error(output, vault_abi()) or f"{message or 'reverted'} (revert data {output})"
    return message or "reverted without a reason"


def simulate_batch(w3: Web3, transactions: Sequence[SafeTx], *, vault: str, lens: str, fork_url: str | None = None,
                   methods: Sequence[str] = METHODS) -> BatchSimulation:
    """Simulate ``transactions`` in order from the vault's owner (``owner()``), the lens's
    riskView read before the first and after each (one simulated block, see
    :func:`dealvault.run.simulate.simulate_calls`). Raises :class:`BatchRefused` naming the first
    transaction that would revert (index, method, the decoded reason), SimulationUnavailable,
    ChainError."""
    client = VaultClient(w3, vault, lens)
    try:
        with rpc_guard("read the vault's owner", hint="check the node (--rpc / --network)"):
            owner = client.owner()
    except ChainError:
        raise
    except Exception as exc:  # not a vault: owner() fails
        raise ChainError(f"cannot read owner() of the vault {client.address}: {exc}") from None
    view = Call(client.lens_address, client.risk_view_data(), view=True)
    calls = [view]
    for t in transactions:
        calls += [Call(t["to"], t["data"], int(t["value"])), view]
    sim = simulate_calls(w3, owner, calls, fork_url=fork_url, methods=methods)
    names = tuple(str((t.get("contractMethod") or {}).get("name") or t["data"][:10]) for t in transactions)
    failed = sim.failed
    if failed is not None:
        r = sim.results[failed]
        if failed % 2 == 0:
            raise BatchRefused(f"the lens {client.lens_address} could not read the vault's risk view in the simulation: "
                               f"{_revert_words(r.output, r.message)}")
        i = failed // 2
        raise BatchRefused(f"transaction {i + 1} of {len(transactions)} ({names[i]}) would revert when the owner {owner} executes "
                           f"the batch: {_revert_words(r.output, r.message)} (simulated in order from the owner, {sim.method} on "
                           f"top of block {sim.block})")
    views = [client.decode_risk_view(r.output) for r in sim.results[::2]]
    return BatchSimulation(owner, sim.method, sim.block, sim.seconds, names, views[0], tuple(views[1:]))


def prepare_batch(w3: Web3, action: str, args: Sequence[str], *, vault: str, lens: str, chain_id: int | None = None,
                  safe: str | None = None, deployment: Path | None = None, config: Path | None = None,
                  decimals: int | None = None, now_ms: int | None = None, fork_url: str | None = None,
                  methods: Sequence[str] = METHODS) -> Batch:
    """The owner's batch for ``action`` (see :func:`build_batch`; several joined by ``+``), built
    against the vault's parameters, simulated in order from its owner, the risk view before and
    after each transaction in ``meta.description`` (and ``meta.dealvault``), ``meta.checksum``
    set. ``chain_id``: the node's by default. ``fork_url``: the node's URL, for when it has no
    eth_simulateV1 (:mod:`dealvault.run.simulate`).

    Raises OwnerTxError (bad input, exit 2), :class:`BatchRefused` (a transaction would revert,
    exit 6), SimulationUnavailable (exit 6), ChainError (the node or the lens did not answer, exit 5)."""
    vault = parse_address(vault, "--vault")
    lens = parse_address(lens, "--lens")
    try:
        with rpc_guard(f"read the vault {vault}'s parameters through the lens {lens}", hint="check the node (--rpc / --network)"):
            state = read_param_state(w3, vault, lens)
            node_chain = int(w3.eth.chain_id)
    except ChainError:
        raise
    except Exception as exc:  # not a vault, not a lens: their calls fail
        raise ChainError(f"cannot read the vault {vault}'s parameters through the lens {lens}: {exc}") from None
    if chain_id is not None and int(chain_id) != node_chain:
        raise OwnerTxError(f"--chain-id {chain_id}: the node's chain id is {node_chain}")
    draft = _draft(action, args, vault=vault, chain_id=node_chain, safe=safe, deployment=deployment, config=config,
                   decimals=decimals, now_ms=now_ms, state=state)
    sim = simulate_batch(w3, draft.transactions, vault=vault, lens=lens, fork_url=fork_url, methods=methods)
    return _finish(draft, sim)


def write_batch(batch: Batch, out: Path) -> Path:
    """Write ``batch`` to ``out`` (atomically: a temporary file renamed)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(batch, indent=2) + "\n")
    tmp.replace(out)
    return out


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def owner_tx(action: str, args: Sequence[str], *, vault: str, out: Path, safe: str | None = None, chain_id: int = CHAIN_ID,
             deployment: Path | None = None, config: Path | None = None, decimals: int | None = None,
             rpc: str | None = None, network: str | None = None, lens: str | None = None,
             say: Callable[[str], None] = _stderr) -> ExitCode:
    """``ape run owner_tx``: with a node (``rpc`` or the ape ``network``) read the vault's
    parameters, build the batch and simulate it in order from the vault's owner
    (:func:`prepare_batch`); without one build it unsimulated (it says so). Write it to ``out``
    with its ``meta.checksum``; messages go to ``say``. Exit codes: OK, INPUT (bad input), REFUSED
    (a transaction would revert, or no way to simulate), CHAIN (the node or the lens did not
    answer); nothing is written unless OK."""
    from dealvault.cli import connect

    try:
        if chain_id <= 0:
            raise OwnerTxError(f"--chain-id {chain_id}: must be > 0")
        if decimals is not None and not 0 <= decimals <= 77:
            raise OwnerTxError(f"--decimals {decimals}: allowed 0..77")
        if rpc is None and network is None:
            batch = build_batch(action, list(args), vault=vault, chain_id=chain_id, safe=safe, deployment=deployment,
                                config=config, decimals=decimals)
        else:
            if lens is None and deployment is not None:
                lens = (_read_deployment(deployment).get("lens") or {}).get("address")
            if lens is None:
                raise OwnerTxError("--rpc needs the lens: --lens ADDR or --deployment (a record naming its lens)")
            with connect(rpc, network, timeout=30) as w3:
                batch = prepare_batch(w3, action, list(args), vault=vault, lens=lens, chain_id=chain_id, safe=safe,
                                      deployment=deployment, config=config, decimals=decimals,
                                      fork_url=rpc or getattr(w3.provider, "endpoint_uri", None))
    except DealVaultError as exc:
        say(f"error: {exc}; nothing written")
        return exc.exit_code
    path = write_batch(batch, out)
    simulated = batch["meta"].get("dealvault", {}).get("simulated", False)
    say(f"wrote {path}: {len(batch['transactions'])} transaction(s) for the Safe Transaction Builder (nothing sent), "
        f"meta.checksum {batch['meta'].get('checksum')}; " + ("simulated in order from the vault's owner" if simulated
                                                              else "NOT simulated (no --rpc / --network)"))
    say(batch["meta"]["description"])
    return ExitCode.OK
