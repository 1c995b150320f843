"""The deployment pipeline (dealvault.deploy): preflight, deploy, verify, record, idempotency.

Runs on the session's Chain 138 mirror + overlay (conftest) and on anvil forks of it. Records go
to tmp_path. Every refusal is checked to send nothing: the deployer's nonce and the block number
are unchanged.

DealVault v2: one creation transaction deploys the core, whose constructor creates the extension;
the pipeline deploys a DealVaultLens unless the network config names one (venues.lens), verifies
the three bytecodes and reads the parameters back through the lens. Expected addresses come from
the CREATE rule (sender, nonce), parameters from the deal spec, never from the pipeline's output.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path

import ape
import pytest
import yaml
from web3 import Web3

from dealvault import deploy as D
from dealvault.accounts import AccountError, ape_account
from dealvault.deploy import opcodes
from dealvault.errors import DealVaultError, ExitCode
from dealvault.kit.anvil import start_anvil
from dealvault.kit.evm import create_address, role_address, set_balance
from dealvault.paths import ROOT
from dealvault.spec import load_spec
from dealvault.spec.netconfig import (
    CHAIN138_CONFIG,
    ConfigError,
    load_netconfig,
    local_config_data,
    parse_netconfig,
    write_local_config,
)

EXAMPLE = ROOT / "deals" / "example.yaml"
APE = ROOT / ".venv" / "bin" / "ape"


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def build():
    return D.build_contract()  # also checks it equals ape's build byte for byte


@pytest.fixture(scope="session")
def shanghai_build():
    """DealVault compiled for shanghai: it uses PUSH0."""
    return D.build_contract(settings={**D.compiler_settings(), "evmVersion": "shanghai"}, check_ape=False)


@pytest.fixture(scope="session")
def cfg_data(w3, mirror, market):
    return local_config_data(w3, mirror, market, name="mirror")


@pytest.fixture
def local_cfg(w3, mirror, market, tmp_path):
    return write_local_config(w3, mirror, market, tmp_path / "local" / "mirror.config.yaml")


@pytest.fixture
def deployments(tmp_path):
    d = tmp_path / "deployments"
    d.mkdir()
    return d


def _resolver(alias: str) -> str:
    return str(ape.accounts.test_accounts[int(alias.split("::")[1])].address)


def _deal(path: Path = EXAMPLE):
    return D.deal_params(load_spec(path), resolver=_resolver, path=path)


def _spec_variant(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    for k, v in changes.items():
        if "." in k:
            a, b = k.split(".")
            data[a][b] = v
        else:
            data[k] = v
    p = tmp_path / f"{data['deal_id']}.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def _cfg_variant(tmp_path: Path, data: dict, name: str = "variant", **edits) -> Path:
    data = copy.deepcopy(data)
    for k, v in edits.items():
        node = data
        *parents, last = k.split(".")
        for p in parents:
            node = node[p]
        node[last] = v
    p = tmp_path / "local" / f"{name}.config.yaml"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


@pytest.fixture
def deploy_signer(w3):
    who = role_address("test.deployer")
    set_balance(w3, who, 100 * 10**18)
    return D.AnvilSigner(w3, who, impersonate=True)


class Unchanged:
    """Asserts the block number and the deployer's nonce did not move (nothing was sent)."""

    def __init__(self, w3, who: str):
        self.w3, self.who = w3, who

    def __enter__(self):
        self.block = self.w3.eth.block_number
        self.nonce = self.w3.eth.get_transaction_count(self.who)
        return self

    def __exit__(self, *exc):
        assert self.w3.eth.block_number == self.block, "a block was mined: something was sent"
        assert self.w3.eth.get_transaction_count(self.who) == self.nonce, "the deployer's nonce moved"
        return False


# ---------------------------------------------------------------------------------------------
# the build and its standard-JSON input


def test_standard_json_input_reproduces_the_build(build):
    """What an auditor does: feed the recorded input to solc 0.8.28 --standard-json."""
    std = build.standard_json_input
    assert std["settings"]["evmVersion"] == "paris"
    assert std["settings"]["optimizer"] == {"enabled": True, "runs": 200}
    assert "contracts/DealVault.sol" in std["sources"]
    assert any(k.startswith("contracts/.cache/openzeppelin/5.4.0/") for k in std["sources"])
    assert not any(k.startswith("contracts/test/") for k in std["sources"])
    proc = subprocess.run([str(D.SOLC_BRIDGE), "--standard-json"], input=json.dumps(std).encode(),
                          capture_output=True, check=True, cwd=ROOT)
    out = json.loads(proc.stdout)
    c = out["contracts"]["contracts/DealVault.sol"]["DealVault"]["evm"]
    assert bytes.fromhex(c["deployedBytecode"]["object"]) == build.runtime
    assert bytes.fromhex(c["bytecode"]["object"]) == build.creation
    assert build.compiler_version.startswith("0.8.28+commit.7893614a")
    assert {"weth9", "pool", "coreBps", "extension", "minTranche"} <= set(build.immutable_names.values())
    # the same input reproduces the extension (created by the core's constructor) and the lens
    ext, lens = D.build_contract("DealVaultExtension"), D.build_contract("DealVaultLens")
    assert ext.standard_json_input == lens.standard_json_input == std
    assert "contracts/DealVaultLens.sol" in std["sources"] and "contracts/DealVaultExtension.sol" in std["sources"]
    e = out["contracts"]["contracts/DealVaultExtension.sol"]["DealVaultExtension"]["evm"]
    assert bytes.fromhex(e["deployedBytecode"]["object"]) == ext.runtime
    assert bytes.fromhex(e["bytecode"]["object"]) == ext.creation and ext.creation in build.creation  # created by the core
    lens_out = out["contracts"]["contracts/DealVaultLens.sol"]["DealVaultLens"]["evm"]
    assert bytes.fromhex(lens_out["deployedBytecode"]["object"]) == lens.runtime and lens.immutable_references == {}
    # each equals ape's build byte for byte (build_contract checks it; say it here independently)
    from dealvault.artifacts import own

    for b in (build, ext, lens):
        assert bytes.fromhex(own(b.contract).deployed_bytecode[2:]) == b.runtime, b.contract


# ---------------------------------------------------------------------------------------------
# opcodes


def test_opcode_scan_skips_push_data_and_metadata():
    code = bytes.fromhex("605f" "5f" "7f" + "5f" * 32 + "5e" "00")  # PUSH1 0x5f, PUSH0, PUSH32 5f.., MCOPY
    assert opcodes.scan(code, strip=False) == {"PUSH0": [2], "MCOPY": [36]}
    meta = bytes.fromhex("a2" + "5f" * 10) + (11).to_bytes(2, "big")  # CBOR-ish tail with 5f bytes
    assert opcodes.scan(bytes.fromhex("6001") + meta) == {}


def test_probe_and_check_build_by_hardfork(shanghai_build, build):
    assert "PUSH0" in opcodes.scan_build(shanghai_build.creation, shanghai_build.runtime).get("runtime", {})
    assert opcodes.scan_build(build.creation, build.runtime) == {}
    with start_anvil(hardfork="london") as node:
        w3 = node.web3()
        assert opcodes.probe(w3, ["PUSH0"])["PUSH0"][0] is False
        with pytest.raises(opcodes.UnsupportedOpcodeError, match="PUSH0"):
            opcodes.check_build(w3, shanghai_build.creation, shanghai_build.runtime)
        assert opcodes.check_build(w3, build.creation, build.runtime)["used"] == {}
    with start_anvil(hardfork="shanghai") as node:
        report = opcodes.check_build(node.web3(), shanghai_build.creation, shanghai_build.runtime)
        assert report["probed"] == {"PUSH0": True}


# ---------------------------------------------------------------------------------------------
# network configs


def test_chain138_config_is_valid_and_marks_unknowns():
    net = load_netconfig(CHAIN138_CONFIG)
    assert net.name == "chain138" and net.chain_id == 138 and net.genesis_hash is None and not net.ephemeral
    assert net.tokens["weth9"].address == "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
    assert net.tokens["cusdt"].decimals == 6
    assert set(net.missing_for_vault()) == {"tokens.usdtz.address", "venues.pool (or venues.pool_addresses_provider)",
                                            "venues.router", "venues.desk"}


def test_config_errors_name_the_key(cfg_data):
    bad = copy.deepcopy(cfg_data)
    bad["tokens"]["weth10"]["address"] = "0xf4BB2e28688e89fCcE3c0580D37d36A7672E8A9f"  # bad EIP-55
    with pytest.raises(ConfigError, match=r"tokens\.weth10\.address: .*checksum"):
        parse_netconfig(bad)
    bad = copy.deepcopy(cfg_data)
    bad["venues"]["routr"] = None
    with pytest.raises(ConfigError, match=r"venues\.routr: unknown key"):
        parse_netconfig(bad)
    bad = copy.deepcopy(cfg_data)
    bad["network"]["chain_id"] = "138"
    with pytest.raises(ConfigError, match=r"network\.chain_id"):
        parse_netconfig(bad)


def test_local_config_is_written_only_under_local(w3, mirror, market, tmp_path):
    p = write_local_config(w3, mirror, market, tmp_path / "local" / "mirror.config.yaml")
    net = load_netconfig(p)
    assert net.name == "local/mirror" and net.ephemeral and net.missing_for_vault() == []
    assert net.venues.router == market.uniswap_router and net.venues.desk == market.desk
    with pytest.raises(ConfigError, match="outside a 'local' folder"):
        write_local_config(w3, mirror, market, tmp_path / "chain138.config.yaml")


# ---------------------------------------------------------------------------------------------
# deploy on the mirror


def test_deploy_rerun_second_deal_and_reverify(w3, build, local_cfg, deployments, deploy_signer, tmp_path):
    net = load_netconfig(local_cfg)
    deal = _deal()
    res = D.deploy_vault(w3, deploy_signer, net, deal, build=build, deployments_dir=deployments)
    assert res.status == "deployed"
    path = deployments / "local" / "mirror" / "demo-001.json"
    assert res.record_path == path
    rec = json.loads(path.read_text())
    for key in ("address", "transaction_hash", "block_number", "deployer", "constructor_args", "compiler", "standard_json_input",
                "source_hash", "runtime_bytecode_hash", "abi", "timestamp", "configs"):
        assert key in rec, key
    assert rec["deployer"] == deploy_signer.address
    assert rec["constructor_args"]["decoded"]["owner"] == _resolver("TEST::0")
    assert rec["constructor_args"]["raw"] == "0x" + D.encode_constructor(build, res.plan.config).hex()
    assert D.decode_constructor(build.abi, bytes.fromhex(rec["constructor_args"]["raw"][2:]))["risk"]["rungs"] == list(deal.risk["rungs"])
    assert rec["compiler"]["settings"]["evmVersion"] == "paris"
    assert rec["runtime_bytecode_hash"] == build.runtime_hash
    assert rec["configs"]["network"]["sha256"] == net.sha256
    assert w3.eth.get_code(res.address)
    # no lens configured: the lens first (deploy_signer nonce n), then the vault (n + 1); the core
    # creates the extension with its own first CREATE (nonce 1, EIP-161)
    n = rec["nonce"] - 1
    assert rec["lens"]["address"] == res.lens == create_address(deploy_signer.address, n)
    assert rec["address"] == create_address(deploy_signer.address, n + 1)
    assert rec["extension"]["address"] == res.extension == create_address(res.address, 1)
    assert rec["lens"]["source"] == "deployed" and rec["lens"]["nonce"] == n and rec["lens"]["gas_used"] == res.lens_gas_used > 0
    ext_build, lens_build = D.build_contract("DealVaultExtension"), D.build_contract("DealVaultLens")
    assert rec["extension"]["runtime_bytecode_hash"] == ext_build.runtime_hash
    assert rec["lens"]["runtime_bytecode_hash"] == lens_build.runtime_hash
    assert "0x" + bytes(w3.eth.get_code(res.lens)).hex() == "0x" + lens_build.runtime.hex()
    assert ext_build.mask(bytes(w3.eth.get_code(res.extension))) == ext_build.runtime
    # the parameters read back (through the lens) are the spec's, as the constructor got them
    assert rec["verification"]["params"]["risk"] == {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in deal.risk.items()}
    assert rec["verification"]["params"]["owner"] == _resolver("TEST::0")
    print(f"\ndeploy gas {res.gas_used} + lens {res.lens_gas_used}, {res.seconds:.2f} s")

    # a re-run is a no-op
    with Unchanged(w3, deploy_signer.address):
        again = D.deploy_vault(w3, deploy_signer, net, deal, build=build, deployments_dir=deployments)
    assert again.status == "existing" and again.address == res.address
    assert json.loads(path.read_text()) == rec

    # a second deal gets its own record; the first is untouched
    deal2 = _deal(_spec_variant(tmp_path, deal_id="demo-002"))
    res2 = D.deploy_vault(w3, deploy_signer, net, deal2, build=build, deployments_dir=deployments)
    assert res2.status == "deployed" and res2.address != res.address
    assert (deployments / "local" / "mirror" / "demo-002.json").exists()
    assert json.loads(path.read_text()) == rec

    # a second deal without a configured lens gets its own lens
    rec2 = json.loads((deployments / "local" / "mirror" / "demo-002.json").read_text())
    assert rec2["lens"]["address"] != rec["lens"]["address"]

    # verify_deployment against the record
    outs: list[str] = []
    assert D.run_verify(w3, record_file=path, build=build, out=outs.append) == 0
    j = json.loads(outs[-1])
    assert (j["extension"], j["lens"]) == (rec["extension"]["address"], rec["lens"]["address"])
    report = D.reverify(w3, path)  # without the build: the record's own hashes and immutable maps
    assert report.code_hash == rec["runtime_bytecode_hash"]
    assert report.extension_code_hash == rec["extension"]["runtime_bytecode_hash"]
    assert report.lens_code_hash == rec["lens"]["runtime_bytecode_hash"]


def test_changed_config_needs_redeploy_and_keeps_history(w3, build, local_cfg, deployments, deploy_signer, tmp_path):
    net = load_netconfig(local_cfg)
    first = D.deploy_vault(w3, deploy_signer, net, _deal(), build=build, deployments_dir=deployments)
    tighter = _deal(_spec_variant(tmp_path, **{"vault.max_ltv_bps": 2950}))
    with Unchanged(w3, deploy_signer.address), pytest.raises(D.DeploymentRecordError, match=r"maxLtvBps 3000 -> 2950.*--redeploy"):
        D.deploy_vault(w3, deploy_signer, net, tighter, build=build, deployments_dir=deployments)
    res = D.deploy_vault(w3, deploy_signer, net, tighter, build=build, deployments_dir=deployments, redeploy=True)
    assert res.status == "deployed" and res.address != first.address
    rec = json.loads(res.record_path.read_text())
    assert [h["address"] for h in rec["history"]] == [first.address]
    assert "maxLtvBps" in rec["history"][0]["superseded"]["reason"]


def test_deploy_with_an_ape_account(w3, build, local_cfg, deployments):
    account = ape.accounts.test_accounts[5]
    signer = D.ApeSigner(account, w3)
    res = D.deploy_vault(w3, signer, load_netconfig(local_cfg), _deal(), build=build, deployments_dir=deployments)
    assert res.status == "deployed" and res.record["deployer"] == account.address


# ---------------------------------------------------------------------------------------------
# refusals: each names the item and sends nothing


def test_tampered_record_is_refused(w3, build, local_cfg, deployments, deploy_signer):
    net = load_netconfig(local_cfg)
    res = D.deploy_vault(w3, deploy_signer, net, _deal(), build=build, deployments_dir=deployments)
    rec = json.loads(res.record_path.read_text())
    rec["runtime_bytecode_hash"] = "0x" + "ab" * 32
    res.record_path.write_text(json.dumps(rec))
    with Unchanged(w3, deploy_signer.address), pytest.raises(D.DeploymentRecordError, match="runtime_bytecode_hash: the record says 0xabab"):
        D.deploy_vault(w3, deploy_signer, net, _deal(), build=build, deployments_dir=deployments)
    with Unchanged(w3, deploy_signer.address), pytest.raises(D.DeploymentRecordError):
        D.deploy_vault(w3, deploy_signer, net, _deal(), build=build, deployments_dir=deployments, redeploy=True)
    assert D.run_verify(w3, record_file=res.record_path, build=build, out=lambda m: None, err=lambda m: None) == 1


def test_wrong_chain_id(w3, build, cfg_data, deployments, deploy_signer, tmp_path):
    net = load_netconfig(_cfg_variant(tmp_path, cfg_data, **{"network.chain_id": 1}))
    with Unchanged(w3, deploy_signer.address), pytest.raises(D.PreflightError) as ei:
        D.deploy_vault(w3, deploy_signer, net, _deal(), build=build, deployments_dir=deployments)
    assert ei.value.items() == ["network.chain_id"]
    assert "chain id 138" in str(ei.value) and "expects 1" in str(ei.value)


def test_wrong_genesis_hash(w3, build, cfg_data, deployments, deploy_signer, tmp_path):
    net = load_netconfig(_cfg_variant(tmp_path, cfg_data, **{"network.genesis_hash": "0x" + "11" * 32}))
    with Unchanged(w3, deploy_signer.address), pytest.raises(D.PreflightError) as ei:
        D.deploy_vault(w3, deploy_signer, net, _deal(), build=build, deployments_dir=deployments)
    assert ei.value.items() == ["network.genesis_hash"] and "different chain" in str(ei.value)


def test_null_genesis_needs_accept_genesis(w3, build, cfg_data, deployments, deploy_signer, tmp_path):
    """The Chain 138 placeholder: a non-ephemeral network with genesis_hash null."""
    net = load_netconfig(_cfg_variant(tmp_path, cfg_data, **{"network.genesis_hash": None, "network.ephemeral": False}))
    seen = "0x" + bytes(w3.eth.get_block(0)["hash"]).hex()
    with Unchanged(w3, deploy_signer.address), pytest.raises(D.PreflightError, match=f"--accept-genesis {seen}"):
        D.deploy_vault(w3, deploy_signer, net, _deal(), build=build, deployments_dir=deployments)
    with Unchanged(w3, deploy_signer.address), pytest.raises(D.PreflightError, match=r"network\.genesis_hash"):
        D.check_identity(w3, net, accept_genesis="0x" + "22" * 32)
    plan = D.preflight(w3, net, _deal(), build, deploy_signer.address, accept_genesis=seen)
    assert plan.identity.genesis_accepted_by_flag is True


def test_real_chain138_config_refused_on_the_mirror(w3, build, deployments, deploy_signer):
    """deployments/chain138.config.yaml as checked in: placeholder genesis and null venues."""
    net = load_netconfig(CHAIN138_CONFIG)
    with Unchanged(w3, deploy_signer.address), pytest.raises(D.PreflightError) as ei:
        D.deploy_vault(w3, deploy_signer, net, _deal(), build=build, deployments_dir=deployments)
    assert ei.value.items() == ["network.genesis_hash"]
    seen = "0x" + bytes(w3.eth.get_block(0)["hash"]).hex()
    with pytest.raises(D.PreflightError) as ei:
        D.preflight(w3, net, _deal(), build, deploy_signer.address, accept_genesis=seen)
    assert {"tokens.usdtz.address", "venues.router", "venues.desk"} <= set(ei.value.items())


def test_missing_contract_at_configured_address(w3, build, cfg_data, deployments, deploy_signer, tmp_path):
    empty = role_address("test.no-code-here")
    net = load_netconfig(_cfg_variant(tmp_path, cfg_data, **{"venues.desk": empty}))
    with Unchanged(w3, deploy_signer.address), pytest.raises(D.PreflightError) as ei:
        D.deploy_vault(w3, deploy_signer, net, _deal(), build=build, deployments_dir=deployments)
    assert ei.value.items() == ["venues.desk"] and f"no contract at {empty}" in str(ei.value)
    assert not (deployments / "local").exists()


def test_wrong_token_decimals_and_symbol(w3, build, cfg_data, deployments, deploy_signer, tmp_path):
    net = load_netconfig(_cfg_variant(tmp_path, cfg_data, **{"tokens.cusdc.decimals": 18, "tokens.weth10.symbol": "WETH"}))
    with Unchanged(w3, deploy_signer.address), pytest.raises(D.PreflightError) as ei:
        D.deploy_vault(w3, deploy_signer, net, _deal(), build=build, deployments_dir=deployments)
    assert set(ei.value.items()) == {"tokens.cusdc.decimals", "tokens.weth10.symbol"}


def test_poor_deployer(w3, build, local_cfg, deployments):
    poor = role_address("test.poor-deployer")
    set_balance(w3, poor, 10**12)
    signer = D.AnvilSigner(w3, poor, impersonate=True)
    with Unchanged(w3, poor), pytest.raises(D.PreflightError) as ei:
        D.deploy_vault(w3, signer, load_netconfig(local_cfg), _deal(), build=build, deployments_dir=deployments)
    assert ei.value.items() == ["deployer"]


def test_run_deploy_exit_code_2_names_the_item(w3, build, cfg_data, deployments, deploy_signer, tmp_path):
    cfg = _cfg_variant(tmp_path, cfg_data, **{"network.chain_id": 5})
    errors: list[str] = []
    with Unchanged(w3, deploy_signer.address):
        code = D.run_deploy(w3, deal_path=EXAMPLE, config_path=cfg, signer=deploy_signer, deployments_dir=deployments,
                            resolver=_resolver, build=build, out=errors.append, err=errors.append)
    assert code == 2 and "network.chain_id" in errors[-1]
    bad_spec = tmp_path / "bad.yaml"
    bad_spec.write_text(EXAMPLE.read_text().replace("max_ltv_bps: 3000", "max_ltv_bps: 4000"))
    code = D.run_deploy(w3, deal_path=bad_spec, config_path=cfg, signer=deploy_signer, deployments_dir=deployments,
                        resolver=_resolver, build=build, out=errors.append, err=errors.append)
    assert code == 2 and "vault.max_ltv_bps" in errors[-1]


# ---------------------------------------------------------------------------------------------
# forks of the mirror


def test_deploy_on_a_fork_of_the_mirror(w3, build, local_cfg, deployments):
    url = w3.provider.endpoint_uri
    with start_anvil(fork_url=url) as node:
        fw3 = node.web3()
        assert "0x" + bytes(fw3.eth.get_block(0)["hash"]).hex() == "0x" + bytes(w3.eth.get_block(0)["hash"]).hex()
        who = role_address("test.fork-deployer")
        set_balance(fw3, who, 100 * 10**18)
        res = D.deploy_vault(fw3, D.AnvilSigner(fw3, who, impersonate=True), load_netconfig(local_cfg), _deal(),
                             build=build, deployments_dir=deployments)
        assert res.status == "deployed" and fw3.eth.get_code(res.address)
    assert not w3.eth.get_code(res.address)  # the upstream saw nothing


def test_dry_run_sends_nothing(w3, build, local_cfg, deployments, deploy_signer):
    net = load_netconfig(local_cfg)
    with Unchanged(w3, deploy_signer.address):
        res = D.dry_run(w3, w3.provider.endpoint_uri, net, _deal(), deploy_signer.address, build=build, deployments_dir=deployments)
    assert res.status == "dry-run" and res.gas_used and res.record_path is None
    assert not w3.eth.get_code(res.address)
    assert not (deployments / "local").exists()
    # after a real deployment, the dry run finds the record and is a no-op
    D.deploy_vault(w3, deploy_signer, net, _deal(), build=build, deployments_dir=deployments)
    with Unchanged(w3, deploy_signer.address):
        assert D.dry_run(w3, w3.provider.endpoint_uri, net, _deal(), deploy_signer.address, build=build,
                         deployments_dir=deployments).status == "existing"


def test_unsupported_opcode_on_a_pre_shanghai_fork(w3, shanghai_build, local_cfg, deployments):
    """anvil with --hardfork london, a build for shanghai (PUSH0): refused, nothing sent."""
    with start_anvil(fork_url=w3.provider.endpoint_uri, hardfork="london") as node:
        fw3 = node.web3()
        who = role_address("test.fork-deployer")
        set_balance(fw3, who, 100 * 10**18)
        with Unchanged(fw3, who), pytest.raises(D.PreflightError) as ei:
            D.deploy_vault(fw3, D.AnvilSigner(fw3, who, impersonate=True), load_netconfig(local_cfg), _deal(),
                           build=shanghai_build, deployments_dir=deployments)
    assert ei.value.items() == ["build.evm_version"]
    assert "PUSH0 (0x5f, shanghai)" in str(ei.value) and "NotActivated" in str(ei.value)


# ---------------------------------------------------------------------------------------------
# v2: the lens from the network config, the extension's and the lens's code, params via the lens


def test_configured_lens_is_verified_and_used(w3, build, cfg_data, deployments, deploy_signer, tmp_path):
    """A network config naming a lens: nothing but the vault is sent, the record names the
    config's lens; a lens with other code, or none at the address, is refused before sending."""
    first = D.deploy_vault(w3, deploy_signer, load_netconfig(_cfg_variant(tmp_path, cfg_data, name="a")), _deal(),
                           build=build, deployments_dir=deployments / "a")
    lens = first.lens
    net = load_netconfig(_cfg_variant(tmp_path, cfg_data, name="b", **{"venues.lens": lens}))
    nonce = w3.eth.get_transaction_count(deploy_signer.address)
    res = D.deploy_vault(w3, deploy_signer, net, _deal(), build=build, deployments_dir=deployments / "b")
    assert w3.eth.get_transaction_count(deploy_signer.address) == nonce + 1  # the vault only
    assert res.address == create_address(deploy_signer.address, nonce)
    assert res.lens == lens and res.lens_gas_used is None
    assert res.record["lens"]["address"] == lens and res.record["lens"]["source"].startswith("network config")
    assert res.plan.lens == lens and res.plan.lens_tx is None and res.plan.lens_gas_estimate == 0
    # a "lens" that is another contract (the USDTz/cUSDT pair has code): refused, nothing sent
    other = str(cfg_data["venues"]["router"])
    factory = [{"name": "factory", "type": "function", "stateMutability": "view", "inputs": [], "outputs": [{"type": "address"}]}]
    pair = Web3.to_checksum_address(w3.eth.contract(address=other, abi=factory).functions.factory().call())
    bad = load_netconfig(_cfg_variant(tmp_path, cfg_data, name="c", **{"venues.lens": pair}))
    with Unchanged(w3, deploy_signer.address), pytest.raises(D.PreflightError) as ei:
        D.deploy_vault(w3, deploy_signer, bad, _deal(), build=build, deployments_dir=deployments / "c")
    assert ei.value.items() == ["venues.lens"] and "not the DealVaultLens build" in str(ei.value)
    empty = role_address("test.no-lens-here")
    none = load_netconfig(_cfg_variant(tmp_path, cfg_data, name="d", **{"venues.lens": empty}))
    with Unchanged(w3, deploy_signer.address), pytest.raises(D.PreflightError) as ei:
        D.deploy_vault(w3, deploy_signer, none, _deal(), build=build, deployments_dir=deployments / "d")
    assert ei.value.items() == ["venues.lens"] and f"no contract at {empty}" in str(ei.value)


def test_lens_venue_in_the_network_config(cfg_data):
    ok = copy.deepcopy(cfg_data)
    ok["venues"]["lens"] = "0x" + "ab" * 20
    assert parse_netconfig(ok).venues.lens == Web3.to_checksum_address("0x" + "ab" * 20)
    assert parse_netconfig(cfg_data).venues.lens is None  # optional
    dup = copy.deepcopy(cfg_data)
    dup["venues"]["lens"] = dup["venues"]["desk"]
    with pytest.raises(ConfigError, match=r"venues\.lens: .* is also venues\.desk"):
        parse_netconfig(dup)


def _set_code(w3, where: str, code: bytes) -> None:
    w3.provider.make_request("anvil_setCode", [where, "0x" + code.hex()])


def test_verification_checks_the_extension_and_the_lens(w3, build, local_cfg, deployments, deploy_signer):
    """Another extension behind the vault, or another lens, fails verification naming which."""
    res = D.deploy_vault(w3, deploy_signer, load_netconfig(local_cfg), _deal(), build=build, deployments_dir=deployments)
    ext_code = bytes(w3.eth.get_code(res.extension))
    lens_code = bytes(w3.eth.get_code(res.lens))
    errors: list[str] = []
    _set_code(w3, res.extension, ext_code[:-1] + bytes([ext_code[-1] ^ 1]))  # one byte of the metadata tail
    assert D.run_verify(w3, record_file=res.record_path, build=build, out=lambda m: None, err=errors.append) == 1
    assert "extension.runtime_bytecode" in errors[-1] and res.extension in errors[-1]
    _set_code(w3, res.extension, ext_code)
    _set_code(w3, res.lens, lens_code[:-1] + bytes([lens_code[-1] ^ 1]))
    assert D.run_verify(w3, record_file=res.record_path, build=build, out=lambda m: None, err=errors.append) == 1
    assert "lens.runtime_bytecode" in errors[-1] and "extension" not in errors[-1]
    with pytest.raises(D.VerificationError, match=r"lens\.runtime_bytecode_hash: the record says"):
        D.reverify(w3, res.record_path)  # the record's hashes alone catch it too
    _set_code(w3, res.lens, lens_code)
    assert D.run_verify(w3, record_file=res.record_path, build=build, out=lambda m: None) == 0
    # a record without the lens block (a v1 record) cannot be verified: exit 2, saying why
    rec = json.loads(res.record_path.read_text())
    del rec["lens"]
    res.record_path.write_text(json.dumps(rec))
    assert D.run_verify(w3, record_file=res.record_path, build=build, out=lambda m: None, err=errors.append) == 2
    assert "no extension or lens block" in errors[-1]


def _set_param(w3, vault: str, owner: str, param: int, value: int) -> None:
    from eth_abi import encode
    from eth_utils import function_signature_to_4byte_selector

    data = function_signature_to_4byte_selector("setParam(uint8,uint256)") + encode(["uint8", "uint256"], [param, value])
    h = w3.eth.send_transaction({"from": owner, "to": vault, "data": "0x" + data.hex(), "gas": 300_000})
    assert w3.eth.wait_for_transaction_receipt(h)["status"] == 1


def test_reverify_reads_params_through_the_lens_and_accepts_tightened(w3, build, local_cfg, deployments, deploy_signer):
    """The owner tightens maxLtvBps (lower) and twapWindow (higher) with setParam: re-verification
    reads the new values through lens.params and reports them as notes, not failures."""
    res = D.deploy_vault(w3, deploy_signer, load_netconfig(local_cfg), _deal(), build=build, deployments_dir=deployments)
    owner = _resolver("TEST::0")
    spec_risk = _deal().risk
    _set_param(w3, res.address, owner, 0, 2500)                                     # MaxLtvBps: lower is tighter
    _set_param(w3, res.address, owner, 9, spec_risk["twapWindow"] + 60)             # TwapWindow: higher is tighter
    _set_param(w3, res.address, owner, 8, spec_risk["maxOperatorLossBps"] - 10)     # MaxOperatorLossBps: lower
    report = D.reverify(w3, res.record_path, build=build)
    assert report.params["risk"]["maxLtvBps"] == 2500
    assert report.params["risk"]["twapWindow"] == spec_risk["twapWindow"] + 60
    assert sorted(report.notes)[:3] == sorted([
        f"risk.maxLtvBps was tightened on chain since deployment: {spec_risk['maxLtvBps']} -> 2500",
        f"risk.twapWindow was tightened on chain since deployment: {spec_risk['twapWindow']} -> {spec_risk['twapWindow'] + 60}",
        f"risk.maxOperatorLossBps was tightened on chain since deployment: {spec_risk['maxOperatorLossBps']} -> "
        f"{spec_risk['maxOperatorLossBps'] - 10}",
    ])
    # a deployment check (no tightening allowed) refuses the same values, naming each
    with pytest.raises(D.VerificationError) as ei:
        D.verify_deployment(w3, res.address, build, res.record["constructor_args"]["decoded"], lens=res.lens)
    assert {p.item for p in ei.value.problems} == {"risk.maxLtvBps", "risk.twapWindow", "risk.maxOperatorLossBps"}
    # without a lens nothing can be read back: named
    with pytest.raises(D.VerificationError, match="lens: no lens address"):
        D.verify_deployment(w3, res.address, build, {})


def test_constructor_revert_is_decoded_by_name(w3, build, local_cfg, deploy_signer):
    """A parameter the constructor refuses: the preflight names the custom error and its
    arguments (enum by name) from the build's ABI; nothing is sent."""
    deal = _deal()
    bad = D.DealParams(deal_id="bad", roles=deal.roles, risk={**deal.risk, "twapWindow": 0}, stablecoin="cusdt")
    with Unchanged(w3, deploy_signer.address), pytest.raises(D.PreflightError) as ei:
        D.preflight(w3, load_netconfig(local_cfg), bad, build, deploy_signer.address)
    assert ei.value.items() == ["constructor"]
    assert "ParamInvalid(param=TwapWindow(9), value=0)" in str(ei.value)
    bad = D.DealParams(deal_id="bad", roles=deal.roles, risk={**deal.risk, "maxOperatorLossBps": 1001}, stablecoin="cusdt")
    with pytest.raises(D.PreflightError, match=r"CapAboveCeiling\(value=1001, ceiling=1000\)"):
        D.preflight(w3, load_netconfig(local_cfg), bad, build, deploy_signer.address)


# ---------------------------------------------------------------------------------------------
# errors, accounts and the scripts


def test_deploy_errors_carry_the_exit_code_table():
    """One root and one table: a verification mismatch exits 1, every other refusal 2."""
    assert issubclass(D.DeployError, DealVaultError) and issubclass(opcodes.UnsupportedOpcodeError, D.BuildError)
    assert D.VerificationError([D.Problem("x", "y")]).exit_code == ExitCode.FAILED == 1
    for err in (D.PreflightError([D.Problem("x", "y")]), D.DeploymentRecordError("x", "record"), D.BuildError("x"),
                opcodes.UnsupportedOpcodeError("x")):
        assert err.exit_code == ExitCode.INPUT == 2, err


def test_ape_account_by_alias():
    assert ape_account("TEST::3").address == ape.accounts.test_accounts[3].address
    with pytest.raises(AccountError, match=r"^account: 'TEST::x' is not a test account") as ei:
        ape_account("TEST::x")
    assert ei.value.exit_code == ExitCode.INPUT
    with pytest.raises(AccountError, match=r"no ape account with alias 'no-such-alias' \(known: "):
        ape_account("no-such-alias")
    assert D.ape_account is ape_account  # the deploy package's name for it (kept for its callers)


def _ape_run(w3, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CHAIN138_RPC_URL": w3.provider.endpoint_uri}
    return subprocess.run([str(APE), "run", *args, "--network", "chain138:mainnet:node"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def _json_out(p: subprocess.CompletedProcess) -> dict:
    return json.loads(p.stdout[p.stdout.index("{"):])  # after ape's "Connecting to..." line


def test_the_scripts_deploy_and_verify(w3, local_cfg, tmp_path):
    """`ape run deploy` and `ape run verify_deployment` against the session's chain (as the Chain
    138 network, CHAIN138_RPC_URL pointing at it): deployed by the --account, recorded, verified
    by deal id and by record file; the checked-in Chain 138 config (the default for that network)
    is refused with exit 2 and nothing is sent."""
    records = tmp_path / "records"
    who = ape.accounts.test_accounts[7].address
    with Unchanged(w3, who):
        p = _ape_run(w3, "deploy", "--account", "TEST::7", "--deal", str(EXAMPLE), "--deployments", str(records))
    assert p.returncode == 2 and "network.genesis_hash: is null (placeholder)" in p.stderr, p.stderr

    p = _ape_run(w3, "deploy", "--account", "TEST::7", "--deal", str(EXAMPLE), "--config", str(local_cfg), "--deployments", str(records))
    assert p.returncode == 0, p.stderr
    out = _json_out(p)
    path = records / "local" / "mirror" / "demo-001.json"
    assert out["status"] == "deployed" and out["record"] == str(path) and w3.eth.get_code(out["address"])
    assert json.loads(path.read_text())["deployer"] == who
    assert out["address"] == create_address(who, w3.eth.get_transaction_count(who) - 1)  # the lens first, then the vault

    p = _ape_run(w3, "verify_deployment", "--deal", "demo-001", "--config", str(local_cfg), "--deployments", str(records))
    assert p.returncode == 0, p.stderr
    assert _json_out(p)["verified"] is True and _json_out(p)["address"] == out["address"]
    p = _ape_run(w3, "verify_deployment", "--record", str(path))
    assert p.returncode == 0 and _json_out(p)["lens"] == out["lens"], p.stderr
    p = _ape_run(w3, "verify_deployment", "--deal", "no-such-deal", "--config", str(local_cfg), "--deployments", str(records))
    assert p.returncode == 2 and "record: no deployment record" in p.stderr
