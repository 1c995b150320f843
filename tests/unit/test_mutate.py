"""The mutation tool (tools/mutate): the generator's operators, what it never mutates (comments,
strings, NatSpec, pragma/import lines, assembly, emit/revert arguments), its deterministic ids; the
triage check; and that the committed report and triage file agree with the current code.

Pure Python: no compiler, no chain.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "mutate"))
_spec = importlib.util.spec_from_file_location("mutate_run", ROOT / "tools" / "mutate" / "run.py")
run = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("mutate_run", run)
_spec.loader.exec_module(run)
gen = run.gen

BOOKS = {"usdtzHeld", "phase_", "queued", "coreEth"}

SRC = """// SPDX-License-Identifier: MIT
pragma solidity >=0.8.0 <0.9.0;

import {A} from "./A.sol"; // a < b
import "./B.sol";

/// @notice NatSpec: a + b < c, if (x) revert Y();
/** @dev block NatSpec: usdtzHeld = 0; */
contract C {
    uint256 internal constant CAP = 2_500;
    event E(uint256 a);
    error Bad(uint256 a);
    /* block comment: x - y >= z */
    string internal constant S = "a < b + c // not a comment";

    function f(uint256 a, uint256 b) internal returns (uint256) {
        // line comment: a == b
        if (a > b) revert Bad(a - 1);
        if (!(a != b) && b <= CAP) return a * b;
        usdtzHeld = a + b;
        _setStable(a, b);
        _check(a);
        emit E(a + 2);
        assembly ("memory-safe") { let x := add(a, 1) }
        uint256[3] memory arr = [a, b, -int256(a) < 0 ? 1 : 0];
        if (a == 0) phase_ = 1; else if (b < 2) revert Bad(b);
        delete queued[a];
        return arr[0];
    }
}
"""


def _mutants(src: str = SRC):
    return gen.mutants_of("contracts/C.sol", src, BOOKS)


def _by_line(ms, line):
    return sorted((m.operator, m.original, m.mutated) for m in ms if m.line == line)


def _line(src: str, text: str) -> int:
    return next(i for i, l in enumerate(src.splitlines(), 1) if text in l)


def test_nothing_mutated_in_comments_strings_natspec_or_directives():
    ms = _mutants()
    lines = {m.line for m in ms}
    for marker in ("pragma", "import {A}", 'import "./B.sol"', "/// @notice", "/** @dev", "/* block", "string internal",
                   "// line comment", "event E", "error Bad", "emit E", "assembly"):
        assert _line(SRC, marker) not in lines, marker
    # inside a line that has code, the comment part is never touched
    for m in ms:
        assert m.original == SRC[m.start:m.end]
        assert "//" not in m.original or m.operator in ("GUARD", "BOOK", "CALL")


def test_each_operator():
    ms = _mutants()
    assert _by_line(ms, _line(SRC, "constant CAP")) == [("CONST", "2_500", "2501")]
    guard = _by_line(ms, _line(SRC, "if (a > b)"))
    # the guard dropped; its condition flipped; the revert's arguments never mutated
    assert ("GUARD", "if (a > b) revert Bad(a - 1);", "") in guard
    assert {("ROR", ">", ">="), ("ROR", ">", "<=")} <= set(guard)
    assert not any(op in ("AOR", "CONST") for op, _, _ in guard)
    ret = set(_by_line(ms, _line(SRC, "return a * b")))
    assert {("LOR", "!", ""), ("ROR", "!=", "=="), ("LOR", "&&", "||"), ("ROR", "<=", "<"), ("ROR", "<=", ">"),
            ("AOR", "*", "/"), ("GUARD", "if (!(a != b) && b <= CAP) return a * b;", "")} == ret
    assert set(_by_line(ms, _line(SRC, "usdtzHeld = a + b"))) == {("BOOK", "usdtzHeld = a + b;", ""), ("AOR", "+", "-")}
    assert _by_line(ms, _line(SRC, "_setStable(a, b)")) == [("BOOK", "_setStable(a, b);", "")]
    assert _by_line(ms, _line(SRC, "_check(a)")) == [("CALL", "_check(a);", "")]
    assert _by_line(ms, _line(SRC, "delete queued")) == [("BOOK", "delete queued[a];", "")]


def test_branch_bodies_become_empty_blocks_and_else_if_guards_too():
    ms = _mutants()
    got = set(_by_line(ms, _line(SRC, "if (a == 0) phase_ = 1;")))
    # a statement that is an if/else body is replaced by `{}` so the code still parses
    assert ("BOOK", "phase_ = 1;", "{}") in got
    assert ("GUARD", "if (b < 2) revert Bad(b);", "{}") in got
    # the outer if has an else: not a guard
    assert not any(op == "GUARD" and orig.startswith("if (a == 0)") for op, orig, _ in got)


def test_array_type_lengths_and_unary_minus_are_not_mutated():
    got = set(_by_line(_mutants(), _line(SRC, "uint256[3] memory arr")))
    assert ("CONST", "3", "4") not in got
    assert not any(op == "AOR" and orig == "-" for op, orig, _ in got)
    assert ("ROR", "<", "<=") in got and ("CONST", "0", "1") in got


def test_ids_are_deterministic_and_survive_edits_elsewhere():
    a, b = _mutants(), _mutants()
    assert [m.as_dict() for m in a] == [m.as_dict() for m in b]
    assert len({m.id for m in a}) == len(a)
    shifted = SRC.replace("contract C {", "// a new comment line\n\ncontract C {")
    moved = _mutants(shifted)
    assert [m.id for m in moved] == [m.id for m in a]
    assert all(m2.line == m1.line + 2 for m1, m2 in zip(a, moved))
    # two identical operators on one line get distinct ids
    twice = _mutants(SRC.replace("usdtzHeld = a + b;", "usdtzHeld = a + b + a;"))
    plus = [m.id for m in twice if m.operator == "AOR" and m.line == _line(SRC, "usdtzHeld = a")]
    assert len(plus) == 2 and len(set(plus)) == 2


def test_apply_replaces_exactly_the_span_and_refuses_a_changed_file():
    m = next(m for m in _mutants() if m.operator == "BOOK" and m.original.startswith("usdtzHeld"))
    out = gen.apply(SRC, m)
    assert "usdtzHeld = a + b;" not in out and out.replace("\n", "").startswith(SRC[:m.start].replace("\n", ""))
    with pytest.raises(ValueError, match="changed"):
        gen.apply(SRC.replace("usdtzHeld = a + b", "usdtzHeld = a - b"), m)


def test_lexer_rejects_what_it_cannot_read():
    with pytest.raises(gen.ParseError):
        gen.tokenize('string s = "unterminated;\n')
    with pytest.raises(gen.ParseError):
        gen.tokenize("/* never closed")


def test_storage_names_are_the_books():
    src = (ROOT / gen.STORAGE_FILE).read_text()
    names = gen.storage_names(src)
    assert {"usdtzHeld", "usdtzCost", "coreEth", "queued", "initialWords", "phase_", "operatorLoss"} <= names
    assert not any(n in names for n in ("IDealVaultTypes", "internal", "mapping"))


def test_repo_generation_covers_every_operator_and_the_sample_is_stable():
    ms = gen.generate(ROOT)
    assert len(ms) >= 200
    sample = run.select(ms, run.SAMPLE_RATES)
    assert len(sample) >= 200
    assert all(n > 0 for n in gen.counts(sample).values())
    assert {m.file for m in sample} == set(gen.TARGETS)
    assert [m.id for m in run.select(gen.generate(ROOT), run.SAMPLE_RATES)] == [m.id for m in sample]


# --------------------------------------------------------------------------------------------
# Triage check
# --------------------------------------------------------------------------------------------


def _entry(m, outcome, **kw):
    return {"id": m.id, "file": m.file, "line": m.line, "operator": m.operator, "original": m.original,
            "mutated": m.mutated, "outcome": outcome, **kw}


def _setup(tmp_path):
    ms = _mutants()
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "K.t.sol").write_text("contract K { function test_kills_it() public {} }\n")
    return ms


def test_check_requires_every_survivor_triaged(tmp_path):
    ms = _setup(tmp_path)
    report = {"mutants": [_entry(ms[0], "killed"), _entry(ms[1], "survived"), _entry(ms[2], "not_compiled")]}
    problems = run.check(report, {}, ms, tmp_path)
    assert len(problems) == 1 and problems[0].startswith(f"untriaged survivor {ms[1].id}")
    triage = run.load_triage({"survivors": {ms[1].id: {"equivalent": "the product is rounded away"}}})
    assert run.check(report, triage, ms, tmp_path) == []


def test_check_killed_by_needs_an_existing_test_and_a_kill(tmp_path):
    ms = _setup(tmp_path)
    t = run.load_triage({"survivors": {ms[1].id: {"killed_by": "tests/K.t.sol::test_kills_it"}}})
    killed = {"mutants": [_entry(ms[1], "killed")]}
    assert run.check(killed, t, ms, tmp_path) == []
    # still surviving: the named test does not kill it
    still = {"mutants": [_entry(ms[1], "survived")]}
    assert any("report shows it survived" in p for p in run.check(still, t, ms, tmp_path))
    missing = run.load_triage({"survivors": {ms[1].id: {"killed_by": "tests/K.t.sol::test_nope"}}})
    assert any("no such test" in p for p in run.check(killed, missing, ms, tmp_path))
    # --verify-killers records the test that alone killed it: it must be the triage's
    other = {"mutants": [_entry(ms[1], "killed", killed_by="tests/K.t.sol::test_other")]}
    assert any("report verified tests/K.t.sol::test_other" in p for p in run.check(other, t, ms, tmp_path))
    # a survivor the ape stage killed counts as killed
    by_ape = {"mutants": [_entry(ms[1], "survived", ape="killed")]}
    assert run.check(by_ape, t, ms, tmp_path) == []


def test_check_rejects_unknown_ids_stale_reports_and_needless_equivalents(tmp_path):
    ms = _setup(tmp_path)
    t = run.load_triage({"survivors": {"C-ROR-00000000": {"equivalent": "x"}, ms[0].id: {"equivalent": "y"}}})
    report = {"mutants": [_entry(ms[0], "killed"), dict(_entry(ms[1], "killed"), line=999)]}
    problems = run.check(report, t, ms, tmp_path)
    assert any("C-ROR-00000000 is not a mutant" in p for p in problems)
    assert any(f"{ms[0].id} is marked equivalent but the report shows it killed" in p for p in problems)
    assert any(f"{ms[1].id} moved" in p for p in problems)


def test_triage_file_format():
    for bad in ({"survivors": {"X": {"equivalent": "a", "killed_by": "f::t"}}},
                {"survivors": {"X": {"equivalent": "two\nlines"}}},
                {"survivors": {"X": {"killed_by": "no-test-name"}}},
                {"findings": []}):
        with pytest.raises(run.TriageError):
            run.load_triage(bad)


def test_summary_counts_kill_rate_over_compiled_mutants():
    ms = _mutants()
    entries = [_entry(ms[0], "killed"), _entry(ms[1], "timeout"), _entry(ms[2], "survived"),
               _entry(ms[3], "not_compiled"), _entry(ms[4], "survived", ape="killed")]
    s = run.summarize(entries)
    assert (s["compiled"], s["killed"], s["timeout"], s["survived"], s["not_compiled"]) == (4, 2, 1, 1, 1)
    assert s["kill_rate"] == 0.75 and s["killed_by_ape"] == 1 and s["survivors"] == [ms[2].id]


def test_second_rate_excludes_only_survivors_triaged_equivalent():
    ms = _mutants()
    entries = [_entry(ms[0], "killed"), _entry(ms[1], "survived"), _entry(ms[2], "survived"),
               _entry(ms[3], "not_compiled"), _entry(ms[4], "timeout")]
    triage = run.load_triage({"survivors": {ms[1].id: {"equivalent": "the same value is written"},
                                            ms[2].id: {"killed_by": "tests/K.t.sol::test_kills_it"}}})
    # headline: (1 killed + 1 timeout) / 4 compiled; excluding the one equivalent survivor: 2 / 3
    assert run.summarize(entries)["kill_rate"] == 0.5
    assert run.rate_excluding_equivalents(entries, triage) == (1, round(2 / 3, 4))
    md = run.summary_markdown({"mutants": entries}, triage)
    assert "kill rate (killed + timeout) / compiled: **50.0%**" in md
    assert "survivors triaged equivalent: 1; kill rate excluding them: 66.7%" in md
    assert "excluding" not in run.summary_markdown({"mutants": entries})


def test_killer_command_matches_the_test_signature():
    cmd = run.killer_test_cmd("FOUNDRY_PROFILE=mutate tools/forge/run.sh",
                              "tests/forge/MutantKillers2.t.sol::test_oracle_edge_answers")
    assert cmd == ("FOUNDRY_PROFILE=mutate tools/forge/run.sh --match-path tests/forge/MutantKillers2.t.sol "
                   "--match-test '^test_oracle_edge_answers\\('")
    # forge matches the pattern against `name()`: this one matches the test, not a longer name
    pattern = "^test_oracle_edge_answers\\("
    assert re.search(pattern, "test_oracle_edge_answers()") and not re.search(pattern, "test_oracle_edge_answers2()")


def test_committed_report_and_triage_agree_with_the_code():
    report_path = ROOT / "tools" / "mutate" / "report.json"
    report = json.loads(report_path.read_text())
    triage = run.load_triage(yaml.safe_load((ROOT / "tools" / "mutate" / "triage.yaml").read_text()))
    population = gen.generate(ROOT)
    assert run.check(report, triage, population, ROOT) == []
    # the report's ids are the sample's (a campaign stopped part-way ran a subset; `make mutate` resumes it)
    sample = {m.id for m in run.select(population, run.SAMPLE_RATES)}
    assert {e["id"] for e in report["mutants"]} <= sample
    assert report["summary"] == run.summarize(report["mutants"])
