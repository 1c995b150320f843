"""The deal spec: the example loads; every kind of bad input is a SpecError naming the key, the
bad value and the allowed range; the vault's on-chain parameters rule (spec only tighter)."""

from __future__ import annotations

import copy
import dataclasses
import re
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dealvault import spec as S
from dealvault.errors import ExitCode, InputError
from dealvault.spec import (
    RISK_PARAMS_FIELDS,
    DealSpec,
    NetworkSpec,
    SpecError,
    VaultParams,
    check_against_vault,
    load_spec,
    parse_spec,
)
from dealvault.spec.model import VAULT_FIELDS
from dealvault.spec.netconfig import ConfigError
from dealvault.vault import params as P

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deals" / "example.yaml"

A1 = "0x1111111111111111111111111111111111111111"
A2 = "0x2222222222222222222222222222222222222222"
A3 = "0x3333333333333333333333333333333333333333"
CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"  # EIP-55 test vector


def base() -> dict:
    """A minimal valid spec (mainnet, addresses)."""
    return {
        "deal_id": "deal-1",
        "network": "chain138:mainnet:node",
        "roles": {"owner": A1, "operator": A2, "guardian": A3},
        "vault": {"eth_floor_price": "1500"},
        "vault_address": "deploy",
        "capital": "10",
        "wrapper": "WETH9",
        "stablecoin": "cUSDT",
        "target_ltv_bps": 2500,
    }


def with_(path: str, value, spec: dict | None = None) -> dict:
    spec = copy.deepcopy(spec or base())
    *parents, last = path.split(".")
    node = spec
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return spec


def without(path: str) -> dict:
    spec = base()
    *parents, last = path.split(".")
    node = spec
    for p in parents:
        node = node[p]
    del node[last]
    return spec


def err(spec: dict) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(spec)
    return info.value


# ------------------------------------------------------------------------------- good input


def test_example_loads():
    spec = load_spec(EXAMPLE)
    assert isinstance(spec, DealSpec)
    assert spec.deal_id == "demo-001"
    assert spec.network.local and spec.network.chain_id == 138
    assert spec.roles.operator.is_alias and spec.roles.operator.value == "TEST::1"
    assert spec.deploy and spec.vault_address is None
    assert spec.capital_wei == 5000 * 10**18
    assert spec.target_ltv_bps <= spec.vault.max_ltv_bps <= 3000
    assert spec.vault.rungs == (50_000 * 10**6, 250_000 * 10**6, 1_000_000 * 10**6)
    assert spec.vault.sell_floor_price == Decimal("0.85")
    # DealVault v2's keys: the demo's short TWAP window (the local mirror's clock is advanced to it)
    v = spec.vault
    assert (v.max_operator_loss_bps, v.twap_window, v.loosen_delay, v.min_tranche) == (50, 300, 86_400, 1_000 * 10**6)


def test_example_climbs_all_three_rungs_within_the_caps():
    """The demo arithmetic: at ETH $3000 and USDTz at $0.80 the borrowed cUSDT buys more USDTz
    than the three rungs together, and the exposure stays under its cap."""
    spec = load_spec(EXAMPLE)
    eth_usd = Decimal(3000)
    working_eth = Decimal(spec.bucket_wei()["working"]) / Decimal(10**18)
    collateral_usd = working_eth * eth_usd
    borrow_usd = collateral_usd * spec.target_ltv_bps / 10_000
    usdtz = borrow_usd / Decimal("0.80")
    ladder_total = Decimal(sum(spec.vault.rungs)) / 10**6
    assert usdtz * spec.monetize.monetize_bps / 10_000 > ladder_total
    nav = spec.capital_eth * eth_usd - borrow_usd + borrow_usd  # ETH at price - debt + USDTz at cost
    assert usdtz * 10_000 <= spec.vault.max_exposure_bps * nav
    assert 1 - Decimal("0.80") >= Decimal(spec.min_discount_bps) / 10_000


def test_risk_params_tuple_matches_the_struct_order():
    spec = load_spec(EXAMPLE)
    t = spec.risk_params_tuple()
    assert len(t) == len(RISK_PARAMS_FIELDS) == 16  # v1's 12 + maxOperatorLossBps, twapWindow, loosenDelay, minTranche
    d = dict(zip(RISK_PARAMS_FIELDS, t))
    assert d == spec.vault.risk_params_dict()
    assert (d["maxLtvBps"], d["maxExposureBps"]) == (3000, 2500)
    assert (d["coreBps"], d["workingBps"], d["opportunisticBps"]) == (5000, 3000, 2000)
    assert d["rungs"] == [50_000_000_000, 250_000_000_000, 1_000_000_000_000]
    assert d["sellFloorPrice"] == 850_000  # 6 dp
    assert d["ethFloorPrice"] == 1500 * 10**8  # 8 dp
    assert (d["maxOperatorLossBps"], d["twapWindow"], d["loosenDelay"]) == (50, 300, 86_400)
    assert d["minTranche"] == 1_000_000_000  # 1,000 stablecoin units, 6 dp
    assert all(isinstance(v, int) for k, v in d.items() if k != "rungs")


def test_risk_params_order_matches_idealvault_sol():
    src = ROOT / "contracts" / "interfaces" / "IDealVault.sol"
    if not src.exists():
        pytest.skip("contracts/interfaces/IDealVault.sol not written yet")
    body = re.search(r"struct RiskParams \{(.*?)\}", src.read_text(), re.S).group(1)
    names = re.findall(r"^\s*[\w\[\]0-9]+\s+(\w+);", body, re.M)
    assert tuple(names) == RISK_PARAMS_FIELDS


def test_defaults_and_conversions():
    spec = parse_spec(base())
    v = spec.vault
    assert (v.max_ltv_bps, v.max_exposure_bps) == (3000, 2500)
    assert (v.core_bps, v.working_bps, v.opportunistic_bps) == (5000, 3000, 2000)
    assert spec.min_discount_bps == v.min_discount_bps and spec.max_slippage_bps == v.max_slippage_bps
    assert spec.confirmations == 1 and spec.gas.is_auto
    assert spec.ladder.rungs == 3 and spec.monetize.monetize_bps == 10_000 and spec.monetize.keep_bps == 0
    assert spec.capital_wei == 10 * 10**18
    # v2 defaults: 50 bps loss budget, 1800 s TWAP window, 1 day loosening delay, 1,000 minimum tranche
    assert (v.max_operator_loss_bps, v.twap_window, v.loosen_delay, v.min_tranche) == (50, 1800, 86_400, 1_000 * 10**6)
    # the default minimum tranche never exceeds a smaller first rung
    small = parse_spec(with_("vault.rungs", [500, 1_000, 2_000])).vault
    assert small.min_tranche == 500 * 10**6
    assert parse_spec(with_("vault.min_tranche", "0.5")).vault.min_tranche == 500_000
    assert parse_spec(with_("vault.min_tranche", 50_000)).vault.min_tranche == 50_000 * 10**6  # = rung 0
    assert parse_spec(with_("capital", "0.000000000000000001")).capital_wei == 1
    assert parse_spec(with_("capital", Decimal("1.5"))).capital_wei == 15 * 10**17
    assert parse_spec(with_("capital", 7)).capital_wei == 7 * 10**18
    assert parse_spec(with_("vault.eth_floor_price", "1500.12345678")).vault.eth_floor_price_e8 == 150_012_345_678
    gas = parse_spec(with_("gas", {"max_fee_gwei": "1.5", "priority_fee_gwei": 0})).gas
    assert (gas.mode, gas.max_fee_wei, gas.priority_fee_wei, gas.replace_after_s) == ("fixed", 1_500_000_000, 0, 60)
    gas = parse_spec(with_("gas", {"mode": "auto", "max_fee_gwei": 40, "replace_after_seconds": 15})).gas
    assert (gas.is_auto, gas.max_fee_wei, gas.priority_fee_wei, gas.replace_after_s) == (True, 40 * 10**9, None, 15)
    assert parse_spec(with_("vault_address", CHECKSUMMED.lower())).vault_address == CHECKSUMMED
    assert spec.roles.resolve(lambda a: pytest.fail("no alias here")) == {"owner": A1, "operator": A2, "guardian": A3}


def test_yaml_numbers_are_decimals_and_unquoted_addresses_stay_text(tmp_path):
    text = yaml.safe_dump(base()).replace("'10'", "10.25").replace(f"'{A1}'", A1).replace("'1500'", "1500.5")
    assert f"owner: {A1}" in text  # unquoted: plain YAML 1.1 would make it a hex int
    p = tmp_path / "d.yaml"
    p.write_text(text)
    spec = load_spec(p)
    assert spec.capital_wei == 10_250_000_000_000_000_000
    assert spec.roles.owner.address == A1
    assert spec.vault.eth_floor_price == Decimal("1500.5")


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=P.MAX_BOOK_WEI))  # beyond: test_duplicate_keys_and_capital_beyond_the_books...
def test_capital_round_trips_exactly(wei):
    text = f"{wei // 10**18}.{wei % 10**18:018d}"
    spec = parse_spec(with_("capital", text))
    assert spec.capital_wei == wei
    assert spec.capital_eth == Decimal(text)  # 25 digits; test_units checks beyond Decimal's 28


def test_aliases_on_a_local_chain_resolve():
    spec = parse_spec(
        with_("roles", {"owner": "alias:TEST::0", "operator": "alias:op", "guardian": A3}, with_("network", "chain138-local"))
    )
    addrs = spec.roles.resolve({"TEST::0": A1, "op": A2}.__getitem__)
    assert addrs == {"owner": A1, "operator": A2, "guardian": A3}
    with pytest.raises(SpecError, match=r"roles\.operator"):
        spec.roles.resolve({"TEST::0": A1, "op": A1.upper().replace("0X", "0x")}.__getitem__)


def test_network_identity():
    net = parse_spec(
        with_("network", {"name": "mirror", "chain_id": 138, "genesis_hash": "0x" + "ab" * 32, "ape": "ethereum:local:foundry"})
    ).network
    assert net.local and net.ape == "ethereum:local:foundry"
    assert net.identity_errors(138, "0x" + "AB" * 32) == []
    assert net.identity_errors(138, bytes.fromhex("ab" * 32)) == []
    errors = net.identity_errors(1, "0x" + "cd" * 32)
    assert any("chain id is 1" in e and "138" in e for e in errors)
    assert any("genesis hash" in e for e in errors)
    main = parse_spec(base()).network
    assert main == NetworkSpec("chain138-mainnet", 138, "chain138:mainnet:node", None, False)


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "spec, key, words",
    [
        (with_("captial", "10"), "captial", ["unknown key", "did you mean 'capital'"]),
        (with_("vault.max_ltv", 100), "vault.max_ltv", ["unknown key", "did you mean 'max_ltv_bps'"]),
        (with_("ladder.tranche", 5), "ladder.tranche", ["unknown key", "did you mean 'tranche_bps'"]),
        (with_("roles.admin", A1), "roles.admin", ["unknown key", "allowed keys here: owner, operator, guardian"]),
        (with_("vault.buckets", {"core": 5000, "working": 3000, "opportunistc": 2000}), "vault.buckets.opportunistc",
         ["did you mean 'opportunistic'"]),
        (with_("zzz", 1), "zzz", ["unknown key"]),
    ],
)
def test_unknown_keys(spec, key, words):
    e = err(spec)
    assert e.key == key
    for w in words:
        assert w in str(e)


@pytest.mark.parametrize("key", ["deal_id", "network", "roles", "vault", "vault_address", "capital", "wrapper",
                                 "stablecoin", "target_ltv_bps", "roles.guardian", "vault.eth_floor_price"])
def test_missing_keys(key):
    e = err(without(key))
    assert e.key == key and "missing required key" in str(e)


@pytest.mark.parametrize(
    "path, value, words",
    [
        ("target_ltv_bps", "2900", ["expected an integer", "'2900'"]),
        ("target_ltv_bps", Decimal("2900.0"), ["expected an integer"]),
        ("confirmations", True, ["expected an integer", "True"]),
        ("capital", 1.5, ["float", "string or Decimal"]),
        ("capital", "ten", ["not a number"]),
        ("capital", [1], ["expected a number"]),
        ("vault.sell_floor_price", 0.85, ["float"]),
        ("deal_id", 42, ["expected a string"]),
        ("roles", [A1, A2, A3], ["expected a mapping"]),
        ("vault.rungs", 50000, ["exactly 3"]),
        ("wrapper", "WETH", ["not allowed", "WETH9 | WETH10", "did you mean"]),
        ("stablecoin", "USDT", ["cUSDT | cUSDC"]),
        ("monetize.via", "swap", ["redeem | sell | redeem-then-sell"]),
        ("gas", "fast", ['"auto"']),
        ("gas", {"max_fee_gwei": 1}, ["gas.priority_fee_gwei"]),
        ("gas", {"mode": "fast"}, ["gas.mode", "auto, fixed"]),
        ("gas", {"mode": "auto", "priority_fee_gwei": 1}, ["gas.priority_fee_gwei", "not with mode auto"]),
        ("gas", {"mode": "auto", "replace_after_seconds": 0}, ["gas.replace_after_seconds", "1..3600"]),
        ("gas", {"mode": "auto", "replace_after_seconds": "10"}, ["gas.replace_after_seconds", "expected an integer"]),
        ("network.local", "yes", ["true or false"]),
    ],
)
def test_wrong_types(path, value, words):
    spec = with_("network", {"name": "n", "chain_id": 1}) if path.startswith("network.") else base()
    e = err(with_(path, value, spec))
    assert e.key.startswith(path.split(".")[0])
    for w in words:
        assert w in str(e), str(e)


@pytest.mark.parametrize(
    "path, value, allowed",
    [
        ("vault.max_ltv_bps", 3001, "1..3000"),
        ("vault.max_ltv_bps", 0, "1..3000"),
        ("vault.max_exposure_bps", 2501, "1..2500"),
        ("vault.max_desk_fee_bps", 1001, "0..1000"),
        ("vault.oracle_max_age", 0, "1..604800"),
        ("vault.min_discount_bps", 10_000, "0..9999"),
        ("vault.max_slippage_bps", 1001, "0..1000"),
        ("vault.max_operator_loss_bps", 1001, "0..1000"),
        ("vault.twap_window", 0, "1..65535"),
        ("vault.twap_window", 65_536, "1..65535"),
        ("vault.loosen_delay", 30 * 86400 + 1, "3600..2592000"),
        ("vault.min_tranche", "50000.000001", "0.000001..50000"),
        ("vault.min_tranche", "0", "0.000001..50000"),
        ("vault.eth_floor_price", "100000000.00000001", "0.00000001..100000000"),
        ("vault.sell_floor_price", "1.01", "0.000001..1"),
        ("vault.sell_floor_price", "0", "0.000001..1"),
        ("vault.eth_floor_price", "-1", "0.00000001.."),
        ("target_ltv_bps", 3001, "1..3000"),
        ("target_ltv_bps", 0, "1..3000"),
        ("min_discount_bps", 499, "500..9999"),
        ("max_slippage_bps", 101, "0..100"),
        ("confirmations", -1, "0..64"),
        ("confirmations", 65, "0..64"),
        ("capital", "0", "0.000000000000000001..1208925.819614629174706175 ETH"),
        ("ladder.rungs", 4, "1..3"),
        ("ladder.tranche_bps", 0, "1..10000"),
        ("ladder.max_tranches", 0, "1..1000"),
        ("monetize.monetize_bps", 10_001, "0..10000"),
        ("network", {"name": "n", "chain_id": 0}, "1..")
    ],
)
def test_out_of_range(path, value, allowed):
    e = err(with_(path, value))
    assert e.key.startswith(path)
    assert "out of range" in str(e) and allowed in str(e), str(e)
    assert isinstance(value, dict) or str(value) in str(e)


def test_target_ltv_bounded_by_a_tighter_vault():
    e = err(with_("vault.max_ltv_bps", 2000))  # target 2500 > the spec's own vault cap
    assert e.key == "target_ltv_bps" and "1..2000" in str(e) and "vault.max_ltv_bps" in str(e)


@pytest.mark.parametrize(
    "path, value, words",
    [
        ("capital", "1.0000000000000000001", ["more than 18 decimals"]),
        ("vault.sell_floor_price", "0.8500001", ["more than 6 decimals"]),
        ("vault.eth_floor_price", "1500.000000001", ["more than 8 decimals"]),
        ("vault.rungs", [1, "2.0000001", 3], ["vault.rungs[1]", "more than 6 decimals"]),
        ("vault.rungs", [100, 100, 300], ["vault.rungs[1]", "strictly increasing"]),
        ("vault.rungs", [0, 100, 300], ["vault.rungs[0]", "out of range"]),
        ("gas", {"max_fee_gwei": 1, "priority_fee_gwei": 2}, ["gas.priority_fee_gwei", "above gas.max_fee_gwei 1"]),
        ("deal_id", "Deal 1", ["not a slug"]),
        ("deal_id", "-x", ["not a slug"]),
        ("network", "chain138:mainet:node", ["unknown network", "did you mean 'chain138:mainnet:node'"]),
        ("network", {"name": "n", "chain_id": 1, "genesis_hash": "0x12"}, ["network.genesis_hash", "64 hex"]),
        ("network", {"name": "n", "chain_id": 1, "ape": "local"}, ["network.ape", "ecosystem:network"]),
    ],
)
def test_bad_values(path, value, words):
    e = err(with_(path, value))
    for w in words:
        assert w in str(e), str(e)


@pytest.mark.parametrize(
    "buckets, total",
    [({"core": 5000, "working": 3000, "opportunistic": 1000}, 9000),
     ({"core": 6000, "working": 3000, "opportunistic": 2000}, 11000)],
)
def test_bucket_split_must_sum_to_10000(buckets, total):
    e = err(with_("vault.buckets", buckets))
    assert e.key == "vault.buckets" and f"= {total} bps" in str(e) and "10000" in str(e)


def test_bucket_split_accepted():
    v = parse_spec(with_("vault.buckets", {"core": 4000, "working": 4000, "opportunistic": 2000})).vault
    assert (v.core_bps, v.working_bps, v.opportunistic_bps) == (4000, 4000, 2000)


@pytest.mark.parametrize(
    "value, words",
    [
        ("0x123", ["not a 0x address", "40 hex"]),
        ("1111111111111111111111111111111111111111", ["not a 0x address"]),
        ("0x" + "g" * 40, ["not a 0x address"]),
        ("0x" + "0" * 40, ["zero address"]),
        (CHECKSUMMED.replace("a", "A", 1), ["bad EIP-55 checksum", CHECKSUMMED]),
        (0x1111111111111111111111111111111111111111, ["quote it"]),
        ("alias:TEST::0", ["only allowed on a local chain"]),
    ],
)
def test_bad_addresses(value, words):
    e = err(with_("roles.operator", value))
    assert e.key == "roles.operator"
    for w in words:
        assert w in str(e), str(e)


def test_bad_vault_address():
    e = err(with_("vault_address", "deploy-it"))
    assert e.key == "vault_address" and '"deploy"' in str(e)


def test_bad_alias():
    e = err(with_("roles.owner", "alias:", with_("network", "chain138-local")))
    assert e.key == "roles.owner" and "alias" in str(e)


@pytest.mark.parametrize(
    "roles, dup",
    [
        ({"owner": A1, "operator": A1, "guardian": A3}, "roles.operator"),
        ({"owner": A1, "operator": A2, "guardian": A1.upper().replace("0X", "0x")}, "roles.guardian"),
        ({"owner": CHECKSUMMED, "operator": CHECKSUMMED.lower(), "guardian": A3}, "roles.operator"),
    ],
)
def test_duplicate_roles(roles, dup):
    e = err(with_("roles", roles))
    assert e.key == dup and "distinct" in str(e)


def test_duplicate_aliases():
    spec = with_("roles", {"owner": "alias:a", "operator": "alias:b", "guardian": "alias:a"}, with_("network", "chain138-local"))
    e = err(spec)
    assert e.key == "roles.guardian" and "also roles.owner" in str(e)


def test_load_spec_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("deal_id: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    bad.write_text("- a list\n")
    with pytest.raises(SpecError, match="a deal spec is a YAML mapping"):
        load_spec(bad)
    with pytest.raises(SpecError, match="cannot read deal spec"):
        load_spec(tmp_path / "missing.yaml")


# ------------------------------------------------------------------------------- the vault rules


def onchain(**changes) -> tuple:
    v = parse_spec(base()).vault
    d = v.risk_params_dict()
    d.update(changes)
    return tuple(d[k] for k in RISK_PARAMS_FIELDS)


def test_spec_equal_or_tighter_than_vault_passes():
    spec = parse_spec(base())
    assert check_against_vault(spec, onchain()) == []
    tighter = parse_spec(
        with_("vault", {"eth_floor_price": "2000", "max_ltv_bps": 2600, "max_exposure_bps": 2000,
                        "rungs": [10_000, 20_000, 30_000], "max_desk_fee_bps": 10, "oracle_max_age": 60,
                        "min_discount_bps": 800, "max_slippage_bps": 50, "sell_floor_price": "0.9",
                        "max_operator_loss_bps": 10, "twap_window": 3600, "loosen_delay": 2 * 86400, "min_tranche": 5_000})
    )
    assert check_against_vault(tighter, onchain()) == []


@pytest.mark.parametrize(
    "field, chain_value, words",
    [
        ("maxLtvBps", 2000, ["vault.max_ltv_bps 3000", "maxLtvBps 2000", "target_ltv_bps 2500"]),
        ("maxExposureBps", 1000, ["vault.max_exposure_bps 2500", "maxExposureBps 1000"]),
        ("rungs", [50_000_000_000, 100_000_000_000, 1_000_000_000_000], ["vault.rungs[1] 250000", "rungs[1] 100000"]),
        ("maxDeskFeeBps", 20, ["vault.max_desk_fee_bps 50", "maxDeskFeeBps 20"]),
        ("oracleMaxAge", 600, ["vault.oracle_max_age 3600", "oracleMaxAge 600"]),
        ("minDiscountBps", 900, ["vault.min_discount_bps 500", "minDiscountBps 900", "min_discount_bps 500"]),
        ("maxSlippageBps", 30, ["vault.max_slippage_bps 100", "maxSlippageBps 30"]),
        ("sellFloorPrice", 900_000, ["vault.sell_floor_price 0.85", "sellFloorPrice 0.9"]),
        ("ethFloorPrice", 2000 * 10**8, ["vault.eth_floor_price 1500", "ethFloorPrice 2000"]),
        ("maxOperatorLossBps", 20, ["vault.max_operator_loss_bps 50", "maxOperatorLossBps 20"]),
        ("twapWindow", 3600, ["vault.twap_window 1800", "twapWindow 3600"]),
        ("loosenDelay", 2 * 86400, ["vault.loosen_delay 86400", "loosenDelay 172800"]),
        ("minTranche", 2_000 * 10**6, ["vault.min_tranche 1000", "minTranche 2000"]),
        ("coreBps", 4000, ["vault.buckets.core 5000 differs", "coreBps 4000"]),
    ],
)
def test_spec_looser_than_vault_is_an_error_naming_both_values(field, chain_value, words):
    errors = check_against_vault(parse_spec(base()), onchain(**{field: chain_value}))
    text = "\n".join(errors)
    assert errors
    for w in words:
        assert w in text, text
    if field != "coreBps":
        assert all("looser" in e for e in errors)


def test_check_against_vault_accepts_mapping_object_and_vaultparams():
    spec = parse_spec(base())
    as_map = dict(zip(RISK_PARAMS_FIELDS, onchain(maxLtvBps=2000)))

    class Struct:  # like an ape struct
        pass

    obj = Struct()
    for k, v in as_map.items():
        setattr(obj, k, v)
    for params in (as_map, obj, VaultParams.from_onchain(as_map)):
        assert any("maxLtvBps 2000" in e for e in check_against_vault(spec, params))


# ------------------------------------------------------------------------------- the on-chain limits


def _sol_constants(path: Path) -> dict[str, int]:
    text = path.read_text()
    out = {}
    for name, expr in re.findall(r"uint256 internal constant (\w+) = ([^;]+);", text):
        expr = expr.strip().replace("days", "* 86400").replace("hours", "* 3600")
        if re.fullmatch(r"[0-9e* ]+", expr):
            out[name] = int(eval(expr.replace("e", "* 10 **")))  # literal arithmetic from our own source
    return out


def test_spec_ranges_match_paramtable_sol():
    """The parser's ranges are the vault's hard limits (contracts/libraries/ParamTable.sol): a
    value the parser accepts never reverts CapAboveCeiling / ParamInvalid in the constructor."""
    c = _sol_constants(ROOT / "contracts" / "libraries" / "ParamTable.sol")
    assert c["MAX_LTV_BPS"] == S.MAX_LTV_BPS == 3000 == S.vault_bounds("max_ltv_bps")[1]
    assert c["MAX_EXPOSURE_BPS"] == S.MAX_EXPOSURE_BPS == 2500 == S.vault_bounds("max_exposure_bps")[1]
    assert c["MAX_FEE_BPS"] == S.MAX_FEE_BPS == 1000
    for key in ("max_desk_fee_bps", "max_slippage_bps", "max_operator_loss_bps"):
        assert S.vault_bounds(key) == (0, c["MAX_FEE_BPS"])
    assert c["MAX_PRICE"] == P.MAX_PRICE == 10**16
    assert S.vault_bounds("eth_floor_price") == (1, c["MAX_PRICE"])
    assert c["MAX_LOOSEN_DELAY"] == S.MAX_LOOSEN_DELAY == 30 * 86400
    assert c["MIN_LOOSEN_DELAY"] == S.MIN_LOOSEN_DELAY == 3600
    assert S.vault_bounds("loosen_delay") == (c["MIN_LOOSEN_DELAY"], c["MAX_LOOSEN_DELAY"])
    table = (ROOT / "contracts" / "libraries" / "ParamTable.sol").read_text()
    assert "if (param == 4) return 9999;" in table and S.vault_bounds("min_discount_bps") == (0, 9999)
    assert "if (param == 9) return type(uint16).max;" in table and S.vault_bounds("twap_window") == (1, 2**16 - 1)
    assert "if (param == 6) return 1e6;" in table and S.vault_bounds("sell_floor_price") == (1, 10**6)  # sellFloorPrice <= $1
    # the spec's own bounds are never looser than the contract's
    for key, (low, high) in {k: S.vault_bounds(k) for k in P.BY_KEY if k not in ("rungs", "min_tranche")}.items():
        p = P.BY_KEY[key]
        assert low >= p.floor and (p.limit is None or high <= p.limit), key
    # each limit is accepted exactly at the edge and refused one step past it
    edges = [("max_desk_fee_bps", 1000, 1001), ("max_slippage_bps", 1000, 1001), ("max_operator_loss_bps", 1000, 1001),
             ("twap_window", 65_535, 65_536), ("loosen_delay", 30 * 86400, 30 * 86400 + 1), ("min_discount_bps", 9999, 10_000),
             ("eth_floor_price", "100000000", "100000000.00000001"), ("sell_floor_price", "1", "1.000001")]
    for key, ok, bad in edges:
        parse_spec(with_(f"vault.{key}", ok))
        e = err(with_(f"vault.{key}", bad))
        assert e.key == f"vault.{key}" and "out of range" in str(e), str(e)
    # the floors: twapWindow >= 1, loosenDelay >= 1 hour (ParamInvalid below), minTranche > 0 (RungsInvalid(3))
    assert err(with_("vault.twap_window", 0)).key == "vault.twap_window"
    assert err(with_("vault.loosen_delay", 3599)).key == "vault.loosen_delay"
    parse_spec(with_("vault.loosen_delay", 3600))
    assert err(with_("vault.min_tranche", 0)).key == "vault.min_tranche"
    v = parse_spec(with_("vault.eth_floor_price", "100000000")).vault
    assert v.eth_floor_price_e8 == 10**16


def test_min_tranche_must_fit_rung_zero():
    e = err(with_("vault", {"eth_floor_price": "1500", "rungs": [100, 200, 300], "min_tranche": 101}))
    assert e.key == "vault.min_tranche" and "0.000001..100" in str(e)
    v = parse_spec(with_("vault", {"eth_floor_price": "1500", "rungs": [100, 200, 300], "min_tranche": 100})).vault
    assert v.min_tranche == v.rungs[0] == 100 * 10**6


# ------------------------------------------------------------------------------- one vocabulary


def test_vault_params_fields_follow_the_parameter_schema():
    """VaultParams' fields are vault.params' PARAMS, in RiskParams order, named by their spec key."""
    assert tuple(p.name for p, _ in VAULT_FIELDS) == RISK_PARAMS_FIELDS
    for p, attr in VAULT_FIELDS:
        want = f"{p.key.removeprefix('buckets.')}_bps" if p.key.startswith("buckets.") else p.key
        assert attr == want
    assert VaultParams.from_onchain(parse_spec(base()).risk_params_tuple()) == parse_spec(base()).vault


def test_token_keys_name_the_chosen_tokens_and_nothing_else():
    spec = parse_spec(with_("wrapper", "WETH10", with_("stablecoin", "cUSDC")))
    assert (spec.wrapper_key, spec.stablecoin_key) == ("weth10", "cusdc")
    assert parse_spec(base()).stablecoin_key == "cusdt" and parse_spec(base()).wrapper_key == "weth9"
    odd = dataclasses.replace(parse_spec(base()), stablecoin="USDT")
    with pytest.raises(SpecError, match=re.escape("stablecoin: 'USDT' is not allowed; allowed: cUSDT | cUSDC")):
        _ = odd.stablecoin_key


def test_spec_and_config_errors_are_input_errors():
    for exc in (err(with_("capital", "ten")), ConfigError("tokens", "bad")):
        assert isinstance(exc, InputError) and isinstance(exc, ValueError)
        assert exc.exit_code == ExitCode.INPUT == 2


def test_duplicate_keys_and_capital_beyond_the_books_are_refused(tmp_path):
    """Issue 13: YAML keeps the last of two equal keys silently: the spec refuses it naming both
    lines; a capital the vault's uint80 ETH books cannot hold is a spec error (it used to reach
    the chain as a SafeCast revert)."""
    from dealvault.paths import ROOT
    from dealvault.vault.params import MAX_BOOK_WEI

    text = (ROOT / "deals" / "example.yaml").read_text()
    dup = tmp_path / "dup.yaml"
    dup.write_text(text + '\ncapital: "10"\n')
    with pytest.raises(SpecError, match=r"duplicate key 'capital' \(first on line \d+, again on line \d+\)"):
        load_spec(dup)
    big = tmp_path / "big.yaml"
    assert 'capital: "5000"' in text
    big.write_text(text.replace('capital: "5000"', 'capital: "2000000"'))
    with pytest.raises(SpecError, match=r"capital: 2000000 is out of range; allowed: .*\.\.1208925\.819614629174706175 ETH"):
        load_spec(big)
    edge = tmp_path / "edge.yaml"
    edge.write_text(text.replace('capital: "5000"', 'capital: "1208925.819614629174706175"'))
    assert load_spec(edge).capital_wei == MAX_BOOK_WEI
