"""Export the kit's chain (the Chain 138 mirror + the overlay, with the invariant suite's outsiders
funded) as a forge alloc for the in-process invariant suite (tests/forge).

``python -m tools.forge.state [DIR]`` starts the kit (:func:`dealvault.kit.start_kit`) on a free
port, gives the outsiders their balances and approvals (what tests/fuzz/harness.py's setup does,
minus the vault: the suite deploys the vault itself, from forge's own compilation of contracts/),
then writes into DIR (default ``$DV_FORGE_STATE`` or ``.forge/state``):

* ``alloc.json``: every account of the chain (code, storage, balance, nonce) in the genesis alloc
  format ``vm.loadAllocs`` installs;
* ``kit.json``: the addresses (mirror, overlay, roles), the block number and timestamp of the dump
  and the chain id, read by the suite's setUp with ``vm.parseJson*``;
* ``inputs.sha256``: the hash of everything that built them (this file, the kit's sources, the
  artifacts' lock file and the test contracts); a second run with the same hash does nothing.

Nothing here reads or writes contracts/DealVault*.sol: a mutant of the vault reuses the same state.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
ETH = 10**18
USD6 = 10**6
MAX_UINT = 2**256 - 1


def _inputs() -> list[Path]:
    files = [Path(__file__), ROOT / "package-lock.json", ROOT / "dealvault" / "artifacts.py"]
    files += sorted((ROOT / "dealvault" / "kit").glob("*.py"))
    files += sorted((ROOT / "contracts" / "test").glob("*.sol"))
    return files


def inputs_hash() -> str:
    """sha256 over the paths (relative to the repo root) and contents of every input."""
    h = hashlib.sha256()
    for f in _inputs():
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def _hex(v: int | str) -> str:
    return v if isinstance(v, str) else hex(v)


def _write(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (copies of the repo may read a shared state dir)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def build(out: Path) -> dict:
    """Start the kit, set up the outsiders, dump the chain into ``out``; return kit.json's dict."""
    from eth_utils import to_checksum_address
    from web3 import Web3

    from dealvault.kit import start_kit
    from dealvault.kit.evm import rpc, set_balance
    from dealvault.kit.funding import fund
    from dealvault.kit.overlay import erc20

    kit = start_kit()
    try:
        w3 = kit.w3
        m, o = kit.mirror, kit.overlay
        assert o is not None
        accts = w3.eth.accounts
        roles = {"deployer": accts[0], "owner": accts[1], "operator": accts[2], "guardian": accts[3],
                 "stranger": accts[5], "attacker": accts[6], "benefactor": accts[7], "drainer": accts[8],
                 "trader": accts[9]}
        rpc(w3, "anvil_autoImpersonateAccount", [True])
        for who in (m.feed_owner, o.issuer, o.desk_operator, o.aave_admin, o.desk, o.stable_feed_owner):
            set_balance(w3, who, 10**21)

        def send(sender: str, to: str, data: str) -> None:
            h = w3.eth.send_transaction({"from": sender, "to": to, "data": data, "gas": 3_000_000})
            rc = w3.eth.wait_for_transaction_receipt(h)
            if rc["status"] != 1:
                raise RuntimeError(f"setup transaction from {sender} to {to} reverted")

        def approve(who: str, token: str, spender: str) -> None:
            send(who, token, erc20(w3, token).functions.approve(spender, MAX_UINT)._encode_transaction_data())

        tokens = {"WETH9": m.weth9, "WETH10": m.weth10, "cUSDT": m.cusdt, "cUSDC": m.cusdc, "USDTz": o.usdtz}
        att = roles["attacker"]
        for name, amount in (("cUSDT", 100_000_000 * USD6), ("cUSDC", 100_000_000 * USD6),
                             ("USDTz", 100_000_000 * USD6), ("WETH9", 50_000 * ETH)):
            fund(w3, tokens[name], att, amount)
            approve(att, tokens[name], o.uniswap_router)
        for name in ("cUSDT", "cUSDC"):
            fund(w3, tokens[name], roles["benefactor"], 50_000_000 * USD6)
            approve(roles["benefactor"], tokens[name], o.pool)
        for name in ("WETH9", "WETH10"):
            fund(w3, tokens[name], roles["drainer"], 200_000 * ETH)
            approve(roles["drainer"], tokens[name], o.pool)
        for name in ("cUSDT", "cUSDC", "USDTz"):
            fund(w3, tokens[name], roles["trader"], 1_000_000_000 * USD6)
            approve(roles["trader"], tokens[name], o.uniswap_router)
        for name in ("cUSDT", "cUSDC"):  # the owner's own stablecoin (ownerRepay); the suite approves the vault
            fund(w3, tokens[name], roles["owner"], 50_000_000 * USD6)
        # the pool admin lets the WETH reserves be borrowed (so they can be borrowed dry)
        conf = o.configurator_contract(w3)
        for wr in (m.weth9, m.weth10):
            send(o.aave_admin, o.pool_configurator,
                 conf.functions.setReserveBorrowing(wr, True)._encode_transaction_data())

        block = w3.eth.get_block("latest")
        raw = rpc(w3, "anvil_dumpState")
        state = json.loads(gzip.decompress(bytes.fromhex(raw[2:] if raw.startswith("0x") else raw)))
        alloc = {}
        for addr, acct in state["accounts"].items():
            alloc[to_checksum_address(addr)] = {
                "balance": _hex(acct.get("balance", 0)),
                "nonce": _hex(acct.get("nonce", 0)),
                "code": acct.get("code") or "0x",
                "storage": {k: v for k, v in (acct.get("storage") or {}).items()},
            }
        meta = {
            "chainId": w3.eth.chain_id,
            "block": block["number"],
            "timestamp": block["timestamp"],
            "roles": roles,
            "weth9": m.weth9, "weth10": m.weth10, "cusdt": m.cusdt, "cusdc": m.cusdc,
            "ethUsdFeed": m.eth_usd_feed, "feedOwner": m.feed_owner,
            "usdtz": o.usdtz, "pool": o.pool, "poolConfigurator": o.pool_configurator, "aaveOracle": o.aave_oracle,
            "router": o.uniswap_router, "factory": o.uniswap_factory, "desk": o.desk, "stableFeed": o.stable_feed,
            "pairUsdtzCusdt": o.pair_usdtz_cusdt, "pairUsdtzCusdc": o.pair_usdtz_cusdc,
            "pairWethCusdt": o.pair_weth_cusdt, "pairWethCusdc": o.pair_weth_cusdc,
            "aWeth9": o.a_tokens["WETH"], "aWeth10": o.a_tokens["WETH10"],
            "aCusdt": o.a_tokens["cUSDT"], "aCusdc": o.a_tokens["cUSDC"],
            "debtCusdt": o.variable_debt_tokens["cUSDT"], "debtCusdc": o.variable_debt_tokens["cUSDC"],
            "aaveAdmin": o.aave_admin, "issuer": o.issuer, "deskOperator": o.desk_operator,
            "stableFeedOwner": o.stable_feed_owner,
        }
        meta = {k: ({r: Web3.to_checksum_address(a) for r, a in v.items()} if isinstance(v, dict)
                    else Web3.to_checksum_address(v) if isinstance(v, str) else v) for k, v in meta.items()}
        out.mkdir(parents=True, exist_ok=True)
        _write(out / "alloc.json", json.dumps(alloc))
        _write(out / "kit.json", json.dumps(meta, indent=1))
        return meta
    finally:
        kit.stop()


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else os.environ.get("DV_FORGE_STATE", ROOT / ".forge" / "state"))
    want = inputs_hash()
    stamp = out / "inputs.sha256"
    if stamp.exists() and stamp.read_text().strip() == want and (out / "alloc.json").exists():
        print(f"forge state: {out} is up to date")
        return 0
    t0 = time.perf_counter()
    build(out)
    _write(stamp, want + "\n")
    print(f"forge state: wrote {out} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
