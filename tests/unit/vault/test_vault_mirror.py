"""What dealvault/vault/ writes once in Python, pinned to the contract:

- the enums (Phase, Leg, OracleStatus, Param) against the compiler's AST of IDealVault.sol;
- the dataclasses (RiskView, Params, Twap, Setup, Venues, Snapshot) against the ABI's structs;
- the parameter schema (dealvault/vault/params.py) against ParamTable.sol (limits, floors,
  directions) and the RiskParams struct's field order;
- the phase masks (LEG_PHASES) against the vault itself: each function called in a phase it may not
  run in answers WrongPhase(current, allowedMask), and allowedMask is the table's.
"""

from __future__ import annotations

import dataclasses
import re
from functools import cache
from pathlib import Path

import pytest
from eth_abi import decode
from eth_utils import keccak

from dealvault.deploy import run_solc, standard_json_input
from dealvault.vault import LEG_PHASES, Leg, OracleStatus, Param, Phase, lens_abi, vault_abi
from dealvault.vault import client as C
from dealvault.vault import params as P

ROOT = Path(__file__).resolve().parents[3]


@cache
def _ast_enums() -> dict[str, list[str]]:
    std = standard_json_input("contracts/interfaces/IDealVault.sol")
    std["settings"]["outputSelection"] = {"*": {"": ["ast"]}}
    out = run_solc(std)
    enums: dict[str, list[str]] = {}

    def walk(n):
        if isinstance(n, dict):
            if n.get("nodeType") == "EnumDefinition":
                enums[n["name"]] = [m["name"] for m in n["members"]]
            for v in n.values():
                walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)

    walk(out["sources"]["contracts/interfaces/IDealVault.sol"]["ast"])
    return enums


@pytest.mark.parametrize("py", [Phase, Leg, OracleStatus, Param], ids=lambda e: e.__name__)
def test_enums_equal_the_contracts(py):
    assert [m.name for m in py] == _ast_enums()[py.__name__]
    assert [m.value for m in py] == list(range(len(py)))


def _components(abi, fn: str) -> list[dict]:
    item = next(x for x in abi if x.get("type") == "function" and x.get("name") == fn)
    return item["outputs"][0]["components"]


@pytest.mark.parametrize("cls,abi,fn", [
    (C.RiskView, "lens", "riskView"), (C.Params, "lens", "params"), (C.Twap, "lens", "twap"),
    (C.Setup, "vault", "setup"),
])
def test_dataclasses_equal_the_abi_structs(cls, abi, fn):
    comps = _components(lens_abi() if abi == "lens" else vault_abi(), fn)
    assert [f.name for f in dataclasses.fields(cls)] == [c["name"] for c in comps]
    if cls is C.Setup:
        assert [f.name for f in dataclasses.fields(C.Venues)] == [c["name"] for c in comps[0]["components"]]


def test_snapshot_equals_the_event_struct():
    ev = next(x for x in vault_abi() if x.get("type") == "event" and x.get("name") == "LegCompleted")
    assert [f.name for f in dataclasses.fields(C.Snapshot)] == [c["name"] for c in ev["inputs"][2]["components"]]


def test_param_schema_equals_risk_params_struct_and_param_table():
    ctor = next(x for x in vault_abi() + __import__("dealvault.vault", fromlist=["core_abi"]).core_abi()
                if x.get("type") == "constructor")
    risk = next(c for c in ctor["inputs"][0]["components"] if c["name"] == "risk")
    assert tuple(c["name"] for c in risk["components"]) == P.RISK_PARAMS_FIELDS
    src = (ROOT / "contracts/libraries/ParamTable.sol").read_text()
    table = int(re.search(r"TABLE = (0x[0-9a-fA-F]+);", src).group(1), 16)
    consts = {k: v for k, v in re.findall(r"constant (\w+) = ([^;]+);", src)}
    assert int(consts["MAX_LTV_BPS"]) == P.MAX_LTV_BPS
    assert int(consts["MAX_EXPOSURE_BPS"]) == P.MAX_EXPOSURE_BPS
    assert int(consts["MAX_FEE_BPS"]) == P.MAX_FEE_BPS
    assert consts["MAX_PRICE"] == "1e16" and P.MAX_PRICE == 10**16
    assert consts["MAX_LOOSEN_DELAY"] == "30 days" and P.MAX_LOOSEN_DELAY == 30 * 86400
    assert consts["MIN_LOOSEN_DELAY"] == "1 hours" and P.MIN_LOOSEN_DELAY == 3600
    limits = dict(re.findall(r"if \(param == (\d+)\) return ([\w().e]+);", src))
    for p in Param:
        spec = P.BY_PARAM[p]
        d = table >> (16 * int(p))
        assert spec.higher_is_tighter == bool((d >> 11) & 1), p
        floor = P.MIN_LOOSEN_DELAY if p == Param.LoosenDelay else (d >> 12) & 1
        assert spec.floor == floor, p
        lim = limits.get(str(int(p)), "MAX_FEE_BPS")
        want = {"MAX_LTV_BPS": P.MAX_LTV_BPS, "MAX_EXPOSURE_BPS": P.MAX_EXPOSURE_BPS, "MAX_FEE_BPS": P.MAX_FEE_BPS,
                "9999": 9999, "1e6": 10**6, "MAX_PRICE": P.MAX_PRICE, "MAX_LOOSEN_DELAY": P.MAX_LOOSEN_DELAY,
                "type(uint32).max": 2**32 - 1, "type(uint16).max": 2**16 - 1}[lim]
        assert spec.limit == want, (p, lim)


# --- the phase masks, against the vault's own WrongPhase answers ---------------------------------

WRONG_PHASE = keccak(text="WrongPhase(uint8,uint256)")[:4]
ZERO = "0x" + "00" * 20


def _allowed_mask(w3, vault_addr, sender, data) -> int | None:
    """allowedMask of the WrongPhase the call answers, None if it answers something else."""
    try:
        w3.eth.call({"from": sender, "to": vault_addr, "data": data})
        return None
    except Exception as exc:
        from dealvault.vault import revert_data

        raw = revert_data(exc)
        if raw is None or bytes.fromhex(raw[2:10]) != WRONG_PHASE:
            return None
        return decode(["uint8", "uint256"], bytes.fromhex(raw[10:]))[1]


def test_leg_phase_masks_equal_the_vaults(w3, vault, mirror, owner, operator):
    """In FUNDED every function but fund, split, hold and observe is refused with its mask; those
    four (and renounceOwnership) are read in CLOSED, reached by hold + close."""
    v = w3.eth.contract(address=vault.address, abi=vault_abi())
    f = v.functions
    calls = {
        "supply": (operator, f.supply(mirror.weth9, 1)), "borrow": (operator, f.borrow(mirror.cusdt, 1)),
        "buy": (operator, f.buy(mirror.cusdt, 1, 0, 2**63)), "redeem": (operator, f.redeem(mirror.cusdt, 1)),
        "sell": (operator, f.sell(mirror.cusdt, 1, 0, 2**63)), "repay": (operator, f.repay(mirror.cusdt, 1)),
        "ownerRepay": (owner, f.ownerRepay(mirror.cusdt, 1)), "addCollateral": (operator, f.addCollateral(mirror.weth9, 1)),
        "withdrawCollateral": (operator, f.withdrawCollateral(mirror.weth9, 1)),
        "deleverage": (operator, f.deleverage(mirror.weth9, mirror.cusdt, 1, 0, 2**63)), "close": (operator, f.close()),
        "resume": (owner, f.resume()), "renounceOwnership": (owner, f.renounceOwnership()),
    }
    seen = {}
    for name, (who, fn) in calls.items():
        seen[name] = _allowed_mask(w3, vault.address, str(who.address), fn._encode_transaction_data())
    vault.hold(sender=owner)
    vault.close(sender=owner)
    for name, who, fn in (("fund", owner, f.fund()), ("split", operator, f.split()), ("hold", owner, f.hold()),
                          ("observe", operator, f.observe())):
        seen[name] = _allowed_mask(w3, vault.address, str(who.address), fn._encode_transaction_data())
    assert seen == {k: int(m) for k, m in LEG_PHASES.items()}
