"""`ape run owner_tx`: write an owner action as a Safe Transaction Builder batch (sends nothing).

    ape run owner_tx fund 5000 --vault 0x... --out fund.json               # fund() with 5000 ETH
    ape run owner_tx resume --vault 0x... --out resume.json                # leave HOLDING
    ape run owner_tx owner-repay cUSDT 1250.5 --vault 0x... --deployment deployments/local/mirror/demo-001.json --out repay.json
                                                                           # approve + ownerRepay (2 txs)
    ape run owner_tx withdraw ETH 12.5 --vault 0x... --out w.json          # withdraw(token, amount); ETH = address(0)
    ape run owner_tx pause | unpause | hold --vault 0x... --out p.json
    ape run owner_tx tighten max-ltv-bps 2500 --vault 0x... --out t.json   # the setters only tighten

On Chain 138 the vault's owner is a Safe multisig: the file is loaded in the Safe's Transaction
Builder (version "1.0" batch: chainId, meta, transactions [{to, value, data, contractMethod,
contractInputsValues}]), checked by the signers and executed there. Amounts are human decimals
(ETH 18 dp, stablecoins 6 dp; tighten: bps / seconds, sell-floor-price in stablecoin per USDTz,
eth-floor-price in USD). A token symbol (cUSDT, cUSDC, USDTz, WETH9, WETH10) is resolved with
--deployment (the vault's deployment record) or --config (a network config; default Chain 138's);
a token address needs --decimals unless it is one of those.

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

# tighten PARAM -> (setter, solidity type, kind, max)
TIGHTEN = {
    "max-ltv-bps": ("setMaxLtvBps", "uint16", "int", 3000),
    "max-exposure-bps": ("setMaxExposureBps", "uint16", "int", 2500),
    "max-desk-fee-bps": ("setMaxDeskFeeBps", "uint16", "int", 10_000),
    "oracle-max-age": ("setOracleMaxAge", "uint32", "int", 2**32 - 1),
    "min-discount-bps": ("setMinDiscountBps", "uint16", "int", 9_999),
    "max-slippage-bps": ("setMaxSlippageBps", "uint16", "int", 9_999),
    "sell-floor-price": ("setSellFloorPrice", "uint256", 6, 10**6),      # priceE6 <= 1e6
    "eth-floor-price": ("setEthFloorPrice", "uint256", 8, 2**256 - 1),   # USD 8 dp
}
_SETTER_ALIASES = {v[0].lower(): k for k, v in TIGHTEN.items()} | {"set-" + k: k for k in TIGHTEN}
ACTIONS = ("fund", "resume", "owner-repay", "withdraw", "pause", "unpause", "hold", "tighten", *sorted(TIGHTEN), )
ACTION_HELP = ("fund AMOUNT_ETH | resume | owner-repay STABLE AMOUNT | withdraw TOKEN AMOUNT | pause | unpause | hold | "
               "tighten PARAM VALUE (PARAM: " + ", ".join(TIGHTEN) + "; or the setter name, e.g. setMaxLtvBps VALUE)")


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
    from dealvault.netconfig import CHAIN138_CONFIG, load_netconfig

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


def build_batch(action: str, args: list[str] | tuple[str, ...], *, vault: str, chain_id: int = CHAIN_ID,
                safe: str | None = None, deployment: Path | None = None, config: Path | None = None,
                decimals: int | None = None, now_ms: int | None = None) -> dict[str, Any]:
    """The Safe Transaction Builder batch for one owner action. Raises :class:`OwnerTxError`."""
    vault = parse_address(vault, "--vault")
    safe_addr = parse_address(safe, "--safe") if safe else ""
    a = str(action).strip()
    key = a.lower()
    if key in _SETTER_ALIASES:
        key, args = "tighten", [_SETTER_ALIASES[key], *args]
    elif key in TIGHTEN:
        key, args = "tighten", [key, *args]
    if key in ("ownerrepay", "owner_repay"):
        key = "owner-repay"
    nargs = {"fund": 1, "resume": 0, "pause": 0, "unpause": 0, "hold": 0, "owner-repay": 2, "withdraw": 2, "tighten": 2}
    if key not in nargs:
        raise OwnerTxError(f"unknown action {action!r}; actions: {ACTION_HELP}")
    if len(args) != nargs[key]:
        raise OwnerTxError(f"{key}: expects {nargs[key]} argument(s), got {len(args)} ({' '.join(map(str, args)) or 'none'}); "
                           f"usage: {ACTION_HELP}")
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
                     "(before CLOSED only the surplus above the books)")
        title = f"DealVault: withdraw {_fmt(amount, d)} {label}"
    else:  # tighten
        p = str(args[0]).strip().lower().replace("_", "-")
        p = _SETTER_ALIASES.get(p, p)
        if p not in TIGHTEN:
            raise OwnerTxError(f"tighten: unknown parameter {args[0]!r}; allowed: {', '.join(TIGHTEN)}")
        setter, typ, kind, maximum = TIGHTEN[p]
        if kind == "int":
            v = parse_amount(args[1], 0, f"tighten {p}", allow_zero=p in ("min-discount-bps",), maximum=maximum)
        else:
            v = parse_amount(args[1], kind, f"tighten {p}", maximum=maximum)
        txs.append(_tx(vault, setter, [("value", typ)], [v]))
        shown = str(v) if kind == "int" else f"{_fmt(v, kind)} ({v})"
        lines.append(f"{setter}({v}): tighten {p} to {shown}; the vault refuses a looser value (NotTighter)")
        title = f"DealVault: {setter} {v}"
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
def cli(action, args, vault, out, safe, chain_id, deployment, config_path, decimals):
    sys.exit(main(action, args, vault=vault, out=out, safe=safe, chain_id=chain_id, deployment=deployment,
                  config=config_path, decimals=decimals))


def main(action, args, *, vault, out, safe=None, chain_id=CHAIN_ID, deployment=None, config=None, decimals=None) -> int:
    try:
        if chain_id <= 0:
            raise OwnerTxError(f"--chain-id {chain_id}: must be > 0")
        if decimals is not None and not 0 <= decimals <= 77:
            raise OwnerTxError(f"--decimals {decimals}: allowed 0..77")
        batch = build_batch(action, list(args), vault=vault, chain_id=chain_id, safe=safe, deployment=deployment,
                            config=config, decimals=decimals)
    except OwnerTxError as exc:
        click.echo(f"error: {exc}; nothing written", err=True)
        return EXIT_INPUT
    path = write_batch(batch, out)
    click.echo(f"wrote {path}: {len(batch['transactions'])} transaction(s) for the Safe Transaction Builder (nothing sent)", err=True)
    click.echo(batch["meta"]["description"], err=True)
    return 0
