"""Bare web3.py harness for the DealVault v2 invariant fuzzer (no ape network).

One kit (anvil chain id 138 + mirror + overlay) per process; on it one vault (``own("DealVault")``
creation code: the core, which creates its extension, used through the whole ABI
``own("IDealVault")``) and one lens (``own("DealVaultLens")``) that every view goes through. The
vault is funded and split, the TWAP window is let pass, and every Hypothesis example starts from an
``evm_snapshot`` of that state.

Reads go out as one JSON-RPC batch (pre-encoded calldata, decoded with eth_abi): the lens's
riskView / params / queuedParams / collateralOf / stableOf / twap, and the raw truth next to them
(token, aToken and debt-token balances, scaled debt balances and the pool's borrow index, the
vault's own storage word of scaled debt books, pair reserves and price accumulators, the feed, the
pool's account data, allowances, the vault's new logs). Legs go out as anvil's
``eth_sendTransactionSync`` (the receipt in the same round trip) with a fixed gas so a revert is
*mined* (and its unchanged state can be compared).

Accounts (anvil's dev accounts, sending by auto-impersonation): deployer, owner, operator, guardian,
stranger, and four outsiders with large balances given by ``dealvault.kit.funding.fund`` at setup:
the attacker (trades the USDTz and WETH pairs around operator legs), the benefactor (repays the
vault's debt on the pool, ``onBehalfOf = vault``), the drainer (borrows the Aave WETH reserves
dry against the other wrapper, and repays to refill them; the overlay lists WETH as collateral
only, so setup turns borrowing on for WETH9 and WETH10 as the pool admin) and a third-party
trader. The kit's named roles (feed owner, USDTz issuer, desk operator, pool admin, the desk
itself) act through the same auto-impersonated ``eth_sendTransaction``, one transaction each.

The chain's clock stands still (``anvil_setBlockTimestampInterval 0``: every block has the
previous block's timestamp) and moves only through ``Env.jump``: interest cannot accrue inside a
leg's before/after comparison, every sandwich without an explicit gap is one block time for the
pairs' price accumulators, and a Hypothesis replay sees the same timestamps.

The owner's exit path is dry-run with ``eth_simulateV1`` (a simulated block at the latest block's
time on top of the latest state; nothing is mined), which also reads ETH balances between the
calls through a small balance-reader contract injected by a state override.
"""

from __future__ import annotations

import atexit
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from eth_abi import decode, encode
from eth_utils import function_signature_to_4byte_selector as sel
from eth_utils import keccak, to_checksum_address

from dealvault.artifacts import own
from dealvault.kit.evm import deploy, rpc, set_balance
from tests.model import DEFAULT_RISK

ETH = 10**18
USD6 = 10**6
FUND_WEI = 1_000 * ETH
LEG_GAS = 8_000_000
FAR = 2**64
MAX_UINT = 2**256 - 1
ZERO = "0x0000000000000000000000000000000000000000"
RAY = 10**27

RISK = DEFAULT_RISK

# IDealVaultTypes.Param order; tighter is lower for the first four, maxSlippageBps and
# maxOperatorLossBps, higher for the rest (ParamTable).
PARAMS = ["maxLtvBps", "maxExposureBps", "maxDeskFeeBps", "oracleMaxAge", "minDiscountBps", "maxSlippageBps",
          "sellFloorPrice", "ethFloorPrice", "maxOperatorLossBps", "twapWindow", "loosenDelay"]
HIGHER_IS_TIGHTER = {"minDiscountBps", "sellFloorPrice", "ethFloorPrice", "twapWindow", "loosenDelay"}
# hard limits and floors (IDealVault NatSpec / v2_api.md), written here, not read from the contract
LIMIT = {"maxLtvBps": 3000, "maxExposureBps": 2500, "maxDeskFeeBps": 1000, "oracleMaxAge": 2**32 - 1,
         "minDiscountBps": 9999, "maxSlippageBps": 1000, "sellFloorPrice": 10**6, "ethFloorPrice": 10**16,
         "maxOperatorLossBps": 1000, "twapWindow": 65_535, "loosenDelay": 30 * 86_400}
FLOOR = {p: 0 for p in PARAMS} | {"oracleMaxAge": 1, "sellFloorPrice": 1, "ethFloorPrice": 1, "twapWindow": 1}

# runtime code of a balance reader: returns address(calldata[4:36]).balance
BAL_READER = "0x00000000000000000000000000000000000fba11"
BAL_READER_CODE = "0x6004353160005260206000f3"

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
APPROVAL_TOPIC = "0x" + keccak(text="Approval(address,address,uint256)").hex()


def topic_addr(t: str) -> str:
    return to_checksum_address("0x" + t[-40:])


def ray_mul(a: int, b: int) -> int:
    """Aave's WadRayMath.rayMul (half up), re-derived."""
    return (a * b + RAY // 2) // RAY


def err(sig: str, *args: Any) -> str:
    """The revert data of custom error ``sig`` (e.g. "NotOwner(address)") with ``args``."""
    types = sig[sig.index("(") + 1:-1]
    body = encode([t for t in types.split(",") if t], list(args)) if types else b""
    return "0x" + (sel(sig) + body).hex()


def _abi_type(p: dict) -> str:
    t = p["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in p["components"]) + ")" + t[5:]
    return t


class Events:
    """Decoder of the vault's events (IDealVault ABI): topic0 -> (name, inputs)."""

    def __init__(self, abi: list[dict]):
        self.by_topic: dict[str, tuple[str, list[dict]]] = {}
        self.topic: dict[str, str] = {}
        for e in abi:
            if e["type"] != "event":
                continue
            sig = f"{e['name']}({','.join(_abi_type(i) for i in e['inputs'])})"
            t = "0x" + keccak(text=sig).hex()
            self.by_topic[t] = (e["name"], e["inputs"])
            self.topic[e["name"]] = t

    def decode(self, lg: dict) -> tuple[str, dict] | None:
        tp = lg["topics"]
        if not tp or tp[0] not in self.by_topic:
            return None
        name, inputs = self.by_topic[tp[0]]
        out: dict[str, Any] = {}
        idx = [i for i in inputs if i["indexed"]]
        rest = [i for i in inputs if not i["indexed"]]
        for i, t in zip(idx, tp[1:]):
            out[i["name"]] = decode([_abi_type(i)], bytes.fromhex(t[2:]))[0]
        if rest:
            vals = decode([_abi_type(i) for i in rest], bytes.fromhex(lg["data"][2:]))
            out.update({i["name"]: v for i, v in zip(rest, vals)})
        return name, out


@dataclass
class Env:
    kit: Any
    w3: Any
    url: str
    vault: Any  # web3 contract, IDealVault ABI
    vault_addr: str
    lens: Any  # web3 contract, DealVaultLens
    lens_addr: str
    roles: dict[str, str]
    m: Any  # mirror
    o: Any  # overlay
    events: Events
    rv_fields: list[str]
    rv_type: str
    pm_fields: list[str]
    pm_type: str
    root_snap: str = ""
    root_block: int = 0
    tokens: dict[str, str] = field(default_factory=dict)
    a_tokens: dict[str, str] = field(default_factory=dict)
    debt_tokens: dict[str, str] = field(default_factory=dict)
    usdtz_pairs: dict[str, str] = field(default_factory=dict)  # stable -> USDTz/stable pair
    weth_pairs: dict[str, str] = field(default_factory=dict)  # stable -> WETH9/stable pair
    usdtz_is0: dict[str, bool] = field(default_factory=dict)
    spenders: set[str] = field(default_factory=set)
    allowed_recipients: set[str] = field(default_factory=set)
    burnable: set[str] = field(default_factory=set)
    router: Any = None
    pool: Any = None
    split: dict[str, int] = field(default_factory=dict)  # the Split event + the feed price at split
    obs0: dict[str, tuple[int, int]] = field(default_factory=dict)  # split's Observed: stable -> (cumulative, ts)
    initial: dict[str, int] = field(default_factory=dict)  # the lens's initialParams
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
        """Mine one transaction (a revert is mined too: fixed gas) and return its receipt."""
        tx = {"from": sender, "to": to or self.vault_addr, "data": data, "gas": hex(LEG_GAS), "value": hex(value)}
        rc = self.call1("eth_sendTransactionSync", [tx])  # anvil: the receipt in one round trip
        if rc is not None:
            return rc
        h = self.call1("eth_sendTransaction", [tx])
        if h is None:  # the node refused it outright (should not happen with a fixed gas)
            raise RuntimeError(f"eth_sendTransaction refused: {tx}")
        for i in range(4000):
            rc = self.call1("eth_getTransactionReceipt", [h])
            if rc is not None:
                return rc
            time.sleep(0.0005 if i < 20 else 0.002)
        raise RuntimeError(f"tx {h} not mined")

    def must(self, sender: str, data: str, value: int = 0, to: str | None = None, what: str = "") -> dict:
        rc = self.send(sender, data, value, to)
        if int(rc["status"], 16) != 1:
            raise RuntimeError(f"{what or data[:10]} reverted: {self.revert_reason(sender, data, value, to)}")
        return rc

    def revert_reason(self, sender: str, data: str, value: int = 0, to: str | None = None, ts: int | None = None) -> str:
        """Replay on the latest state (a reverted transaction left it as it was), at block time
        ``ts`` if given (the reverted transaction's): its revert data, "" if it succeeds now."""
        params: list = [{"from": sender, "to": to or self.vault_addr, "data": data, "gas": hex(LEG_GAS), "value": hex(value)},
                        "latest"]
        if ts is not None:
            params += [{}, {"time": hex(ts)}]
        r = self.session.post(self.url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": params}).json()
        return str(r.get("error", {}).get("data", "")) if "error" in r else ""

    def now(self) -> int:
        return int(self.call1("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    def jump(self, seconds: int) -> None:
        """Time jump (evm_increaseTime is ignored under a block timestamp interval)."""
        rpc(self.w3, "evm_setNextBlockTimestamp", [self.now() + seconds])
        rpc(self.w3, "evm_mine")

    def enc(self, fn: str, *args: Any) -> str:
        return self.vault.functions[fn](*args)._encode_transaction_data()

    def simulate(self, calls: list[dict], ts: int) -> list[dict]:
        """eth_simulateV1: ``calls`` in one simulated block at time ``ts`` on the latest state
        (validation off: no gas charged, any sender). Returns each call's result."""
        res = rpc(self.w3, "eth_simulateV1", [{
            "blockStateCalls": [{"blockOverrides": {"time": hex(ts)},
                                 "stateOverrides": {BAL_READER: {"code": BAL_READER_CODE}},
                                 "calls": calls}],
            "validation": False}, "latest"])
        return res[0]["calls"]


def eth_balance_call(who: str) -> dict:
    """A simulated call returning ``who``'s ETH balance (through BAL_READER)."""
    return {"to": BAL_READER, "data": "0x00000000" + encode(["address"], [who]).hex()}


_ENV: Env | None = None


def get_env() -> Env:
    """Start the kit and deploy the vault and the lens once per process (the first example pays ~3 s)."""
    global _ENV
    if _ENV is not None:
        return _ENV
    from dealvault.kit import start_kit, vault_config
    from dealvault.kit.funding import fund
    from dealvault.kit.overlay import erc20

    kit = start_kit()
    atexit.register(kit.stop)
    w3 = kit.w3
    m, o = kit.mirror, kit.overlay
    accts = w3.eth.accounts
    roles = {"deployer": accts[0], "owner": accts[1], "operator": accts[2], "guardian": accts[3], "stranger": accts[5],
             "attacker": accts[6], "benefactor": accts[7], "drainer": accts[8], "trader": accts[9]}
    cfg = vault_config(m, o, roles["owner"], roles["operator"], roles["guardian"], RISK.values())
    core = deploy(w3, own("DealVault"), cfg, sender=roles["deployer"])
    vault_abi = own("IDealVault").abi
    vault = w3.eth.contract(address=core.address, abi=vault_abi)
    lens = deploy(w3, own("DealVaultLens"), sender=roles["deployer"])
    lens_abi = own("DealVaultLens").abi
    rv_abi = next(e for e in lens_abi if e.get("name") == "riskView")
    pm_abi = next(e for e in lens_abi if e.get("name") == "params")
    env = Env(kit=kit, w3=w3, url=kit.node.url, vault=vault, vault_addr=vault.address, lens=lens,
              lens_addr=lens.address, roles=roles, m=m, o=o, events=Events(vault_abi),
              rv_fields=[c["name"] for c in rv_abi["outputs"][0]["components"]], rv_type=_abi_type(rv_abi["outputs"][0]),
              pm_fields=[c["name"] for c in pm_abi["outputs"][0]["components"]], pm_type=_abi_type(pm_abi["outputs"][0]))
    env.tokens = {"WETH9": m.weth9, "WETH10": m.weth10, "cUSDT": m.cusdt, "cUSDC": m.cusdc, "USDTz": o.usdtz}
    env.a_tokens = {"WETH9": o.a_tokens["WETH"], "WETH10": o.a_tokens["WETH10"], "cUSDT": o.a_tokens["cUSDT"], "cUSDC": o.a_tokens["cUSDC"]}
    env.debt_tokens = {"cUSDT": o.variable_debt_tokens["cUSDT"], "cUSDC": o.variable_debt_tokens["cUSDC"]}
    env.usdtz_pairs = {"cUSDT": to_checksum_address(o.pair_usdtz_cusdt), "cUSDC": to_checksum_address(o.pair_usdtz_cusdc)}
    env.weth_pairs = {"cUSDT": to_checksum_address(o.pair_weth_cusdt), "cUSDC": to_checksum_address(o.pair_weth_cusdc)}
    env.router = o.router_contract(w3)
    env.pool = o.pool_contract(w3)
    for st_, pair in env.usdtz_pairs.items():
        t0 = o.pair_contract(w3, pair).functions.token0().call()
        env.usdtz_is0[st_] = to_checksum_address(t0) == to_checksum_address(o.usdtz)
    venues = {o.pool, o.uniswap_router, o.desk, o.pair_usdtz_cusdt, o.pair_usdtz_cusdc, o.pair_weth_cusdt, o.pair_weth_cusdc}
    env.spenders = {to_checksum_address(a) for a in venues | {roles["owner"], roles["operator"], roles["guardian"]}}
    # where value may go: the pool and its aTokens, the router's pairs, the desk, the wrappers, the owner
    env.allowed_recipients = {to_checksum_address(a) for a in
                              venues | set(env.a_tokens.values()) | {m.weth9, m.weth10, roles["owner"]}}
    # burns (Transfer to 0x0) are allowed only for unwraps and Aave's own accounting tokens
    env.burnable = {to_checksum_address(a) for a in [m.weth9, m.weth10, *env.a_tokens.values(), *env.debt_tokens.values()]}
    rpc(w3, "anvil_autoImpersonateAccount", [True])
    # the clock stands still between explicit jumps (see the module docstring)
    rpc(w3, "anvil_setBlockTimestampInterval", [0])
    # the kit's named roles send their own transactions (gas)
    for who in (m.feed_owner, o.issuer, o.desk_operator, o.aave_admin, o.desk):
        set_balance(w3, who, 10**21)

    # --- the outsiders ---------------------------------------------------------------------
    def approve(who: str, token: str, spender: str) -> None:
        env.must(who, erc20(w3, token).functions.approve(spender, MAX_UINT)._encode_transaction_data(), to=token,
                 what=f"approve {token}")

    att = roles["attacker"]
    for name, amount in (("cUSDT", 100_000_000 * USD6), ("cUSDC", 100_000_000 * USD6), ("USDTz", 100_000_000 * USD6),
                         ("WETH9", 50_000 * ETH)):
        fund(w3, env.tokens[name], att, amount)
        approve(att, env.tokens[name], o.uniswap_router)
    ben = roles["benefactor"]
    for name in ("cUSDT", "cUSDC"):
        fund(w3, env.tokens[name], ben, 50_000_000 * USD6)
        approve(ben, env.tokens[name], o.pool)
    dr = roles["drainer"]
    for name in ("WETH9", "WETH10"):
        fund(w3, env.tokens[name], dr, 200_000 * ETH)
        approve(dr, env.tokens[name], o.pool)
    tr = roles["trader"]
    for name in ("cUSDT", "cUSDC", "USDTz"):
        fund(w3, env.tokens[name], tr, 1_000_000_000 * USD6)
        approve(tr, env.tokens[name], o.uniswap_router)
    # the owner's own stablecoin for ownerRepay (and the exit path), approved to the vault
    for name in ("cUSDT", "cUSDC"):
        fund(w3, env.tokens[name], roles["owner"], 50_000_000 * USD6)
        approve(roles["owner"], env.tokens[name], vault.address)
    # the pool admin lets the WETH reserves be borrowed (so they can be borrowed dry)
    conf = o.configurator_contract(w3)
    for w in (m.weth9, m.weth10):
        env.must(o.aave_admin, conf.functions.setReserveBorrowing(w, True)._encode_transaction_data(),
                 to=o.pool_configurator, what="setReserveBorrowing")

    # --- initial state: funded, split, the TWAP window passed --------------------------------
    own_ = roles["owner"]
    env.must(own_, env.enc("fund"), value=FUND_WEI, what="fund")
    rc = env.must(roles["operator"], env.enc("split"), what="split")
    price = env.lens.functions.riskView(vault.address).call()[env.rv_fields.index("ethPrice")]
    for lg in rc["logs"]:
        d = env.events.decode(lg) if to_checksum_address(lg["address"]) == vault.address else None
        if d and d[0] == "Split":
            env.split = {**d[1], "price": price}
        if d and d[0] == "Observed":
            name = "cUSDT" if to_checksum_address(d[1]["stable"]) == to_checksum_address(m.cusdt) else "cUSDC"
            env.obs0[name] = (d[1]["cumulative"], d[1]["timestamp"])
    assert env.split, "no Split event"
    pm = env.lens.functions.initialParams(vault.address).call()
    env.initial = dict(zip(env.pm_fields, pm))
    # loosenDelay's floor: 1 hour in the v2 spec (the guardian's least time to revoke); builds of
    # v2 before that change had 0. Asked of the build under test, once: is 3599 s refused?
    probe = env.revert_reason(own_, env.enc("setParam", PARAMS.index("loosenDelay"), 3_599))
    FLOOR["loosenDelay"] = 3_600 if probe == err("ParamInvalid(uint8,uint256)", PARAMS.index("loosenDelay"), 3_599) else 0
    env.core0 = FUND_WEI * RISK["coreBps"] // 10_000
    env.jump(RISK["twapWindow"])
    env.root_snap = rpc(w3, "evm_snapshot")
    env.root_block = int(env.call1("eth_blockNumber", []), 16)
    _ENV = env
    return env


def reset(env: Env) -> None:
    rpc(env.w3, "evm_revert", [env.root_snap])
    env.root_snap = rpc(env.w3, "evm_snapshot")


# --- the state read ------------------------------------------------------------------------------

def _bal(who: str) -> bytes:
    return sel("balanceOf(address)") + encode(["address"], [who])


def u256(raw: str | None) -> int:
    return int(raw, 16) if raw not in (None, "0x") else -1


class Reader:
    """Pre-encoded batch of everything the invariants need; :meth:`read` returns a flat dict."""

    def __init__(self, env: Env):
        self.env = env
        v = env.vault_addr
        lens = env.lens_addr
        self.plan: list[tuple[str, tuple[str, list], Any]] = []  # (key, rpc call, decoder)
        self.log_from = env.root_block + 1

        def add(key: str, to: str, data: bytes, dec=u256) -> None:
            self.plan.append((key, env.ecall(to, data), dec))

        def struct(type_: str, fields: list[str]):
            def dec(raw: str | None) -> dict | None:
                if raw in (None, "0x"):
                    return None
                return dict(zip(fields, decode([type_], bytes.fromhex(raw[2:]))[0]))
            return dec

        def tup(*types: str):
            def dec(raw: str | None):
                if raw in (None, "0x"):
                    return None
                return decode(list(types), bytes.fromhex(raw[2:]))
            return dec

        self.plan.append(("block", ("eth_getBlockByNumber", ["latest", False]), lambda b: (int(b["number"], 16), int(b["timestamp"], 16))))
        self.plan.append(("eth.vault", ("eth_getBalance", [v, "latest"]), u256))
        self.plan.append(("eth.weth9", ("eth_getBalance", [env.m.weth9, "latest"]), u256))
        self.plan.append(("eth.weth10", ("eth_getBalance", [env.m.weth10, "latest"]), u256))
        self.plan.append(("eth.owner", ("eth_getBalance", [env.roles["owner"], "latest"]), u256))
        # the vault's own word of scaled debt books (slot 0: uint72 scaledDebtT, uint72 scaledDebtC)
        self.plan.append(("slot0", ("eth_getStorageAt", [v, "0x0", "latest"]), u256))
        # through the lens
        add("rv", lens, sel("riskView(address)") + encode(["address"], [v]), struct(env.rv_type, env.rv_fields))
        add("pm", lens, sel("params(address)") + encode(["address"], [v]), struct(env.pm_type, env.pm_fields))
        add("queued", lens, sel("queuedParams(address)") + encode(["address"], [v]), tup("uint256[11]", "uint256[11]"))
        for name in ("WETH9", "WETH10"):
            add(f"coll.{name}", lens, sel("collateralOf(address,address)") + encode(["address", "address"], [v, env.tokens[name]]))
        for name in ("cUSDT", "cUSDC"):
            add(f"stable.{name}", lens, sel("stableOf(address,address)") + encode(["address", "address"], [v, env.tokens[name]]))
            add(f"twap.{name}", lens, sel("twap(address,address)") + encode(["address", "address"], [v, env.tokens[name]]),
                tup("uint256", "uint256", "uint256", "uint256", "uint256", "uint256"))
        # the vault's own getters (extension)
        add("p.phase", v, sel("phase()"))
        add("p.paused", v, sel("paused()"))
        # raw truth
        for name, t in env.tokens.items():
            add(f"bal.{name}", t, _bal(v))
        for name, t in env.a_tokens.items():
            add(f"abal.{name}", t, _bal(v))
        for name, t in env.debt_tokens.items():
            add(f"debt.{name}", t, _bal(v))
            add(f"sdebt.{name}", t, sel("scaledBalanceOf(address)") + encode(["address"], [v]))
            add(f"idx.{name}", env.o.pool, sel("getReserveNormalizedVariableDebt(address)") + encode(["address"], [env.tokens[name]]))
            add(f"own.{name}", env.tokens[name], _bal(env.roles["owner"]))
        for name in ("WETH9", "WETH10"):  # the WETH reserves' liquidity
            add(f"liq.{name}", env.tokens[name], _bal(env.a_tokens[name]))
        for name, pair in env.usdtz_pairs.items():
            add(f"res.{name}", pair, sel("getReserves()"), tup("uint112", "uint112", "uint32"))
            add(f"cum0.{name}", pair, sel("price0CumulativeLast()"))
            add(f"cum1.{name}", pair, sel("price1CumulativeLast()"))
        for name, t in (("cUSDT", env.m.cusdt), ("cUSDC", env.m.cusdc), ("USDTz", env.o.usdtz), ("WETH9", env.m.weth9)):
            add(f"att.{name}", t, _bal(env.roles["attacker"]))

        def dec_feed(raw: str | None):
            if raw in (None, "0x"):
                return None
            _r, ans, _s, upd, _a = decode(["uint256", "int256", "uint256", "uint256", "uint256"], bytes.fromhex(raw[2:]))
            return (ans, upd)

        add("feed", env.m.eth_usd_feed, sel("latestRoundData()"), dec_feed)
        add("gua", env.o.pool, sel("getUserAccountData(address)") + encode(["address"], [v]), tup(*["uint256"] * 6))
        # allowances: every step reads the (token, spender) pairs the vault has ever approved (an
        # allowance only comes from the holder's own approve, which every token here logs); the
        # whole token x spender grid (every venue and role) is read by `all_allowances`
        self.allowance_keys: list[tuple[str, str]] = []
        self.spenders: set[str] = set(env.spenders)

    def watch(self, token: str, spender: str) -> None:
        """Read the vault's allowance of ``token`` to ``spender`` at every step from now on."""
        env = self.env
        token, spender = to_checksum_address(token), to_checksum_address(spender)
        self.spenders.add(spender)
        if (token, spender) in self.allowance_keys:
            return
        self.allowance_keys.append((token, spender))
        self.plan.append((f"allow.{token}.{spender}", env.ecall(token, sel("allowance(address,address)") + encode(
            ["address", "address"], [env.vault_addr, spender])), lambda raw: int(raw, 16) if raw not in (None, "0x") else 0))

    def all_allowances(self) -> dict[tuple[str, str], int]:
        """The vault's allowance of every token and aToken to every venue, role and spender seen."""
        env = self.env
        keys = [(to_checksum_address(t), sp) for t in list(env.tokens.values()) + list(env.a_tokens.values())
                for sp in sorted(self.spenders)]
        raws = env.batch([env.ecall(t, sel("allowance(address,address)") + encode(["address", "address"], [env.vault_addr, sp]))
                          for t, sp in keys])
        return {k: u256(r) for k, r in zip(keys, raws)}

    def reset_logs(self) -> None:
        self.log_from = self.env.root_block + 1

    def read(self) -> dict:
        calls = [c for _k, c, _d in self.plan]
        calls.append(("eth_getLogs", [{"address": self.env.vault_addr, "fromBlock": hex(self.log_from), "toBlock": "latest"}]))
        raws = self.env.batch(calls)
        out = {k: d(r) for (k, _c, d), r in zip(self.plan, raws)}
        logs = raws[-1] or []
        # only logs up to the block read (a block mined between two calls of the batch waits for the next read)
        out["logs"] = [lg for lg in logs if int(lg["blockNumber"], 16) <= out["block"][0]]
        self.log_from = out["block"][0] + 1
        return out


def fingerprint(s: dict, drop: tuple[str, ...] = ()) -> dict:
    """Everything that must not move on a reverted leg (block number, logs, ETH of accounts
    paying gas and allowances excluded)."""
    # (allowances: checked on their own after every step; a spender seen for the first time in a
    # leg is read after it only)
    out = {k: v for k, v in s.items()
           if k not in ("block", "logs", "eth.owner", "eth.weth9", "eth.weth10") and not k.startswith("allow.")}
    # storage word 0 packs the scaled debt books (low 144 bits) with the phase, the ladder's rung
    # and legSeq (compared through the risk view, where `drop` may leave them out)
    out["slot0"] = s["slot0"] & (2**144 - 1)
    rv = s["rv"]
    out["rv"] = {k: v for k, v in rv.items() if k not in drop} if rv is not None else None
    return out


def transfers(rc: dict, frm: str | None = None, to: str | None = None, token: str | None = None) -> list[tuple[str, str, str, int]]:
    """(token, from, to, amount) of the receipt's Transfer logs, filtered."""
    out = []
    for lg in rc.get("logs", []):
        tp = lg["topics"]
        if len(tp) == 3 and tp[0] == TRANSFER_TOPIC:
            t, f, r = to_checksum_address(lg["address"]), topic_addr(tp[1]), topic_addr(tp[2])
            if (frm is None or f == frm) and (to is None or r == to) and (token is None or t == to_checksum_address(token)):
                out.append((t, f, r, int(lg["data"], 16) if lg["data"] != "0x" else 0))
    return out


def approvals_by(rc: dict, who: str) -> list[tuple[str, str]]:
    out = []
    for lg in rc.get("logs", []):
        tp = lg["topics"]
        if len(tp) == 3 and tp[0] == APPROVAL_TOPIC and topic_addr(tp[1]) == who:
            out.append((to_checksum_address(lg["address"]), topic_addr(tp[2])))
    return out


def vault_events(env: Env, rc_or_logs: Any) -> list[tuple[str, dict]]:
    logs = rc_or_logs.get("logs", []) if isinstance(rc_or_logs, dict) else rc_or_logs
    out = []
    for lg in logs:
        if to_checksum_address(lg["address"]) != env.vault_addr:
            continue
        d = env.events.decode(lg)
        if d:
            out.append(d)
    return out
