"""`make bench`, item 3: one guard poll (dealvault.guard.read.read_all) over 1, 10, 100 and 1,000
vaults on a Chain 138 mirror: HTTP round trips and wall time per poll (median of --runs), with the
lens reads in a JSON-RPC batch and packed into Multicall3 aggregate3 calls.

Run:  .venv/bin/python -m bench.guard          (writes bench/results.json["guard"])

The vaults: the demo deal (deals/example.yaml) deployed from ape's build with a DealVaultLens
(bench.harness.deploy_from_artifact), run with run_deal to the buy, then one rung-1 tranche
redeemed: MONETIZING with USDTz held and an Aave position, so every probe applies (the desk probe
too: the poll's second round trip). Then N-1 copies: the vault's runtime code (its immutables,
hence its tokens, are in it) with anvil_setCode; every non-zero slot of the vault's own storage
(slots 0..255: the lens reads slots 0..observationC through extSloads on the vault itself) with
anvil_setStorageAt; and the per-address state the lens and the probes read elsewhere, remapped
to the copy: for each token / aToken / debt token / the pool, every non-zero word of
``mapping(address => ...)`` at keccak(vault, p) + i (p < 256, i < 3) is written at
keccak(copy, p) + i (balances, Aave user state and config, FiatToken balance-and-blacklist);
the ETH balance too. Each copy's riskView is checked equal to the original's (all 40 fields) and
its probes None, in every poll.

Goal (issue 15): a constant number of round trips, at most 1 s per poll for 1,000 vaults.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from eth_utils import keccak, to_checksum_address
from web3 import HTTPProvider, Web3

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import DEAL, RESULTS, deploy_from_artifact, report  # noqa: E402
from dealvault.guard.model import Target  # noqa: E402
from dealvault.guard.read import DEFAULT_MODE, read_all  # noqa: E402
from dealvault.run.chain import batch  # noqa: E402

SIZES = (1, 10, 100, 1000)
MODES = ("batch", "multicall")
GOAL_S = 1.0
SLOTS = 256  # the vault's own slots copied (DealVaultStorage uses far fewer)
MAPPING_BASES = 256
STRUCT_WORDS = 3
CHUNK = 2000  # JSON-RPC requests per batch while copying
CODE_CHUNK = 20


class Counting(HTTPProvider):
    """Counts HTTP requests (a batch is one)."""

    requests = 0

    def make_request(self, method: Any, params: Any) -> Any:
        self.requests += 1
        return super().make_request(method, params)

    def make_batch_request(self, requests: Any) -> Any:
        self.requests += 1
        return super().make_batch_request(requests)


def _ok(answers: list[Any]) -> list[Any]:
    bad = [a for a in answers if type(a).__name__ == "RpcFailure"]
    if bad:
        raise RuntimeError(f"{len(bad)} requests failed, first: {bad[0]}")
    return answers


def send_all(w3: Web3, calls: list[tuple[str, list[Any]]], chunk: int = CHUNK) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(calls), chunk):
        out += _ok(batch(w3, calls[i:i + chunk]))
    return out


def _word(a: str) -> bytes:
    return bytes(12) + bytes.fromhex(a[2:])


def _slot(key: str, base: int, i: int) -> str:
    return hex(int.from_bytes(keccak(_word(key) + base.to_bytes(32, "big")), "big") + i)


def position(kit: Any, tmp: Path) -> tuple[Target, Any]:
    """The demo deal deployed and run to MONETIZING with USDTz held: its Target and Venues."""
    from dealvault.accounts import ape_account
    from dealvault.deploy import deal_params
    from dealvault.kit.evm import act_as
    from dealvault.record import open_record
    from dealvault.run import Venues, run_deal
    from dealvault.signer import ApeAccountSigner
    from dealvault.spec import load_spec
    from dealvault.vault import Phase, VaultClient, vault_abi

    w3 = kit.w3
    spec = load_spec(DEAL)
    record = deploy_from_artifact(w3, kit, deal_params(spec, resolver=lambda a: str(ape_account(a).address), path=DEAL))
    v = Venues.from_deploy_record(record)
    op = ApeAccountSigner(ape_account(spec.roles.operator.value), w3)
    owner = ApeAccountSigner(ape_account(spec.roles.owner.value), w3)
    rec = open_record(f"sqlite:///{tmp}/guard.db")
    try:
        report = run_deal(spec, w3=w3, operator=op, owner=owner, record=rec, venues=v, until="buy")
    finally:
        rec.close()
    if report.exit_code != 0:
        raise RuntimeError(f"run_deal: {report.status} ({report.exit_code})")
    client = VaultClient(w3, v.vault, str(v.lens))
    vault = w3.eth.contract(address=v.vault, abi=vault_abi())
    act_as(w3, str(op.address), vault.functions.redeem(v.cusdt, client.params().rungs[0]))
    r = client.risk_view()
    if r.phase != Phase.MONETIZING or r.usdtzHeld == 0:
        raise RuntimeError(f"the vault is {r.phase.name} with {r.usdtzHeld} USDTz, not MONETIZING with USDTz")
    t = Target(spec.deal_id, v.vault, str(v.lens), v.cusdt, v.usdtz, v.desk, str(op.address))
    return t, v


def copy_vault(w3: Web3, v: Any, n: int) -> list[str]:
    """n copies of the vault at fresh addresses (see the module docstring); their addresses."""
    vault = to_checksum_address(v.vault)
    ov = per_address_contracts(w3, v)
    own_slots = [hex(i) for i in range(SLOTS)]
    ext = [(c, p, i) for c in ov for p in range(MAPPING_BASES) for i in range(STRUCT_WORDS)]
    reads = [("eth_getStorageAt", [vault, s, "latest"]) for s in own_slots]
    reads += [("eth_getStorageAt", [c, _slot(vault, p, i), "latest"]) for c, p, i in ext]
    reads += [("eth_getCode", [vault, "latest"]), ("eth_getBalance", [vault, "latest"])]
    got = send_all(w3, reads)
    code, balance = got[-2], got[-1]
    own = [(s, val) for s, val in zip(own_slots, got[:SLOTS]) if int(val, 16)]
    mapped = [(c, p, i, val) for (c, p, i), val in zip(ext, got[SLOTS:-2]) if int(val, 16)]
    copies = [to_checksum_address("0x" + keccak(text=f"guard-bench-vault-{k}")[:20].hex()) for k in range(n)]
    send_all(w3, [("anvil_setCode", [a, code]) for a in copies], chunk=CODE_CHUNK)  # ~50 kB each: keep requests small
    writes: list[tuple[str, list[Any]]] = []
    for a in copies:
        writes.append(("anvil_setBalance", [a, balance]))
        writes += [("anvil_setStorageAt", [a, s, val]) for s, val in own]
        writes += [("anvil_setStorageAt", [c, _slot(a, p, i), val]) for c, p, i, val in mapped]
    send_all(w3, writes)
    print(f"copied the vault {n} times: {len(own)} own slots, {len(mapped)} per-address words elsewhere "
          f"({len({c for c, *_ in mapped})} contracts)", file=sys.stderr)
    return copies


def per_address_contracts(w3: Web3, v: Any) -> list[str]:
    """Every contract the lens or a probe reads the vault's per-address state from: the tokens,
    the aTokens and debt tokens (from the vault's setup), the pool."""
    from dealvault.vault import VaultClient

    ven = VaultClient(w3, v.vault, str(v.lens)).setup().venues
    return sorted({to_checksum_address(a) for a in (ven.weth9, ven.weth10, ven.cusdt, ven.cusdc, ven.usdtz, ven.pool, ven.aWeth9,
                                                     ven.aWeth10, ven.debtCusdt, ven.debtCusdc)})


def run(runs: int) -> dict[str, Any]:
    from dealvault.kit import start_kit

    t_start = time.perf_counter()
    kit = start_kit(overlay=True)
    try:
        with tempfile.TemporaryDirectory(prefix="dealvault-bench-guard-") as tmp:
            target, venues = position(kit, Path(tmp))
        copies = copy_vault(kit.w3, venues, max(SIZES) - 1)
        prov = Counting(kit.node.url, request_kwargs={"timeout": 120})
        w3 = Web3(prov)
        ref = read_all(w3, [target], mode="batch").readings[target.deal_id]
        targets = [target] + [Target(f"copy-{k}", a, target.lens, target.stable, target.usdtz, target.desk, target.operator)
                              for k, a in enumerate(copies)]
        rows: dict[str, Any] = {}
        for mode in MODES:
            for n in SIZES:
                walls, trips, http = [], set(), set()
                for r in range(runs + 1):  # the first run warms caches, not counted
                    before = prov.requests
                    t0 = time.perf_counter()
                    poll = read_all(w3, targets[:n], mode=mode)  # type: ignore[arg-type]
                    wall = time.perf_counter() - t0
                    if poll.errors or len(poll.readings) != n:
                        raise RuntimeError(f"{mode} n={n}: errors {list(poll.errors.items())[:3]}")
                    for g in poll.readings.values():
                        if g.risk != ref.risk or g.params != ref.params or g.probes != ref.probes:
                            raise RuntimeError(f"{mode} n={n}: {g.target.vault} reads differently from the original")
                    if r:
                        walls.append(wall)
                        trips.add(poll.round_trips)
                        http.add(prov.requests - before)
                rows.setdefault(mode, {})[str(n)] = {
                    "round_trips": sorted(trips), "http_requests": sorted(http),
                    "ms_per_poll": round(statistics.median(walls) * 1000, 1),
                    "ms_runs": [round(x * 1000, 1) for x in walls],
                }
    finally:
        kit.stop()
    top = str(max(SIZES))
    faster = min(MODES, key=lambda m: rows[m][top]["ms_per_poll"])
    return {
        "vaults": list(SIZES), "runs": runs, "modes": rows, "default_mode": DEFAULT_MODE, "faster_at_1000": faster,
        "probes_of_each_vault": "riskView + params (lens), USDTz transfer, stablecoin transfer, desk redeem (MONETIZING)",
        "goal_s_per_poll_1000": GOAL_S,
        "meets_goal": all(len(rows[DEFAULT_MODE][str(n)]["round_trips"]) == 1 for n in SIZES)
        and len({rows[DEFAULT_MODE][str(n)]["round_trips"][0] for n in SIZES}) == 1
        and rows[DEFAULT_MODE][top]["ms_per_poll"] <= GOAL_S * 1000,
        "load_average_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
        "seconds": round(time.perf_counter() - t_start, 1),
    }


def table(r: dict[str, Any]) -> str:
    lines = [f"Guard poll (read_all), medians of {r['runs']} polls, every vault MONETIZING (all probes apply)", "",
             "| vaults | " + " | ".join(f"{m} round trips | {m} ms/poll" for m in MODES) + " |",
             "|---:|" + "---:|---:|" * len(MODES)]
    for n in r["vaults"]:
        cells = []
        for m in MODES:
            row = r["modes"][m][str(n)]
            cells += ["/".join(map(str, row["round_trips"])), f"{row['ms_per_poll']:,.1f}"]
        lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    lines.append(f"\nfaster at 1,000 vaults: {r['faster_at_1000']}; read_all's default: {r['default_mode']}; "
                 f"goal (constant round trips, <= {r['goal_s_per_poll_1000']:.0f} s per poll at 1,000): "
                 f"{'met' if r['meets_goal'] else 'NOT met'}; load average {r['load_average_1m']} on {r['cpus']} CPUs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="polls per measurement (median)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    res = run(args.runs)
    return report(Path(args.out), "guard", res, table(res))


if __name__ == "__main__":
    raise SystemExit(main())
