"""The solc bridge (tools/solcx/solc-v0.8.28) answers like a native solc for the modes our
tools use: --version (py-solc-x), --standard-json from stdin with imports resolved through
--base-path/--include-path (ape-solidity, forge --use), --combined-json (slither)."""

from __future__ import annotations

import json
import subprocess

import solcx

from dealvault.paths import NODE_MODULES, ROOT, SOLCX_DIR

BRIDGE = SOLCX_DIR / "solc-v0.8.28"


def run(args, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BRIDGE), *args], input=stdin, capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)


def test_version_banner_is_native_shaped():
    out = run(["--version"])
    assert out.returncode == 0
    assert out.stdout.splitlines()[0].startswith("solc, the solidity compiler")
    assert "Version: 0.8.28+commit.7893614a" in out.stdout


def test_py_solcx_sees_the_bridge_as_installed(monkeypatch):
    monkeypatch.setenv("SOLCX_BINARY_PATH", str(SOLCX_DIR))
    versions = [str(v) for v in solcx.get_installed_solc_versions()]
    assert "0.8.28" in versions


def test_standard_json_resolves_imports_and_returns_whole_large_output(tmp_path):
    # WETH10 plus OpenZeppelin interfaces: imports through --include-path, and an output large
    # enough (hundreds of KB with the AST) that a truncated write would not parse.
    source = (ROOT / "contracts" / "test" / "RedemptionDesk.sol").read_text()
    request = {
        "language": "Solidity",
        "sources": {"contracts/test/RedemptionDesk.sol": {"content": source}},
        "settings": {
            "evmVersion": "paris",
            "optimizer": {"enabled": True, "runs": 200},
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"], "": ["ast"]}},
        },
    }
    out = run(["--standard-json", "--base-path", str(ROOT), "--include-path", str(NODE_MODULES)], json.dumps(request))
    assert out.returncode == 0
    assert len(out.stdout) > 100_000
    result = json.loads(out.stdout)  # raises if the write was cut short
    errors = [e for e in result.get("errors", []) if e["severity"] == "error"]
    assert errors == []
    desk = result["contracts"]["contracts/test/RedemptionDesk.sol"]["RedemptionDesk"]
    runtime = bytes.fromhex(desk["evm"]["deployedBytecode"]["object"])
    assert 0x5F not in _opcodes(runtime), "paris build must not contain PUSH0"
    assert any(k.startswith("@openzeppelin/contracts/") for k in result["sources"])


def test_standard_json_reports_a_missing_import_as_a_compiler_error():
    request = {
        "language": "Solidity",
        "sources": {"x.sol": {"content": 'pragma solidity 0.8.28; import "./nope.sol"; contract X {}'}},
        "settings": {"outputSelection": {"*": {"*": ["abi"]}}},
    }
    out = run(["--standard-json", "--base-path", str(ROOT)], json.dumps(request))
    result = json.loads(out.stdout)
    messages = [e["message"] for e in result["errors"] if e["severity"] == "error"]
    assert any("nope.sol" in m for m in messages)


def test_combined_json_for_slither(tmp_path):
    src = tmp_path / "C.sol"
    src.write_text("// SPDX-License-Identifier: MIT\npragma solidity 0.8.28;\ncontract C { function f() external pure returns (uint256) { return 7; } }\n")
    out = run(["--combined-json", "abi,bin,bin-runtime,hashes", "--evm-version", "paris", str(src)])
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    (key,) = [k for k in data["contracts"] if k.endswith(":C")]
    assert data["contracts"][key]["hashes"] == {"f()": "26121ff0"}
    assert data["contracts"][key]["bin"]


def test_unknown_mode_fails_with_a_message():
    out = run(["--bogus-mode"])
    assert out.returncode == 2
    assert "supported modes" in out.stderr


def _opcodes(code: bytes) -> set[int]:
    """Opcodes actually executed-as-instructions (PUSH data skipped)."""
    ops, i = set(), 0
    while i < len(code):
        op = code[i]
        ops.add(op)
        i += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)
    return ops
