"""`ape run owner_tx`: write an owner action as a Safe Transaction Builder batch (sends nothing).

    ape run owner_tx fund 5000 --vault 0x... --out fund.json               # fund() with 5000 ETH
    ape run owner_tx resume --vault 0x... --out resume.json                # leave HOLDING
    ape run owner_tx owner-repay cUSDT 1250.5 --vault 0x... --deployment deployments/local/mirror/demo-001.json --out repay.json
                                                                           # approve + ownerRepay (2 txs)
    ape run owner_tx withdraw ETH 12.5 --vault 0x... --out w.json          # withdraw(token, amount); ETH = address(0)
    ape run owner_tx pause | unpause | hold --vault 0x... --out p.json
    ape run owner_tx set max-ltv-bps 2500 twap-window 3600 --vault 0x... --out s.json   # setParam, one per pair
    ape run owner_tx set max-slippage-bps 150 --vault 0x... --deployment <record> --rpc URL --out s.json
                                                                           # ... says which entries are queued
    ape run owner_tx accept max-slippage-bps --vault 0x... --out a.json    # acceptParam after loosenDelay
    ape run owner_tx revoke max-slippage-bps --vault 0x... --out r.json    # revokeParam (owner or guardian)

On Chain 138 the vault's owner is a Safe multisig: the file is loaded in the Safe's Transaction
Builder (version "1.0" batch: chainId, meta, transactions [{to, value, data, contractMethod,
contractInputsValues}]), checked by the signers and executed there. Amounts are human decimals
(ETH 18 dp, stablecoins 6 dp; set: bps / seconds, sell-floor-price in stablecoin per USDTz,
eth-floor-price in USD). A token symbol (cUSDT, cUSDC, USDTz, WETH9, WETH10) is resolved with
--deployment (the vault's deployment record) or --config (a network config; default Chain 138's);
a token address needs --decimals unless it is one of those.

Parameters (DealVault v2): ``setParam(Param, value)``. A value tighter than (or equal to) the
vault's current one acts at once; a looser one is queued for the vault's loosenDelay, at most back
to the constructor's value (CapAboveCeiling past it), and applies only when someone sends
``acceptParam(Param)`` after that delay (``owner_tx accept``); the owner or the guardian may
``revokeParam(Param)`` meanwhile (``owner_tx revoke``). With --rpc (and the lens from --lens or
--deployment) the builder reads the vault's current and constructor values through the lens and
says, entry by entry, which act at once and which are queued (and until when); without it, it
says both cases. ``tighten`` and the v1 setter names (setMaxLtvBps...) are aliases of ``set``.

Bad input (unknown action, bad address, a negative or zero amount, too many decimals, a value
out of range): a message naming it, exit code 2, no file written.
"""

from __future__ import annotations

import json
import sys
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

EXIT_INPUT = 2
CHAIN_ID = 138
ZERO = "0x0000000000000000000000000000000000000000"
BUILDER_VERSION = "1.16.5"

# set PARAM -> IDealVault.Param: (index, enum name, lens.params field, kind: "int" or decimals, floor, hard limit,
# higher_is_tighter, unit) -- contracts/libraries/ParamTable.sol
PARAMS = {
    "max-ltv-bps": (0, "MaxLtvBps", "maxLtvBps", "int", 0, 3000, False, "bps"),
    "max-exposure-bps": (1, "MaxExposureBps", "maxExposureBps", "int", 0, 2500, False, "bps"),
    "max-desk-fee-bps": (2, "MaxDeskFeeBps", "maxDeskFeeBps", "int", 0, 1000, False, "bps"),
    "oracle-max-age": (3, "OracleMaxAge", "oracleMaxAge", "int", 1, 2**32 - 1, False, "s"),
    "min-discount-bps": (4, "MinDiscountBps", "minDiscountBps", "int", 0, 9_999, True, "bps"),
    "max-slippage-bps": (5, "MaxSlippageBps", "maxSlippageBps", "int", 0, 1000, False, "bps"),
    "sell-floor-price": (6, "SellFloorPrice", "sellFloorPrice", 6, 1, 10**6, True, "stablecoin per USDTz"),  # priceE6 <= 1e6
    "eth-floor-price": (7, "EthFloorPrice", "ethFloorPrice", 8, 1, 10**16, True, "USD per ETH"),         # USD 8 dp <= 1e16
    "max-operator-loss-bps": (8, "MaxOperatorLossBps", "maxOperatorLossBps", "int", 0, 1000, False, "bps"),
    "twap-window": (9, "TwapWindow", "twapWindow", "int", 1, 2**16 - 1, True, "s"),
    "loosen-delay": (10, "LoosenDelay", "loosenDelay", "int", 0, 30 * 86400, True, "s"),
}
TIGHTEN = PARAMS  # v1 name
_V1_SETTERS = {"setmaxltvbps": "max-ltv-bps", "setmaxexposurebps": "max-exposure-bps", "setmaxdeskfeebps": "max-desk-fee-bps",
               "setoraclemaxage": "oracle-max-age", "setmindiscountbps": "min-discount-bps",
               "setmaxslippagebps": "max-slippage-bps", "setsellfloorprice": "sell-floor-price",
               "setethfloorprice": "eth-floor-price"}
_PARAM_ALIASES = ({v[1].lower(): k for k, v in PARAMS.items()} | {v[2].lower(): k for k, v in PARAMS.items()}
                  | {k.replace("-", ""): k for k in PARAMS})
ACTIONS = ("fund", "resume", "owner-repay", "withdraw", "pause", "unpause", "hold", "set", "accept", "revoke")
ACTION_HELP = ("fund AMOUNT_ETH | resume | owner-repay STABLE AMOUNT | withdraw TOKEN AMOUNT | pause | unpause | hold | "
               "set PARAM VALUE [PARAM VALUE ...] | accept PARAM [PARAM ...] | revoke PARAM [PARAM ...] "
               "(PARAM: " + ", ".join(PARAMS) + "; `tighten` and the v1 setter names, e.g. setMaxLtvBps VALUE, mean set)")


class OwnerTxError(ValueError):
    """Bad input; nothing written."""


# --------------------------------------------------------------------------------------------
# parsing


def parse_address(value: str, what: str, *, allow_zero: bool = False) -> str:
    from eth_utils import is_address, is_checksum_address, to_checksum_address

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
    s = str(value).strip().replace("_", "")
    try:
        d = Decimal(s)
    except InvalidOperation:
        raise OwnerTxError(f"{what}: {value!r} is not a number") from None
    if not d.is_finite():
        raise OwnerTxError(f"{what}: {value!r} is not a finite number")
    if d < 0:
        raise OwnerTxError(f"{what}: {value!r} is negative; it must be > 0")
    if d == 0 and not allow_zero:
        raise OwnerTxError(f"{what}: must be > 0, got {value!r}")
    units = d.scaleb(decimals)
    if units != units.to_integral_value():
        raise OwnerTxError(f"{what}: {value!r} has more than {decimals} decimals")
    n = int(units)
    if maximum is not None and n > maximum:
        raise OwnerTxError(f"{what}: {value!r} is out of range (max {Decimal(maximum).scaleb(-decimals).normalize():f})")
    return n


def _tokens(deployment: Path | None, config: Path | None) -> dict[str, tuple[str, int]]:
    """symbol (lower case) -> (address, decimals) from a deployment record or a network config."""
    out: dict[str, tuple[str, int]] = {}
    dec = {"weth9": 18, "weth10": 18, "cusdt": 6, "cusdc": 6, "usdtz": 6}
    if deployment is not None:
        try:
            rec = json.loads(Path(deployment).read_text())
            c = rec["constructor_args"]["decoded"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise OwnerTxError(f"--deployment {deployment}: not a readable deployment record ({exc})") from None
        for k, d in dec.items():
            if c.get(k):
                out[k] = (c[k], d)
        return out
    from dealvault.spec.netconfig import CHAIN138_CONFIG, load_netconfig

    path = config or CHAIN138_CONFIG
    try:
        net = load_netconfig(path)
    except Exception as exc:  # noqa: BLE001
        raise OwnerTxError(f"--config {path}: {exc}") from None
    for k, t in net.tokens.items():
        if t.address:
            out[k] = (t.address, int(t.decimals))
    return out


def resolve_token(value: str, what: str, *, deployment: Path | None, config: Path | None, decimals: int | None,
                  allow_eth: bool = False) -> tuple[str, int, str]:
    """-> (address, decimals, label)."""
    v = str(value).strip()
    if allow_eth and v.upper() == "ETH":
        return ZERO, 18, "ETH"
    if v.startswith("0x"):
        addr = parse_address(v, what)
        if decimals is None:
            for k, (a, d) in _safe_tokens(deployment, config).items():
                if a.lower() == addr.lower():
                    return addr, d, k
            raise OwnerTxError(f"{what}: {addr} is not a known token of the deployment/config: give --decimals")
        return addr, decimals, addr
    toks = _tokens(deployment, config)
    key = v.lower()
    if key not in toks:
        known = ", ".join(sorted(toks)) or "none"
        raise OwnerTxError(f"{what}: unknown token {value!r} (known: {'ETH, ' if allow_eth else ''}{known}; or a 0x address)")
    addr, d = toks[key]
    return parse_address(addr, what), d, v


def _safe_tokens(deployment: Path | None, config: Path | None) -> dict[str, tuple[str, int]]:
    try:
        return _tokens(deployment, config)
    except OwnerTxError:
        return {}


# --------------------------------------------------------------------------------------------
# the batch


def _tx(to: str, fn_name: str, inputs: list[tuple[str, str]], values: list[Any], *, value: int = 0,
        payable: bool = False) -> dict[str, Any]:
    from eth_abi import encode
    from eth_utils import function_signature_to_4byte_selector

    sig = f"{fn_name}({','.join(t for _n, t in inputs)})"
    data = "0x" + (function_signature_to_4byte_selector(sig) + encode([t for _n, t in inputs], values)).hex()
    return {
        "to": to,
        "value": str(int(value)),
        "data": data,
        "contractMethod": {"inputs": [{"internalType": t, "name": n, "type": t} for n, t in inputs], "name": fn_name,
                           "payable": payable},
        "contractInputsValues": {n: str(v) for (n, _t), v in zip(inputs, values)},
    }


def _fmt(n: int, decimals: int) -> str:
    return f"{Decimal(n).scaleb(-decimals).normalize():f}"


def _param_key(value: str, what: str) -> str:
    p = str(value).strip().lower().replace("_", "-")
    p = _PARAM_ALIASES.get(p.replace("-", ""), p)
    if p not in PARAMS:
        raise OwnerTxError(f"{what}: unknown parameter {value!r}; allowed: {', '.join(PARAMS)}")
    return p


def _show(key: str, v: int) -> str:
    kind = PARAMS[key][3]
    return str(v) if kind == "int" else f"{_fmt(v, kind)} ({v})"


def classify(key: str, value: int, current: Any = None, initial: Any = None, loosen_delay: int | None = None,
             now: int | None = None) -> tuple[str, str]:
    """("now" | "queued" | "unknown", words) for setParam(key, value) against the vault's current
    and constructor values (lens.params / lens.initialParams, keyed by field name). Raises
    OwnerTxError for a loosening past the constructor's value (the vault reverts CapAboveCeiling)."""
    _i, _enum, field, _kind, _floor, _limit, higher, _unit = PARAMS[key]
    if current is None or current.get(field) is None:
        return "unknown", ("acts at once if it is tighter than (or equal to) the vault's current value; if looser it is "
                           "QUEUED for the vault's loosenDelay and needs `owner_tx accept " + key + "` after it "
                           "(pass --rpc to know which)")
    cur = int(current[field])
    tighter = value > cur if higher else value < cur
    if value == cur:
        return "now", f"equal to the current value {_show(key, cur)}: acts at once (no change; drops a queued loosening of it)"
    if tighter:
        return "now", f"tightens {_show(key, cur)} -> {_show(key, value)}: acts at once"
    if initial is not None and initial.get(field) is not None:
        init = int(initial[field])
        if (value < init) if higher else (value > init):
            raise OwnerTxError(f"set {key}: {_show(key, value)} is looser than the constructor's value {_show(key, init)}: the vault "
                               "refuses it (CapAboveCeiling); a loosening may go at most back to the constructor's value")
    when = ""
    if loosen_delay is not None:
        when = f" for loosenDelay {loosen_delay} s"
        if now is not None:
            when += f" (valid from block time {now + loosen_delay}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(now + loosen_delay))})"
    return "queued", (f"loosens {_show(key, cur)} -> {_show(key, value)}: QUEUED{when}; applies only when acceptParam({PARAMS[key][1]}) "
                      f"is sent after that (`ape run owner_tx accept {key}`; anyone may send it); the owner or the guardian "
                      "may revokeParam meanwhile")


def build_batch(action: str, args: list[str] | tuple[str, ...], *, vault: str, chain_id: int = CHAIN_ID,
                safe: str | None = None, deployment: Path | None = None, config: Path | None = None,
                decimals: int | None = None, now_ms: int | None = None, current: Any = None, initial: Any = None,
                loosen_delay: int | None = None, now: int | None = None) -> dict[str, Any]:
    """The Safe Transaction Builder batch for one owner action. Raises :class:`OwnerTxError`.

    ``current`` / ``initial``: the vault's parameters now and at construction (lens.params /
    lens.initialParams by field name), ``loosen_delay`` and ``now`` (block time): with them a
    ``set`` says which entries act at once and which are queued (and refuses a loosening past the
    constructor's value); the batch's ``meta.description`` lists them."""
    vault = parse_address(vault, "--vault")
    safe_addr = parse_address(safe, "--safe") if safe else ""
    a = str(action).strip()
    key = a.lower()
    if key in _V1_SETTERS:
        key, args = "set", [_V1_SETTERS[key], *args]
    elif key.replace("_", "-") in PARAMS:
        key, args = "set", [key.replace("_", "-"), *args]
    elif key in ("tighten", "setparam", "set-param"):
        key = "set"
    elif key in ("acceptparam", "accept-param"):
        key = "accept"
    elif key in ("revokeparam", "revoke-param"):
        key = "revoke"
    if key in ("ownerrepay", "owner_repay"):
        key = "owner-repay"
    nargs = {"fund": 1, "resume": 0, "pause": 0, "unpause": 0, "hold": 0, "owner-repay": 2, "withdraw": 2}
    if key not in nargs and key not in ("set", "accept", "revoke"):
        raise OwnerTxError(f"unknown action {action!r}; actions: {ACTION_HELP}")
    if key in nargs and len(args) != nargs[key]:
        raise OwnerTxError(f"{key}: expects {nargs[key]} argument(s), got {len(args)} ({' '.join(map(str, args)) or 'none'}); "
                           f"usage: {ACTION_HELP}")
    if key == "set" and (len(args) < 2 or len(args) % 2):
        raise OwnerTxError(f"set: expects PARAM VALUE pairs, got {len(args)} argument(s) ({' '.join(map(str, args)) or 'none'}); "
                           f"usage: {ACTION_HELP}")
    if key in ("accept", "revoke") and not args:
        raise OwnerTxError(f"{key}: expects at least one PARAM; usage: {ACTION_HELP}")
    txs: list[dict[str, Any]] = []
    lines: list[str] = []
    if key == "fund":
        wei = parse_amount(args[0], 18, "fund amount (ETH)")
        txs.append(_tx(vault, "fund", [], [], value=wei, payable=True))
        lines.append(f"fund(): send {_fmt(wei, 18)} ETH ({wei} wei) to the vault {vault} as deal capital (FUNDED phase only)")
        title = f"DealVault: fund {_fmt(wei, 18)} ETH"
    elif key in ("resume", "pause", "unpause", "hold"):
        txs.append(_tx(vault, key, [], []))
        what = {"resume": "leave HOLDING, back to the phase before it",
                "pause": "block the risk-adding legs (supply, borrow, buy, withdrawCollateral with debt)",
                "unpause": "allow the risk-adding legs again", "hold": "enter HOLDING from any open phase"}[key]
        lines.append(f"{key}(): {what} (vault {vault})")
        title = f"DealVault: {key}"
    elif key == "owner-repay":
        stable, d, label = resolve_token(args[0], "owner-repay stable", deployment=deployment, config=config, decimals=decimals)
        amount = parse_amount(args[1], d, "owner-repay amount")
        txs.append(_tx(stable, "approve", [("spender", "address"), ("amount", "uint256")], [vault, amount]))
        txs.append(_tx(vault, "ownerRepay", [("stable", "address"), ("amount", "uint256")], [stable, amount]))
        lines.append(f"1. approve({vault}, {amount}): let the vault pull {_fmt(amount, d)} {label} from the Safe")
        lines.append(f"2. ownerRepay({stable}, {amount}): repay {_fmt(amount, d)} {label} of the vault's debt with the Safe's "
                     "own tokens (capped at the debt; the rest is refunded)")
        title = f"DealVault: owner repay {_fmt(amount, d)} {label}"
    elif key == "withdraw":
        token, d, label = resolve_token(args[0], "withdraw token", deployment=deployment, config=config, decimals=decimals,
                                        allow_eth=True)
        amount = parse_amount(args[1], d, "withdraw amount")
        txs.append(_tx(vault, "withdraw", [("token", "address"), ("amount", "uint256")], [token, amount]))
        lines.append(f"withdraw({token}, {amount}): send {_fmt(amount, d)} {label} from the vault to the owner "
                     "(before CLOSED only the surplus above the books; in HOLDING also the idle ETH buckets)")
        title = f"DealVault: withdraw {_fmt(amount, d)} {label}"
    elif key == "set":
        seen: set[str] = set()
        queued, at_once = [], []
        for n, (pk, pv) in enumerate(zip(args[::2], args[1::2]), 1):
            p = _param_key(pk, "set")
            if p in seen:
                raise OwnerTxError(f"set: {p} is given twice")
            seen.add(p)
            index, enum, _field, kind, floor, limit, _higher, unit = PARAMS[p]
            if kind == "int":
                v = parse_amount(pv, 0, f"set {p}", allow_zero=floor == 0, maximum=limit)
            else:
                v = parse_amount(pv, kind, f"set {p}", maximum=limit)
            if v < floor:
                raise OwnerTxError(f"set {p}: {pv!r} is out of range (min {floor})")
            verdict, words = classify(p, v, current, initial, loosen_delay, now)
            (queued if verdict == "queued" else at_once).append(p)
            txs.append(_tx(vault, "setParam", [("param", "uint8"), ("value", "uint256")], [index, v]))
            lines.append(f"{n}. setParam({enum} = {index}, {v}): {p} {_show(p, v)} {unit}: {words}")
        if current is not None:
            lines.append("queued (need acceptParam after loosenDelay): " + (", ".join(queued) or "none")
                         + "; at once: " + (", ".join(at_once) or "none"))
        title = f"DealVault: setParam x {len(txs)}" + (f" ({len(queued)} queued)" if current is not None else "")
    else:  # accept / revoke
        fn = "acceptParam" if key == "accept" else "revokeParam"
        for n, pk in enumerate(args, 1):
            p = _param_key(pk, key)
            index, enum = PARAMS[p][0], PARAMS[p][1]
            txs.append(_tx(vault, fn, [("param", "uint8")], [index]))
            if key == "accept":
                lines.append(f"{n}. acceptParam({enum} = {index}): apply the queued loosening of {p} (reverts QueuedUntil before its "
                             "time, NothingQueued if none)")
            else:
                lines.append(f"{n}. revokeParam({enum} = {index}): drop the queued loosening of {p} (owner or guardian)")
        title = f"DealVault: {fn} x {len(txs)}"
    return {
        "version": "1.0",
        "chainId": str(int(chain_id)),
        "createdAt": int(now_ms if now_ms is not None else time.time() * 1000),
        "meta": {
            "name": title,
            "description": f"Owner action on DealVault {vault} (chain {chain_id}); sent by nobody: review and execute in the Safe.\n"
                           + "\n".join(lines),
            "txBuilderVersion": BUILDER_VERSION,
            "createdFromSafeAddress": safe_addr,
            "createdFromOwnerAddress": "",
        },
        "transactions": txs,
    }


def read_vault_params(rpc: str, vault: str, lens: str) -> dict[str, Any]:
    """The vault's current and constructor parameters (lens.params / lens.initialParams), its
    loosenDelay and the block time, read over ``rpc`` (web3; nothing sent)."""
    from web3 import Web3

    from dealvault.artifacts import own

    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 30}))
    abi = own("DealVaultLens").abi
    c = w3.eth.contract(address=Web3.to_checksum_address(lens), abi=abi)
    names = [x["name"] for x in [f for f in abi if f.get("name") == "params"][0]["outputs"][0]["components"]]
    vault = Web3.to_checksum_address(vault)
    cur = dict(zip(names, c.functions.params(vault).call()))
    init = dict(zip(names, c.functions.initialParams(vault).call()))
    return {"current": cur, "initial": init, "loosen_delay": int(cur["loosenDelay"]),
            "now": int(w3.eth.get_block("latest")["timestamp"])}


def write_batch(batch: dict[str, Any], out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(batch, indent=2) + "\n")
    tmp.replace(out)
    return out


# --------------------------------------------------------------------------------------------


@click.command(help=__doc__, context_settings={"ignore_unknown_options": True})
@click.argument("action")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--vault", required=True, help="the DealVault address")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="the batch JSON file to write")
@click.option("--safe", default=None, help="the owner Safe's address (meta.createdFromSafeAddress)")
@click.option("--chain-id", "chain_id", default=CHAIN_ID, show_default=True, type=int)
@click.option("--deployment", default=None, type=click.Path(dir_okay=False, path_type=Path), help="deployment record (token symbols)")
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False, path_type=Path), help="network config (token symbols)")
@click.option("--decimals", default=None, type=int, help="decimals of a token given by address")
@click.option("--rpc", default=None, help="read the vault's parameters (through the lens) to say which `set` entries are queued")
@click.option("--lens", default=None, help="the DealVaultLens (default: the --deployment record's)")
def cli(action, args, vault, out, safe, chain_id, deployment, config_path, decimals, rpc, lens):
    sys.exit(main(action, args, vault=vault, out=out, safe=safe, chain_id=chain_id, deployment=deployment,
                  config=config_path, decimals=decimals, rpc=rpc, lens=lens))


def main(action, args, *, vault, out, safe=None, chain_id=CHAIN_ID, deployment=None, config=None, decimals=None,
         rpc=None, lens=None) -> int:
    try:
        if chain_id <= 0:
            raise OwnerTxError(f"--chain-id {chain_id}: must be > 0")
        if decimals is not None and not 0 <= decimals <= 77:
            raise OwnerTxError(f"--decimals {decimals}: allowed 0..77")
        onchain: dict[str, Any] = {}
        if rpc is not None:
            if lens is None and deployment is not None:
                try:
                    lens = (json.loads(Path(deployment).read_text()).get("lens") or {}).get("address")
                except (OSError, ValueError) as exc:
                    raise OwnerTxError(f"--deployment {deployment}: not a readable deployment record ({exc})") from None
            if lens is None:
                raise OwnerTxError("--rpc needs the lens: --lens ADDR or --deployment (a record naming its lens)")
            lens = parse_address(lens, "--lens")
            try:
                onchain = read_vault_params(rpc, parse_address(vault, "--vault"), lens)
            except OwnerTxError:
                raise
            except Exception as exc:  # noqa: BLE001 - the node or the lens did not answer
                click.echo(f"error: --rpc {rpc}: cannot read the vault's parameters through the lens {lens}: {exc}; nothing written", err=True)
                return 5
        batch = build_batch(action, list(args), vault=vault, chain_id=chain_id, safe=safe, deployment=deployment,
                            config=config, decimals=decimals, **onchain)
    except OwnerTxError as exc:
        click.echo(f"error: {exc}; nothing written", err=True)
        return EXIT_INPUT
    path = write_batch(batch, out)
    click.echo(f"wrote {path}: {len(batch['transactions'])} transaction(s) for the Safe Transaction Builder (nothing sent)", err=True)
    click.echo(batch["meta"]["description"], err=True)
    return 0
