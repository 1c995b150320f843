"""The slither gate (tools/slither/run.py) can fail: synthetic slither JSON, no slither run.

Proves that an untriaged medium finding, an untriaged low finding and an unlisted
`slither-disable` comment fail the gate, that listed ones pass, and that the triage file cannot
accept a high/medium finding outside the test stand-ins.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("slither_gate", ROOT / "tools" / "slither" / "run.py")
gate = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("slither_gate", gate)  # dataclasses look their module up there
_spec.loader.exec_module(gate)

VAULT = "contracts/DealVault.sol"
VAULT_SRC = """// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

contract DealVault {
    function redeem(uint256 amount) external {
        desk.redeem(usdtz, amount);
        ladder += 1;
    }

    function sweep() external {
        // slither-disable-next-line low-level-calls
        (bool ok,) = owner.call{value: address(this).balance}("");
        require(ok);
    }
}
"""


def _elem_function(file, contract, name, sig, lines):
    return {
        "type": "function", "name": name,
        "source_mapping": {"filename_relative": file, "lines": lines},
        "type_specific_fields": {"parent": {"type": "contract", "name": contract}, "signature": sig},
    }


def _elem_node(file, fn, lines):
    return {
        "type": "node", "name": "call",
        "source_mapping": {"filename_relative": file, "lines": lines},
        "type_specific_fields": {"parent": fn},
    }


def reentrancy_medium():
    fn = _elem_function(VAULT, "DealVault", "redeem", "redeem(uint256)", [5, 6, 7, 8])
    return {
        "check": "reentrancy-no-eth", "impact": "Medium", "confidence": "Medium",
        "description": "Reentrancy in DealVault.redeem(uint256) (contracts/DealVault.sol#5-8):\n"
                       "\tState variables written after the call(s):\n\t- ladder += 1\n",
        "elements": [fn, _elem_node(VAULT, fn, [6])],
    }


def events_low():
    fn = _elem_function(VAULT, "DealVault", "redeem", "redeem(uint256)", [5, 6, 7, 8])
    return {
        "check": "reentrancy-events", "impact": "Low", "confidence": "Medium",
        "description": "Reentrancy in DealVault.redeem(uint256) (contracts/DealVault.sol#5-8):\n",
        "elements": [fn, _elem_node(VAULT, fn, [6])],
    }


def low_level_call_info():
    fn = _elem_function(VAULT, "DealVault", "sweep", "sweep()", [10, 11, 12, 13, 14])
    return {
        "check": "low-level-calls", "impact": "Informational", "confidence": "High",
        "description": "Low level call in DealVault.sweep() (contracts/DealVault.sol#10-14)\n",
        # slither reports the node on line 12, right under the disable comment on line 11.
        "elements": [_elem_node(VAULT, fn, [12])],
    }


def dependency_only():
    fn = _elem_function("node_modules/@openzeppelin/contracts/utils/math/Math.sol", "Math", "mulDiv",
                        "mulDiv(uint256,uint256,uint256)", [200, 201])
    return {"check": "divide-before-multiply", "impact": "Medium", "confidence": "Medium",
            "description": "Math.mulDiv performs a multiplication on the result of a division\n",
            "elements": [fn]}


def slither_json(*findings):
    return {"success": True, "error": None, "results": {"detectors": list(findings)}}


def triage(text: str):
    return gate.load_triage(yaml.safe_load(text))


SOURCES = {VAULT: VAULT_SRC}
LISTED_DISABLE = """
disables:
  - file: contracts/DealVault.sol
    detectors: [low-level-calls]
    anchor: "owner.call"
    reason: Sends the owner's ETH back; success is checked.
"""


def test_untriaged_medium_fails():
    rep = gate.check(slither_json(reentrancy_medium()), triage(LISTED_DISABLE), SOURCES)
    assert not rep.ok
    assert rep.counts["medium"]["untriaged"] == 1
    assert any("reentrancy-no-eth" in f and "cannot be triaged" in f for f in rep.failures)


def test_medium_outside_test_standins_cannot_be_triaged():
    with pytest.raises(gate.TriageError, match="test stand-ins"):
        triage("""
findings:
  - detector: reentrancy-no-eth
    severity: medium
    file: contracts/DealVault.sol
    reason: trust me
""")
    # An entry scoped to the stand-ins does not reach a finding in production code.
    t = triage("""
findings:
  - detector: reentrancy-no-eth
    severity: medium
    file: contracts/test/*
    reason: stand-in
""" + LISTED_DISABLE)
    assert not gate.check(slither_json(reentrancy_medium()), t, SOURCES).ok


def test_medium_in_test_standin_can_be_triaged():
    f = reentrancy_medium()
    f["elements"] = [dict(e, source_mapping=dict(e["source_mapping"], filename_relative="contracts/test/Desk.sol"))
                     for e in f["elements"]]
    t = triage("""
findings:
  - detector: reentrancy-no-eth
    severity: medium
    file: contracts/test/Desk.sol
    function: redeem
    reason: stand-in, never deployed
""")
    rep = gate.check(slither_json(f), t, {})
    assert rep.ok, rep.failures
    assert rep.counts["medium"] == {"found": 1, "triaged": 1, "suppressed": 0, "untriaged": 0}


def test_untriaged_low_fails_and_triaged_low_passes():
    rep = gate.check(slither_json(events_low()), triage(LISTED_DISABLE), SOURCES)
    assert not rep.ok and "untriaged [low] reentrancy-events" in rep.failures[0]

    t = triage("""
findings:
  - detector: reentrancy-events
    severity: low
    contract: DealVault
    function: redeem(uint256)
    reason: Redeemed event after the desk call reports the desk's answer.
""" + LISTED_DISABLE)
    rep = gate.check(slither_json(events_low()), t, SOURCES)
    assert rep.ok, rep.failures
    assert rep.counts["low"]["triaged"] == 1 and not rep.warnings


def test_triage_entry_must_match_severity_and_location():
    wrong_fn = triage("""
findings:
  - detector: reentrancy-events
    severity: low
    function: sweep
    reason: x
""" + LISTED_DISABLE)
    assert not gate.check(slither_json(events_low()), wrong_fn, SOURCES).ok
    wrong_sev = triage("""
findings:
  - detector: reentrancy-events
    severity: informational
    file: contracts/DealVault.sol
    reason: x
""" + LISTED_DISABLE)
    rep = gate.check(slither_json(events_low()), wrong_sev, SOURCES)
    assert not rep.ok
    assert any("stale" in w for w in rep.warnings)


def test_unlisted_disable_comment_fails():
    rep = gate.check(slither_json(), triage("disables: []"), SOURCES)
    assert not rep.ok
    assert any("unlisted slither-disable comment contracts/DealVault.sol:11" in f for f in rep.failures)


def test_listed_disable_comment_passes_and_counts_the_suppressed_finding():
    rep = gate.check(slither_json(low_level_call_info()), triage(LISTED_DISABLE), SOURCES)
    assert rep.ok, rep.failures
    assert rep.counts["informational"]["suppressed"] == 1
    assert rep.disable_comments == 1


def test_disable_entry_anchor_must_match():
    t = triage("""
disables:
  - file: contracts/DealVault.sol
    detectors: [low-level-calls]
    anchor: "desk.redeem"
    reason: wrong line
""")
    assert not gate.check(slither_json(), t, SOURCES).ok


def test_disable_comment_slither_ignores_fails():
    src = VAULT_SRC.replace("// slither-disable-next-line low-level-calls", "/* slither-disable low-level-calls */")
    rep = gate.check(slither_json(), triage(LISTED_DISABLE), {VAULT: src})
    assert not rep.ok and "does not honour" in rep.failures[0]


def test_disable_start_end_range_suppresses():
    src = VAULT_SRC.replace("        // slither-disable-next-line low-level-calls\n",
                            "        // slither-disable-start low-level-calls\n")
    src = src.replace("        require(ok);\n", "        require(ok);\n        // slither-disable-end low-level-calls\n")
    rep = gate.check(slither_json(low_level_call_info()), triage(LISTED_DISABLE), {VAULT: src})
    assert rep.ok, rep.failures
    assert rep.counts["informational"]["suppressed"] == 1


def test_dependency_only_findings_are_dropped():
    rep = gate.check(slither_json(dependency_only()), triage(LISTED_DISABLE), SOURCES)
    assert rep.ok and rep.dependency_only == 1 and rep.counts["medium"]["found"] == 0


def test_slither_failure_fails():
    rep = gate.check({"success": False, "error": "Invalid compilation", "results": {}}, triage(""), {})
    assert not rep.ok


def test_repo_triage_file_is_valid_and_pragma_rule_is_strict():
    t = gate.load_triage(yaml.safe_load((ROOT / "tools" / "slither" / "triage.yaml").read_text()))
    rule = next(r for r in t.findings if r.detector == "pragma")
    ok = ("2 different versions of Solidity are used:\n\t- Version constraint 0.8.28 is used by:\n"
          "\t\t-0.8.28 (contracts/DealVault.sol#2)\n\t- Version constraint ^0.8.20 is used by:\n"
          "\t\t-^0.8.20 (node_modules/@openzeppelin/contracts/utils/Panic.sol#4)\n")
    bad = ok + "\t- Version constraint ^0.8.0 is used by:\n\t\t-^0.8.0 (contracts/Other.sol#2)\n"
    elem = {"type": "pragma", "name": "0.8.28", "source_mapping": {"filename_relative": VAULT, "lines": [2]}}
    finding = {"check": "pragma", "impact": "Informational", "elements": [elem]}
    assert gate.rule_matches(rule, dict(finding, description=ok))
    assert not gate.rule_matches(rule, dict(finding, description=bad))


def test_cli_exit_codes(tmp_path):
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "DealVault.sol").write_text(VAULT_SRC)
    out = tmp_path / "slither.json"
    tri = tmp_path / "triage.yaml"
    tri.write_text(LISTED_DISABLE)
    out.write_text(json.dumps(slither_json(low_level_call_info())))
    args = ["--root", str(tmp_path), "--triage", str(tri), "--slither-json", str(out)]
    assert gate.main(args) == 0
    out.write_text(json.dumps(slither_json(reentrancy_medium())))
    assert gate.main(args) == 1
    tri.write_text("findings:\n  - detector: x\n    severity: high\n    file: contracts/A.sol\n    reason: y\n")
    assert gate.main(args) == 2


def test_inline_disabled_medium_passes_only_when_listed():
    src = VAULT_SRC.replace("    function redeem(", "    // slither-disable-next-line reentrancy-no-eth\n    function redeem(")
    # The comment now sits on line 5, right above the function (line 6 once shifted).
    f = reentrancy_medium()
    f["elements"][0]["source_mapping"]["lines"] = [6, 7, 8, 9]
    f["elements"][1]["source_mapping"]["lines"] = [7]
    listed = triage(LISTED_DISABLE + """
  - file: contracts/DealVault.sol
    detectors: [reentrancy-no-eth]
    anchor: "function redeem("
    reason: false positive, nonReentrant and the state written after the call is not read by any callback.
""")
    rep = gate.check(slither_json(f), listed, {VAULT: src})
    assert rep.ok, rep.failures
    assert rep.counts["medium"]["suppressed"] == 1
    rep = gate.check(slither_json(f), triage(LISTED_DISABLE), {VAULT: src})
    assert not rep.ok and "unlisted slither-disable comment contracts/DealVault.sol:5" in rep.failures[0]


def test_function_rule_matches_the_primary_element_only():
    # A finding about sweep() whose later element is a node inside redeem() is not redeem's.
    sweep = _elem_function(VAULT, "DealVault", "sweep", "sweep()", [10, 11, 12, 13, 14])
    redeem = _elem_function(VAULT, "DealVault", "redeem", "redeem(uint256)", [5, 6, 7, 8])
    f = {"check": "reentrancy-benign", "impact": "Low", "description": "Reentrancy in DealVault.sweep()\n",
         "elements": [sweep, _elem_node(VAULT, redeem, [7])]}
    t = triage("""
findings:
  - detector: reentrancy-benign
    severity: low
    function: [redeem, supply]
    reason: x
""" + LISTED_DISABLE)
    assert not gate.check(slither_json(f), t, SOURCES).ok
    f["elements"].reverse()
    assert gate.check(slither_json(f), t, SOURCES).ok
