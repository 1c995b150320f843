#!/usr/bin/env python3
"""Slither gate: run slither over contracts/ through the solc bridge and check its findings
against tools/slither/triage.yaml.

Exit codes: 0 the gate passes; 1 the gate fails (a finding or a disable comment that is not
allowed); 2 the gate could not run (compilation error, bad triage file, slither crashed).

How it works (see tools/slither/README.md):
1. Build one solc standard-json input with every contracts/**/*.sol (same settings as
   ape-config.yaml: solc 0.8.28, evm paris, optimizer 200 runs; OpenZeppelin remapped to
   node_modules), and run slither on it with crytic-compile's `solc-json` platform and our solc
   bridge (tools/solcx/solc-v0.8.28) as the compiler. `--show-ignored-findings` makes slither
   report findings hidden by inline `slither-disable` comments too, so this gate can count them.
2. Drop the findings that only involve dependencies (no element in contracts/).
3. Check (function `check`, tested by tests/unit/test_slither_gate.py without slither):
   - a high or medium finding fails, unless every element of it in our tree lies in
     contracts/test/ (stand-ins that are never deployed) and a triage entry lists it;
   - a low, informational or optimization finding fails unless a triage entry lists it;
   - a finding suppressed by an inline disable comment is allowed (the comment is checked);
   - every `slither-disable` comment in contracts/ must be listed under `disables:`; a comment
     slither does not honour (wrong form, no detector) fails too.
   Triage entries that match nothing are reported as stale (a warning, not a failure).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TRIAGE = ROOT / "tools" / "slither" / "triage.yaml"
SOLC_BRIDGE = ROOT / "tools" / "solcx" / "solc-v0.8.28"

#: Our sources; anything else (node_modules/@openzeppelin/...) is a dependency.
PROJECT_PREFIX = "contracts/"
#: Test stand-ins, never deployed: only here may a high/medium finding be triaged.
TEST_PREFIX = "contracts/test/"

SEVERITIES = ("high", "medium", "low", "informational", "optimization")
BLOCKING = ("high", "medium")

FINDING_KEYS = {"detector", "severity", "file", "contract", "function", "match", "reason"}
DISABLE_KEYS = {"file", "detectors", "anchor", "reason"}

# The forms slither 0.11 honours (slither/core/slither_core.py): a line comment on its own line.
DISABLE_RE = re.compile(r"^\s*//\s*slither-disable-(next-line|start|end)\s*([a-zA-Z0-9_,-]*)")


class TriageError(Exception):
    """The triage file is malformed."""


# --------------------------------------------------------------------------------------------
# Triage file
# --------------------------------------------------------------------------------------------


@dataclass
class FindingRule:
    detector: str
    severity: str
    reason: str
    file: str | list[str] | None = None
    contract: str | list[str] | None = None
    function: str | list[str] | None = None
    match: str | None = None
    hits: int = 0

    def label(self) -> str:
        where = ", ".join(
            f"{k}={v}"
            for k, v in (("file", self.file), ("contract", self.contract),
                         ("function", self.function), ("match", self.match))
            if v
        )
        return f"{self.detector} ({self.severity}) [{where}]"


@dataclass
class DisableRule:
    file: str
    detectors: list[str]
    reason: str
    anchor: str | None = None
    hits: int = 0

    def label(self) -> str:
        a = f", anchor={self.anchor!r}" if self.anchor else ""
        return f"{self.file}: {','.join(self.detectors)}{a}"


@dataclass
class Triage:
    findings: list[FindingRule] = field(default_factory=list)
    disables: list[DisableRule] = field(default_factory=list)


def _reason(entry: dict, where: str) -> str:
    reason = entry.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise TriageError(f"{where}: 'reason' (one line) is required")
    if "\n" in reason.strip():
        raise TriageError(f"{where}: 'reason' must be one line")
    return reason.strip()


def load_triage(data: dict | None) -> Triage:
    """Validate a parsed triage.yaml (a dict) and return its rules."""
    data = data or {}
    if not isinstance(data, dict):
        raise TriageError("triage file must be a mapping with 'findings' and 'disables'")
    unknown = set(data) - {"findings", "disables"}
    if unknown:
        raise TriageError(f"unknown top-level keys: {sorted(unknown)}")
    triage = Triage()
    for i, e in enumerate(data.get("findings") or []):
        where = f"findings[{i}]"
        if not isinstance(e, dict):
            raise TriageError(f"{where}: must be a mapping")
        if set(e) - FINDING_KEYS:
            raise TriageError(f"{where}: unknown keys {sorted(set(e) - FINDING_KEYS)}")
        if not e.get("detector"):
            raise TriageError(f"{where}: 'detector' is required")
        sev = str(e.get("severity", "")).lower()
        if sev not in SEVERITIES:
            raise TriageError(f"{where}: 'severity' must be one of {SEVERITIES}")
        if not any(e.get(k) for k in ("file", "contract", "function", "match")):
            raise TriageError(f"{where}: give at least one of file/contract/function/match")
        for k in ("file", "contract", "function"):
            v = e.get(k)
            if v is not None and not (isinstance(v, str) or (isinstance(v, list) and v and all(isinstance(x, str) for x in v))):
                raise TriageError(f"{where}: '{k}' must be a glob or a list of globs")
        files = e.get("file") if isinstance(e.get("file"), list) else [e.get("file") or ""]
        if sev in BLOCKING and not all(str(f).startswith(TEST_PREFIX) for f in files):
            raise TriageError(
                f"{where}: a {sev} finding can only be triaged in the test stand-ins: "
                f"'file' must start with {TEST_PREFIX} (fix it in the code instead)"
            )
        if e.get("match"):
            try:
                re.compile(e["match"])
            except re.error as err:
                raise TriageError(f"{where}: bad 'match' regex: {err}") from err
        triage.findings.append(FindingRule(
            detector=str(e["detector"]), severity=sev, reason=_reason(e, where),
            file=e.get("file"), contract=e.get("contract"), function=e.get("function"),
            match=e.get("match"),
        ))
    for i, e in enumerate(data.get("disables") or []):
        where = f"disables[{i}]"
        if not isinstance(e, dict):
            raise TriageError(f"{where}: must be a mapping")
        if set(e) - DISABLE_KEYS:
            raise TriageError(f"{where}: unknown keys {sorted(set(e) - DISABLE_KEYS)}")
        dets = e.get("detectors")
        if isinstance(dets, str):
            dets = [d.strip() for d in dets.split(",") if d.strip()]
        if not e.get("file") or not dets:
            raise TriageError(f"{where}: 'file' and 'detectors' are required")
        triage.disables.append(DisableRule(
            file=str(e["file"]), detectors=sorted(dets), reason=_reason(e, where),
            anchor=e.get("anchor"),
        ))
    return triage


# --------------------------------------------------------------------------------------------
# Disable comments
# --------------------------------------------------------------------------------------------


@dataclass
class DisableComment:
    file: str
    line: int  # 1-based
    kind: str  # next-line | start | end | bad
    detectors: list[str]
    text: str
    anchor_text: str  # the next line that is not blank or a comment


def scan_disable_comments(sources: dict[str, str]) -> list[DisableComment]:
    """Every line in our sources that mentions slither-disable."""
    found = []
    for path in sorted(sources):
        lines = sources[path].splitlines()
        for idx, text in enumerate(lines):
            if "slither-disable" not in text:
                continue
            m = DISABLE_RE.match(text)
            kind, dets = ("bad", []) if not m else (
                m.group(1), sorted(d.strip() for d in m.group(2).split(",") if d.strip()))
            if m and not dets:
                kind = "bad"
            anchor = ""
            for nxt in lines[idx + 1:]:
                s = nxt.strip()
                if s and not s.startswith("//") and not s.startswith("*") and not s.startswith("/*"):
                    anchor = s
                    break
            found.append(DisableComment(path, idx + 1, kind, dets, text.strip(), anchor))
    return found


def _suppressed(finding: dict, comments_by_file: dict[str, list[DisableComment]]) -> bool:
    """Would slither hide this finding because of an inline comment? (its own rules)"""
    check = finding.get("check")
    for elem in finding.get("elements", []):
        sm = elem.get("source_mapping") or {}
        f, lines = sm.get("filename_relative"), sm.get("lines") or []
        if not f or not lines or f not in comments_by_file:
            continue
        comments = comments_by_file[f]
        # start/end ranges: the whole element must lie strictly inside.
        opened: dict[str, int] = {}
        for c in comments:
            for d in c.detectors:
                if c.kind == "start":
                    opened[d] = c.line
                elif c.kind == "end" and d in opened:
                    start = opened.pop(d)
                    if d in (check, "all") and start < lines[0] and c.line > lines[-1]:
                        return True
        for d, start in opened.items():  # never closed: runs to the end of the file
            if d in (check, "all") and start < lines[0]:
                return True
        # next-line: the comment sits on the line right above the element's first line.
        for c in comments:
            if c.kind == "next-line" and c.line == min(lines) - 1 and (
                check in c.detectors or "all" in c.detectors
            ):
                return True
    return False


# --------------------------------------------------------------------------------------------
# Findings
# --------------------------------------------------------------------------------------------


def _project_files(finding: dict) -> list[str]:
    return [
        sm["filename_relative"]
        for e in finding.get("elements", [])
        if (sm := e.get("source_mapping") or {}).get("filename_relative", "").startswith(PROJECT_PREFIX)
    ]


def is_dependency_only(finding: dict) -> bool:
    mapped = [e for e in finding.get("elements", []) if (e.get("source_mapping") or {}).get("filename_relative")]
    return bool(mapped) and not _project_files(finding)


def _locations(finding: dict) -> list[tuple[str, str | None, str | None, str | None]]:
    """(file, contract, function name, function signature) of the finding's primary element: the
    first one in our tree (slither lists the subject first: the function of a reentrancy, the
    parameter of a missing zero check...). Later elements (callees, written variables) do not
    count, so an entry for function f never accepts a finding about g that merely calls f."""
    out = []
    for e in finding.get("elements", []):
        sm = e.get("source_mapping") or {}
        f = sm.get("filename_relative", "")
        if not f.startswith(PROJECT_PREFIX):
            continue
        contract = fname = fsig = None
        node = e
        while isinstance(node, dict):
            t = node.get("type")
            tsf = node.get("type_specific_fields") or {}
            if t in ("function", "modifier") and fname is None:
                fname, fsig = node.get("name"), tsf.get("signature")
            if t == "contract" and contract is None:
                contract = node.get("name")
            node = tsf.get("parent")
        out.append((f, contract, fname, fsig))
        break
    return out


def _glob(pattern: str | list[str] | None, value: str | None) -> bool:
    """No pattern matches anything; a list matches if any of its globs does."""
    if pattern is None:
        return True
    patterns = pattern if isinstance(pattern, list) else [pattern]
    return value is not None and any(fnmatch.fnmatchcase(value, str(p)) for p in patterns)


def rule_matches(rule: FindingRule, finding: dict) -> bool:
    if rule.detector != finding.get("check") or rule.severity != str(finding.get("impact", "")).lower():
        return False
    if rule.match and not re.search(rule.match, finding.get("description", "")):
        return False
    if not (rule.file or rule.contract or rule.function):
        return True
    for f, contract, fname, fsig in _locations(finding):
        if (_glob(rule.file, f) and _glob(rule.contract, contract)
                and (_glob(rule.function, fname) or (rule.function is not None and _glob(rule.function, fsig)))):
            return True
    return False


def _first_line(finding: dict) -> str:
    return (finding.get("description") or "").strip().splitlines()[0] if finding.get("description") else "?"


def _describe(finding: dict) -> str:
    return (finding.get("description") or "?").rstrip()


def _suggest(finding: dict) -> str:
    locs = _locations(finding)
    f, contract, fname, _ = locs[0] if locs else ("", None, None, None)
    parts = [f"  - detector: {finding.get('check')}", f"    severity: {str(finding.get('impact')).lower()}"]
    if f:
        parts.append(f"    file: {f}")
    if contract:
        parts.append(f"    contract: {contract}")
    if fname:
        parts.append(f"    function: {fname}")
    parts.append("    reason: <one line: why this is acceptable>")
    return "\n".join(parts)


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # severity -> {found, triaged, suppressed, untriaged}
    dependency_only: int = 0
    disable_comments: int = 0
    triaged: list[tuple[dict, FindingRule]] = field(default_factory=list)
    suppressed: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def check(slither_json: dict, triage: Triage, sources: dict[str, str]) -> Report:
    """Judge slither's JSON output. `sources` maps contracts/... paths to their text."""
    rep = Report(counts={s: {"found": 0, "triaged": 0, "suppressed": 0, "untriaged": 0} for s in SEVERITIES})
    if not slither_json.get("success", False):
        rep.failures.append(f"slither did not succeed: {slither_json.get('error')}")
        return rep
    findings = (slither_json.get("results") or {}).get("detectors") or []

    comments = scan_disable_comments(sources)
    rep.disable_comments = sum(1 for c in comments if c.kind != "end")
    by_file: dict[str, list[DisableComment]] = {}
    for c in comments:
        by_file.setdefault(c.file, []).append(c)

    # 1. Disable comments: each must be listed (end comments close a listed start).
    for c in comments:
        where = f"{c.file}:{c.line}: {c.text}"
        if c.kind == "bad":
            rep.failures.append(f"slither-disable comment slither does not honour (use '// slither-disable-next-line DETECTOR'): {where}")
            continue
        if c.kind == "end":
            continue
        hit = [r for r in triage.disables
               if _glob(r.file, c.file) and r.detectors == c.detectors and (not r.anchor or r.anchor in c.anchor_text)]
        if not hit:
            rep.failures.append(
                f"unlisted slither-disable comment {where}\n"
                f"    add to disables: in triage.yaml:\n"
                f"  - file: {c.file}\n    detectors: [{', '.join(c.detectors)}]\n"
                f"    anchor: {json.dumps(c.anchor_text[:60])}\n    reason: <one line>"
            )
        for r in hit:
            r.hits += 1

    # 2. Findings.
    for fnd in findings:
        if is_dependency_only(fnd):
            rep.dependency_only += 1
            continue
        sev = str(fnd.get("impact", "")).lower()
        if sev not in rep.counts:
            rep.counts[sev] = {"found": 0, "triaged": 0, "suppressed": 0, "untriaged": 0}
        rep.counts[sev]["found"] += 1
        if _suppressed(fnd, by_file):
            rep.counts[sev]["suppressed"] += 1
            rep.suppressed.append(fnd)
            continue
        rules = [r for r in triage.findings if rule_matches(r, fnd)]
        for r in rules:
            r.hits += 1
        if sev in BLOCKING:
            files = _project_files(fnd)
            if rules and files and all(f.startswith(TEST_PREFIX) for f in files):
                rep.counts[sev]["triaged"] += 1
                rep.triaged.append((fnd, rules[0]))
            else:
                rep.counts[sev]["untriaged"] += 1
                hint = (f"\n    a test stand-in: to accept it, add to findings: in triage.yaml:\n{_suggest(fnd)}"
                        if files and all(f.startswith(TEST_PREFIX) for f in files) else
                        f"\n    {sev} findings outside {TEST_PREFIX} cannot be triaged: fix the code; only if slither is"
                        f" wrong, put '// slither-disable-next-line {fnd.get('check')}' on the line above the one it"
                        f" points at and list that comment under disables: with the reason")
                rep.failures.append(f"[{sev}] {fnd.get('check')}: {_describe(fnd)}{hint}")
            continue
        if rules:
            rep.counts[sev]["triaged"] += 1
            rep.triaged.append((fnd, rules[0]))
        else:
            rep.counts[sev]["untriaged"] += 1
            rep.failures.append(
                f"untriaged [{sev}] {fnd.get('check')}: {_describe(fnd)}\n"
                f"    to accept it, add to findings: in triage.yaml:\n{_suggest(fnd)}"
            )

    for r in triage.findings:
        if not r.hits:
            rep.warnings.append(f"stale triage entry (matches no finding): {r.label()}")
    for r in triage.disables:
        if not r.hits:
            rep.warnings.append(f"stale disables entry (matches no comment): {r.label()}")
    return rep


def summary(rep: Report, seconds: float | None = None) -> str:
    rows = [f"{'severity':<14}{'found':>6}{'triaged':>9}{'inline':>8}{'untriaged':>11}"]
    for sev, c in rep.counts.items():
        rows.append(f"{sev:<14}{c['found']:>6}{c['triaged']:>9}{c['suppressed']:>8}{c['untriaged']:>11}")
    tot = {k: sum(c[k] for c in rep.counts.values()) for k in ("found", "triaged", "suppressed", "untriaged")}
    rows.append(f"{'total':<14}{tot['found']:>6}{tot['triaged']:>9}{tot['suppressed']:>8}{tot['untriaged']:>11}")
    tail = (f"dependency-only findings dropped: {rep.dependency_only}; "
            f"slither-disable comments: {rep.disable_comments}; stale triage entries: {len(rep.warnings)}")
    if seconds is not None:
        tail += f"; {seconds:.1f} s"
    verdict = "slither gate: PASS" if rep.ok else f"slither gate: FAIL ({len(rep.failures)} problem(s))"
    return "\n".join(rows + [tail, verdict])


# --------------------------------------------------------------------------------------------
# Running slither
# --------------------------------------------------------------------------------------------


def project_sources(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted((root / "contracts").rglob("*.sol")):
        rel = p.relative_to(root).as_posix()
        if "/.cache/" in rel:
            continue
        out[rel] = p.read_text(encoding="utf-8")
    return out


def compiler_settings(root: Path) -> dict:
    """solc settings, from ape-config.yaml when it has them (same build as `ape compile`)."""
    sol = {}
    cfg = root / "ape-config.yaml"
    if cfg.exists():
        sol = (yaml.safe_load(cfg.read_text()) or {}).get("solidity") or {}
    return {
        "optimizer": {"enabled": bool(sol.get("optimize", True)), "runs": int(sol.get("optimization_runs", 200))},
        "evmVersion": sol.get("evm_version", "paris"),
        "remappings": ["@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/"],
        "outputSelection": {"*": {
            "*": ["abi", "metadata", "devdoc", "userdoc", "evm.bytecode", "evm.deployedBytecode"],
            "": ["ast"],
        }},
    }


def run_slither(root: Path, sources: dict[str, str], workdir: Path) -> dict:
    std_in = {
        "language": "Solidity",
        "sources": {p: {"content": text} for p, text in sources.items()},
        "settings": compiler_settings(root),
    }
    inp, out = workdir / "standard-input.json", workdir / "slither.json"
    inp.write_text(json.dumps(std_in))
    cmd = [
        sys.executable, "-m", "slither", str(inp),
        "--compile-force-framework", "solc-json",
        "--solc", str(SOLC_BRIDGE),
        "--solc-working-dir", str(root),
        "--json", str(out),
        "--show-ignored-findings",
        "--fail-none",
        "--disable-color",
    ]
    env = dict(os.environ)
    env.pop("SOLC_VERSION", None)
    # slither runs from the work directory and solc from the repository (--solc-working-dir):
    # crytic-compile walks up from its own working directory looking for a framework, and the
    # repository's foundry.toml (the forge suites) would take over the solc-json input
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, check=False)  # slither exits non-zero on findings
    if not out.exists():
        sys.stderr.write(proc.stdout + proc.stderr)
        raise RuntimeError(f"slither wrote no JSON (exit {proc.returncode}; is slither-analyzer installed in this venv?)")
    data = json.loads(out.read_text())
    if not data.get("success"):
        sys.stderr.write(proc.stderr[-4000:])
    _rebase(data, root)
    return data


def _rebase(node: object, root: Path) -> None:
    """Every source mapping's ``filename_relative`` made relative to the repository (slither makes
    it relative to its own working directory, the work directory here)."""
    if isinstance(node, dict):
        sm = node.get("source_mapping")
        if isinstance(sm, dict) and sm.get("filename_absolute"):
            try:
                sm["filename_relative"] = Path(sm["filename_absolute"]).resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                pass  # outside the repository: kept as slither wrote it
        for v in node.values():
            _rebase(v, root)
    elif isinstance(node, list):
        for v in node:
            _rebase(v, root)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--triage", type=Path, default=DEFAULT_TRIAGE)
    ap.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    ap.add_argument("--slither-json", type=Path, help="check this slither --json output instead of running slither")
    ap.add_argument("--save-json", type=Path, help="also write slither's JSON output here")
    ap.add_argument("--only", action="append", metavar="PREFIX",
                    help="analyse only sources under this path prefix (development aid; CI runs without it)")
    ap.add_argument("-v", "--verbose", action="store_true", help="list every triaged finding with its reason")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    t0 = time.monotonic()
    try:
        triage = load_triage(yaml.safe_load(args.triage.read_text()) if args.triage.exists() else {})
    except (TriageError, yaml.YAMLError) as err:
        print(f"slither gate: bad triage file {args.triage}: {err}", file=sys.stderr)
        return 2
    sources = project_sources(root)
    if args.only:
        sources = {p: t for p, t in sources.items() if any(p.startswith(o) for o in args.only)}
    if args.slither_json:
        data = json.loads(args.slither_json.read_text())
    else:
        with tempfile.TemporaryDirectory(prefix="slither-gate-") as tmp:
            try:
                data = run_slither(root, sources, Path(tmp))
            except (RuntimeError, json.JSONDecodeError) as err:
                print(f"slither gate: could not run slither: {err}", file=sys.stderr)
                return 2
    if args.save_json:
        args.save_json.write_text(json.dumps(data, indent=1))
    if not data.get("success"):
        print(f"slither gate: slither failed (does contracts/ compile?):\n{data.get('error')}", file=sys.stderr)
        return 2
    rep = check(data, triage, sources)
    for fnd, rule in rep.triaged if args.verbose else []:
        print(f"triaged [{str(fnd.get('impact')).lower()}] {fnd.get('check')}: {_first_line(fnd)}\n    -> {rule.reason}")
    for fnd in rep.suppressed if args.verbose else []:
        print(f"inline-disabled [{str(fnd.get('impact')).lower()}] {fnd.get('check')}: {_first_line(fnd)}")
    for w in rep.warnings:
        print(f"warning: {w}")
    for f in rep.failures:
        print(f"FAIL: {f}\n")
    print(summary(rep, time.monotonic() - t0))
    return 0 if rep.ok else 1


if __name__ == "__main__":
    sys.exit(main())
