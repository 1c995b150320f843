"""Bare web3.py harness for the DealVault invariant fuzzer (no ape network).

One kit (anvil chain id 138 + mirror + overlay) per process, one vault deployed on it, funded and
split; every Hypothesis example starts from an ``evm_snapshot`` of that state. Reads go out as one
JSON-RPC batch (pre-encoded calldata, decoded with eth_abi), legs as ``eth_sendTransaction`` with a
fixed gas so a revert is *mined* (and its unchanged state can be compared). The next block's
timestamp is pinned to the latest block's before every leg, so interest cannot accrue inside a
leg's before/after comparison; time moves only through the explicit time-jump rule.
"""

from __future__ import annotations

import atexit
import time
import itertools
from dataclasses import dataclass, field
from typing import Any

import requests
from eth_abi import decode, encode
from eth_utils import function_signature_to_4byte_selector as sel
from eth_utils import keccak, to_checksum_address

from dealvault.artifacts import own
from dealvault.evm import deploy, rpc
from tests.model import DEFAULT_RISK

ETH = 10**18
USD6 = 10**6
FUND_WEI = 1_000 * ETH
LEG_GAS = 8_000_000
FAR = 2**64

RISK = DEFAULT_RISK

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
APPROVAL_TOPIC = "0x" + keccak(text="Approval(address,address,uint256)").hex()


def _topic_addr(t: str) -> str:
    return to_checksum_address("0x" + t[-40:])


@dataclass
class Env:
    kit: Any
    w3: Any
    url: str
    vault: Any
    vault_addr: str
    roles: dict[str, str]
    m: Any  # mirror
    o: Any  # overlay
    rv_fields: list[str]
    rv_type: str
    root_snap: str
    tokens: dict[str, str] = field(default_factory=dict)
    a_tokens: dict[str, str] = field(default_factory=dict)
    debt_tokens: dict[str, str] = field(default_factory=dict)
    spenders: set[str] = field(default_factory=set)
    allowed_recipients: set[str] = field(default_factory=set)
    burnable: set[str] = field(default_factory=set)
    core0: int = 0
    session: requests.Session = field(default_factory=requests.Session)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    # --- raw RPC -------------------------------------------------------------------------------
    def batch(self, calls: list[tuple[str, list]]) -> list[Any]:
        payload = [{"jsonrpc": "2.0", "id": next(self._ids), "method": m, "params": p} for m, p in calls]
        resp = self.session.post(self.url, json=payload, timeout=120).json()
        by_id = {r["id"]: r for r in resp}
        out = []
        for req in payload:
            r = by_id[req["id"]]
            out.append(None if "error" in r else r["result"])
        return out

    def call1(self, method: str, params: list) -> Any:
        return self.batch([(method, params)])[0]

    def ecall(self, to: str, data: bytes) -> tuple[str, list]:
        return ("eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"])

    def send(self, sender: str, data: str, value: int = 0, to: str | None = None) -> dict:
        tx = {"from": sender, "to": to or self.vault_addr, "data": data, "gas": hex(LEG_GAS), "value": hex(value)}
        h = self.call1("eth_sendTransaction", [tx])
        if h is None:  # the node refused it outright (should not happen with a fixed gas)
            raise RuntimeError(f"eth_sendTransaction refused: {tx}")
        for _ in range(2000):
            rc = self.call1("eth_getTransactionReceipt", [h])
            if rc is not None:
                return rc
            time.sleep(0.002)
        raise RuntimeError(f"tx {h} not mined")

    def revert_reason(self, sender: str, data: str, value: int = 0) -> str:
        """Replay on the latest state (for diagnostics and error-name assertions)."""
        r = self.session.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [
            {"from": sender, "to": self.vault_addr, "data": data, "gas": hex(LEG_GAS), "value": hex(value)}, "latest"]}).json()
        return str(r.get("error", {}).get("data", "")) if "error" in r else ""

    def pin_time(self, ts: int) -> None:
        rpc(self.w3, "evm_setNextBlockTimestamp", [ts])

    def jump(self, seconds: int) -> None:
        """Time jump (evm_increaseTime is ignored under a block timestamp interval)."""
        ts = int(self.call1("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
        rpc(self.w3, "evm_setNextBlockTimestamp", [ts + seconds])
        rpc(self.w3, "evm_mine")

    def enc(self, fn: str, *args: Any) -> str:
        return self.vault.functions[fn](*args)._encode_transaction_data()


_ENV: Env | None = None


def _abi_type(p: dict) -> str:
    t = p["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in p["components"]) + ")" + t[5:]
    return t


def get_env() -> Env:
    """Start the kit and deploy the vault once per process (the first example pays ~3 s)."""
    global _ENV
    if _ENV is not None:
        return _ENV
    from dealvault.kit import start_kit, vault_config

    kit = start_kit()
    atexit.register(kit.stop)
    w3 = kit.w3
    m, o = kit.mirror, kit.overlay
    accts = w3.eth.accounts
    roles = {"deployer": accts[0], "owner": accts[1], "operator": accts[2], "guardian": accts[3], "stranger": accts[5]}
    art = own("DealVault")
    cfg = vault_config(m, o, roles["owner"], roles["operator"], roles["guardian"], RISK.values())
    vault = deploy(w3, art, cfg, sender=roles["deployer"])
    rv_abi = next(e for e in art.abi if e.get("name") == "riskView")
    comps = rv_abi["outputs"][0]["components"]
    env = Env(kit=kit, w3=w3, url=kit.node.url, vault=vault, vault_addr=vault.address, roles=roles, m=m, o=o,
              rv_fields=[c["name"] for c in comps], rv_type=_abi_type(rv_abi["outputs"][0]), root_snap="")
    env.tokens = {"WETH9": m.weth9, "WETH10": m.weth10, "cUSDT": m.cusdt, "cUSDC": m.cusdc, "USDTz": o.usdtz}
    env.a_tokens = {"WETH9": o.a_tokens["WETH"], "WETH10": o.a_tokens["WETH10"], "cUSDT": o.a_tokens["cUSDT"], "cUSDC": o.a_tokens["cUSDC"]}
    env.debt_tokens = {"cUSDT": o.variable_debt_tokens["cUSDT"], "cUSDC": o.variable_debt_tokens["cUSDC"]}
    venues = {o.pool, o.uniswap_router, o.desk, o.pair_usdtz_cusdt, o.pair_usdtz_cusdc, o.pair_weth_cusdt, o.pair_weth_cusdc}
    env.spenders = {to_checksum_address(a) for a in venues | {roles["owner"], roles["operator"], roles["guardian"]}}
    # where value may go: the pool and its aTokens, the router's pairs, the desk, the wrappers, the owner
    env.allowed_recipients = {to_checksum_address(a) for a in
                              venues | set(env.a_tokens.values()) | {m.weth9, m.weth10, roles["owner"]}}
    # burns (Transfer to 0x0) are allowed only for unwraps and Aave's own accounting tokens
    env.burnable = {to_checksum_address(a) for a in [m.weth9, m.weth10, *env.a_tokens.values(), *env.debt_tokens.values()]}
    rpc(w3, "anvil_autoImpersonateAccount", [True])
    # deterministic clock: every block is the previous one + 1 s (wall time ignored), so a
    # Hypothesis replay sees the same timestamps (and the same interest accrual)
    rpc(w3, "anvil_setBlockTimestampInterval", [1])

    # initial state: funded and split
    own_ = roles["owner"]
    env.send(own_, env.enc("fund"), value=FUND_WEI)
    rc = env.send(roles["operator"], env.enc("split"))
    assert int(rc["status"], 16) == 1
    env.core0 = FUND_WEI * RISK["coreBps"] // 10_000
    env.root_snap = rpc(w3, "evm_snapshot")
    _ENV = env
    return env


def reset(env: Env) -> None:
    rpc(env.w3, "evm_revert", [env.root_snap])
    env.root_snap = rpc(env.w3, "evm_snapshot")


# --- the state read ------------------------------------------------------------------------------

def _bal(token: str, who: str) -> bytes:
    return sel("balanceOf(address)") + encode(["address"], [who])


class Reader:
    """Pre-encoded batch of everything the invariants need; :meth:`read` returns a flat dict."""

    def __init__(self, env: Env):
        self.env = env
        v = env.vault_addr
        self.plan: list[tuple[str, tuple[str, list], Any]] = []  # (key, rpc call, decoder)

        def u256(raw: str) -> int:
            return int(raw, 16) if raw not in (None, "0x") else -1

        def add(key: str, to: str, data: bytes, dec=u256) -> None:
            self.plan.append((key, env.ecall(to, data), dec))

        self.plan.append(("block", ("eth_getBlockByNumber", ["latest", False]), lambda b: (int(b["number"], 16), int(b["timestamp"], 16))))
        self.plan.append(("eth.vault", ("eth_getBalance", [v, "latest"]), u256))
        self.plan.append(("eth.weth9", ("eth_getBalance", [env.m.weth9, "latest"]), u256))
        self.plan.append(("eth.weth10", ("eth_getBalance", [env.m.weth10, "latest"]), u256))
        self.plan.append(("eth.owner", ("eth_getBalance", [env.roles["owner"], "latest"]), u256))
        rv_type = env.rv_type
        fields = env.rv_fields

        def dec_rv(raw: str) -> dict | None:
            if raw is None:
                return None
            return dict(zip(fields, decode([rv_type], bytes.fromhex(raw[2:]))[0]))

        add("rv", v, sel("riskView()"), dec_rv)
        for name, t in env.tokens.items():
            add(f"bal.{name}", t, _bal(t, v))
        for name, t in env.a_tokens.items():
            add(f"abal.{name}", t, _bal(t, v))
        for name, t in env.debt_tokens.items():
            add(f"debt.{name}", t, _bal(t, v))
        for name in ("WETH9", "WETH10"):
            add(f"coll.{name}", v, sel("collateralOf(address)") + encode(["address"], [env.tokens[name]]))
        for name in ("cUSDT", "cUSDC"):
            add(f"stable.{name}", v, sel("stableOf(address)") + encode(["address"], [env.tokens[name]]))
        for k in ("maxLtvBps", "maxExposureBps", "oracleMaxAge", "maxDeskFeeBps", "phase", "paused"):
            add(f"p.{k}", v, sel(f"{k}()"))

        def dec_feed(raw: str):
            if raw in (None, "0x"):
                return None
            _r, ans, _s, upd, _a = decode(["uint256", "int256", "uint256", "uint256", "uint256"], bytes.fromhex(raw[2:]))
            return (ans, upd)

        add("feed", env.m.eth_usd_feed, sel("latestRoundData()"), dec_feed)

        def dec_gua(raw: str):
            if raw in (None, "0x"):
                return None
            return decode(["uint256"] * 6, bytes.fromhex(raw[2:]))

        add("gua", env.o.pool, sel("getUserAccountData(address)") + encode(["address"], [v]), dec_gua)
        self.allowance_keys: list[tuple[str, str]] = []
        self._add_allowances(env.spenders)

    def _add_allowances(self, spenders: set[str]) -> None:
        env = self.env
        for tname, t in list(env.tokens.items()) + list(env.a_tokens.items()):
            for s in sorted(spenders):
                if (t, s) in self.allowance_keys:
                    continue
                self.allowance_keys.append((t, s))
                self.plan.append((f"allow.{t}.{s}", env.ecall(t, sel("allowance(address,address)") + encode(["address", "address"], [env.vault_addr, s])),
                                  lambda raw: int(raw, 16) if raw not in (None, "0x") else 0))

    def watch_spender(self, spender: str) -> None:
        self._add_allowances({to_checksum_address(spender)})

    def read(self) -> dict:
        raws = self.env.batch([c for _k, c, _d in self.plan])
        return {k: d(r) for (k, _c, d), r in zip(self.plan, raws)}


def fingerprint(s: dict, drop: tuple[str, ...] = ()) -> dict:
    """Everything that must not move on a reverted leg (block number excluded)."""
    out = {k: v for k, v in s.items() if k not in ("block", "eth.owner", "eth.weth9", "eth.weth10")}
    rv = s["rv"]
    out["rv"] = {k: v for k, v in rv.items() if k not in drop} if rv is not None else None
    return out


def transfers_from(rc: dict, who: str) -> list[tuple[str, str, int]]:
    """(token, recipient, amount) of every Transfer log with from == who."""
    out = []
    for lg in rc.get("logs", []):
        tp = lg["topics"]
        if len(tp) == 3 and tp[0] == TRANSFER_TOPIC and _topic_addr(tp[1]) == who:
            out.append((to_checksum_address(lg["address"]), _topic_addr(tp[2]), int(lg["data"], 16) if lg["data"] != "0x" else 0))
    return out


def approvals_by(rc: dict, who: str) -> list[tuple[str, str]]:
    out = []
    for lg in rc.get("logs", []):
        tp = lg["topics"]
        if len(tp) == 3 and tp[0] == APPROVAL_TOPIC and _topic_addr(tp[1]) == who:
            out.append((to_checksum_address(lg["address"]), _topic_addr(tp[2])))
    return out


def has_event(rc: dict, sig: str) -> bool:
    t = "0x" + keccak(text=sig).hex()
    return any(lg["topics"] and lg["topics"][0] == t for lg in rc.get("logs", []))
