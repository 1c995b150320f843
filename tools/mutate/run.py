#!/usr/bin/env python3
"""`make mutate`: mutation testing of the vault's code (tools/mutate/README.md).

Generates the mutants (tools/mutate/gen.py), selects the campaign's deterministic sample, and
runs each in a copy of the repository (one temporary directory per worker, 2 workers at most):
apply the mutant, compile (`forge build`: a mutant that does not compile is counted apart, it is
no kill), run the test command (the fast forge suite). Killed: the test command fails; survived:
it passes; timeout: it ran past the limit (a kill, counted apart). `--ape` then runs the vault's
ape unit tests on the forge survivors (slow: minutes per mutant).

The report (tools/mutate/report.json) is written after every mutant, so an interrupted campaign
resumes where it stopped: a run skips the mutants already in it. `--survivors` re-runs only the
survivors (after adding tests that kill them). `--check` checks the report against the triage
file (tools/mutate/triage.yaml): every survivor is triaged (equivalent, with a one-line reason,
or killed by a named test that the report shows killed), and the triage names only mutants that
exist. Exit codes: 0 done/check passes; 1 check fails or the baseline fails; 2 bad usage/input.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen

ROOT = gen.ROOT
DEFAULT_REPORT = ROOT / "tools" / "mutate" / "report.json"
DEFAULT_TRIAGE = ROOT / "tools" / "mutate" / "triage.yaml"
DEFAULT_SUMMARY = ROOT / "tools" / "mutate" / "SUMMARY.md"

#: The campaign's sample: a mutant is in it when its id's hash falls below its operator's rate.
#: The operators the issue names (dropped guards and cap checks, skipped book updates) weigh more;
#: membership depends only on the mutant's own id, so editing one line never reshuffles the rest.
SAMPLE_RATES = {"ROR": 0.2, "AOR": 0.2, "LOR": 0.5, "CONST": 0.15, "GUARD": 0.6, "BOOK": 0.6, "CALL": 0.3}

#: The compile check (forge's `mutate` profile, foundry.toml), then the fast forge suite (tests/forge,
#: tools/forge/run.sh: 50 invariant runs x 32 calls and every unit-style forge test). With the
#: optimizer, as the suite is built (without it the invariant handlers hit "stack too deep").
BUILD_CMD = "FOUNDRY_PROFILE=mutate forge build"
TEST_CMD = "FOUNDRY_PROFILE=mutate tools/forge/run.sh"
APE_CMD = "ape test tests/unit/vault -q -x -p no:cacheprovider"
#: Run once in the repository before the workers start: the kit's chain state the forge suite loads
#: (tools/forge/state.py), shared by every worker copy through DV_FORGE_STATE (no vault code in it).
STATE_DIR = ".forge/mutate-state"
PREPARE_CMD = f"python tools/forge/state.py {STATE_DIR}"

OUTCOMES = ("killed", "timeout", "survived", "not_compiled")


# --------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------


def in_sample(m: gen.Mutant, rates: dict[str, float]) -> bool:
    h = int(hashlib.sha1(m.id.encode()).hexdigest()[:8], 16) / 2**32
    return h < rates.get(m.operator, 0.0)


def select(mutants: list[gen.Mutant], rates: dict[str, float] | None) -> list[gen.Mutant]:
    """The campaign's mutants: all (rates None) or the deterministic sample."""
    return list(mutants) if rates is None else [m for m in mutants if in_sample(m, rates)]


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def load_report(path: Path) -> dict:
    if not path.exists():
        return {"mutants": {}}
    data = json.loads(path.read_text())
    data["mutants"] = {e["id"]: e for e in data.get("mutants", [])}
    return data


def final_outcome(e: dict) -> str:
    """A forge survivor that the ape unit tests killed counts as killed."""
    if e["outcome"] == "survived" and e.get("ape") in ("killed", "timeout"):
        return e["ape"]
    return e["outcome"]


def summarize(entries: list[dict]) -> dict:
    by_outcome = dict.fromkeys(OUTCOMES, 0)
    by_op: dict[str, dict[str, int]] = {op: dict.fromkeys(OUTCOMES, 0) for op in gen.OPERATORS}
    for e in entries:
        o = final_outcome(e)
        by_outcome[o] += 1
        by_op[e["operator"]][o] += 1
    compiled = len(entries) - by_outcome["not_compiled"]
    kills = by_outcome["killed"] + by_outcome["timeout"]
    times = [e["build_s"] + e.get("test_s", 0.0) for e in entries if "build_s" in e]
    return {
        "mutants": len(entries),
        "compiled": compiled,
        **by_outcome,
        "killed_by_ape": sum(1 for e in entries if e["outcome"] == "survived" and e.get("ape") in ("killed", "timeout")),
        "kill_rate": round(kills / compiled, 4) if compiled else None,
        "by_operator": by_op,
        "mean_mutant_s": round(sum(times) / len(times), 1) if times else None,
        "survivors": [e["id"] for e in entries if final_outcome(e) == "survived"],
    }


def write_report(path: Path, report: dict, order: dict[str, int]) -> None:
    entries = sorted(report["mutants"].values(), key=lambda e: order.get(e["id"], 1 << 30))
    out = {k: v for k, v in report.items() if k != "mutants"}
    out["summary"] = summarize(entries)
    out["mutants"] = entries
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1) + "\n")
    tmp.replace(path)


def rate_excluding_equivalents(entries: list[dict], triage: dict[str, dict]) -> tuple[int, float | None]:
    """(survivors triaged equivalent, (killed + timeout) / (compiled - those)): a second rate beside
    the headline one, which stays (killed + timeout) / compiled."""
    s = summarize(entries)
    equivalent = sum(1 for mid in s["survivors"] if "equivalent" in triage.get(mid, {}))
    den = s["compiled"] - equivalent
    return equivalent, (round((s["killed"] + s["timeout"]) / den, 4) if den else None)


def summary_markdown(report: dict, triage: dict[str, dict] | None = None) -> str:
    entries = report["mutants"] if isinstance(report["mutants"], list) else list(report["mutants"].values())
    s = summarize(entries)
    rate = f"{100 * s['kill_rate']:.1f}%" if s["kill_rate"] is not None else "n/a"
    lines = [
        "# Mutation score (generated by tools/mutate/run.py from report.json; do not edit)",
        "",
        f"- mutants run: {s['mutants']} (sample of {report.get('population', '?')} generated), "
        f"did not compile: {s['not_compiled']}, compiled: {s['compiled']}",
        f"- killed: {s['killed']} (of which by the ape unit tests: {s['killed_by_ape']}), "
        f"timeout: {s['timeout']}, survived: {s['survived']}",
        f"- kill rate (killed + timeout) / compiled: **{rate}**",
    ]
    if triage is not None:
        n_eq, r_eq = rate_excluding_equivalents(entries, triage)
        lines.append(f"- survivors triaged equivalent: {n_eq}; kill rate excluding them: "
                     + (f"{100 * r_eq:.1f}%" if r_eq is not None else "n/a"))
    lines += [
        f"- mean cost per mutant (compile + tests): {s['mean_mutant_s']} s",
        "",
        "| operator | mutants | killed | timeout | survived | not compiled |",
        "|---|---|---|---|---|---|",
    ]
    for op, c in s["by_operator"].items():
        lines.append(f"| {op} | {sum(c.values())} | {c['killed']} | {c['timeout']} | {c['survived']} | {c['not_compiled']} |")
    lines += ["", "## Survivors", ""]
    by_id = {e["id"]: e for e in entries}
    for mid in s["survivors"]:
        e = by_id[mid]
        lines.append(f"- `{mid}` {e['file']}:{e['line']} {e['operator']}: "
                     f"`{gen._squash(e['original'])}` -> `{gen._squash(e['mutated']) or '(deleted)'}`")
    if not s["survivors"]:
        lines.append("(none)")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Triage
# --------------------------------------------------------------------------------------------


class TriageError(Exception):
    """The triage file is malformed."""


def load_triage(data: dict | None) -> dict[str, dict]:
    """{id: {"equivalent": reason} | {"killed_by": "path::testName"}} from a parsed triage.yaml."""
    data = data or {}
    if not isinstance(data, dict) or set(data) - {"survivors"}:
        raise TriageError("triage file must be a mapping with one key, 'survivors'")
    entries = data.get("survivors") or {}
    if not isinstance(entries, dict):
        raise TriageError("'survivors' must map mutant ids to entries")
    for mid, e in entries.items():
        if not isinstance(e, dict) or len(e) != 1 or next(iter(e)) not in ("equivalent", "killed_by"):
            raise TriageError(f"{mid}: give exactly one of 'equivalent: <reason>' or 'killed_by: <file>::<test>'")
        (key, val), = e.items()
        if not isinstance(val, str) or not val.strip() or "\n" in val.strip():
            raise TriageError(f"{mid}: '{key}' must be one line")
        if key == "killed_by" and "::" not in val:
            raise TriageError(f"{mid}: killed_by must be '<file>::<test function>'")
    return entries


def check(report: dict, triage: dict[str, dict], mutants: list[gen.Mutant], root: Path = ROOT) -> list[str]:
    """What is wrong with the committed report and triage (empty: the check passes)."""
    problems: list[str] = []
    by_id = {m.id: m for m in mutants}
    entries = report["mutants"] if isinstance(report["mutants"], list) else list(report["mutants"].values())
    rep = {e["id"]: e for e in entries}
    for mid, e in rep.items():
        m = by_id.get(mid)
        if m is None:
            problems.append(f"report: {mid} is not a mutant of the current code (rerun `make mutate`)")
        elif (e["file"], e["line"], e["original"], e["mutated"]) != (m.file, m.line, m.original, m.mutated):
            problems.append(f"report: {mid} moved to {m.file}:{m.line} (rerun `make mutate` to refresh the report)")
    for mid, t in triage.items():
        if mid not in by_id:
            problems.append(f"triage: {mid} is not a mutant of the current code")
            continue
        e = rep.get(mid)
        if e is None:
            problems.append(f"triage: {mid} is not in the report")
            continue
        if "killed_by" in t:
            path, _, test = t["killed_by"].partition("::")
            f = root / path
            if not f.exists() or f"function {test}(" not in f.read_text():
                problems.append(f"triage: {mid} killed_by {t['killed_by']}: no such test")
            if e.get("killed_by") not in (None, t["killed_by"]):
                problems.append(f"triage: {mid} killed_by {t['killed_by']}, but the report verified {e['killed_by']}")
            if final_outcome(e) not in ("killed", "timeout"):
                problems.append(f"triage: {mid} killed_by {t['killed_by']}, but the report shows it {final_outcome(e)} "
                                "(rerun `make mutate ARGS=--survivors`)")
        elif final_outcome(e) != "survived":
            problems.append(f"triage: {mid} is marked equivalent but the report shows it {final_outcome(e)}: drop the entry")
    for mid, e in rep.items():
        if final_outcome(e) == "survived" and "equivalent" not in triage.get(mid, {}):
            problems.append(f"untriaged survivor {mid}: {e['file']}:{e['line']} {e['operator']} "
                            f"`{gen._squash(e['original'])}` -> `{gen._squash(e['mutated']) or '(deleted)'}`")
    return problems


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def _env(cwd: Path, state: Path) -> dict[str, str]:
    """The project's environment (the Makefile's) for a copy of the repository at `cwd`."""
    path = f"{cwd}/.venv/bin:{cwd}/node_modules/.bin:{os.environ.get('PATH', '')}"
    return dict(os.environ, PATH=path, SOLCX_BINARY_PATH=f"{cwd}/tools/solcx", PYTHONPATH=str(cwd),
                DV_FORGE_STATE=str(state))


def _run(cmd: str, cwd: Path, timeout: float | None, state: Path) -> tuple[str, float, str]:
    """(ok | fail | timeout, seconds, output tail): `cmd` in bash, its whole process group killed on timeout."""
    t0 = time.monotonic()
    proc = subprocess.Popen(["bash", "-c", cmd], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, text=True, errors="replace", env=_env(cwd, state))
    try:
        out, _ = proc.communicate(timeout=timeout)
        status = "ok" if proc.returncode == 0 else "fail"
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        status = "timeout"
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return status, round(time.monotonic() - t0, 1), (out or "")[-2000:]


def copy_repo(root: Path, dest: Path) -> None:
    """The tracked and untracked (not ignored) files of `root`, plus links to its .venv and node_modules."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for rel in files:
        src = root / rel
        if not rel or not src.is_file() or src.is_symlink():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    for link in (".venv", "node_modules"):
        if (root / link).exists():
            (dest / link).symlink_to((root / link).resolve())


def killer_test_cmd(cmd: str, killer: str) -> str:
    """`cmd` (the forge suite) narrowed to the one test `killer` ("<file>::<test function>"). forge
    matches --match-test against the test's signature (`name()`), so the pattern is `^name\\(`: an
    anchored `^name$` matches nothing and forge exits 0 ("No tests found")."""
    test_file, _, test = killer.partition("::")
    pattern = "^" + test + r"\("
    return f"{cmd} --match-path {shlex.quote(test_file)} --match-test {shlex.quote(pattern)}"


class Campaign:
    def __init__(self, args: argparse.Namespace, report: dict, order: dict[str, int], log):
        self.a = args
        self.report = report
        self.order = order
        self.lock = threading.Lock()
        self.log = log
        self.done = 0
        self.total = 0
        self.state = (args.root / STATE_DIR).resolve()
        self.killers: dict[str, str] = {}

    def record(self, m: gen.Mutant, fields: dict) -> None:
        with self.lock:
            e = self.report["mutants"].get(m.id, {})
            e.update({"id": m.id, "file": m.file, "line": m.line, "operator": m.operator,
                      "original": m.original, "mutated": m.mutated, "run": len(self.report["runs"])}, **fields)
            self.report["mutants"][m.id] = e
            write_report(self.a.report, self.report, self.order)
            self.done += 1
            self.log(f"[{self.done}/{self.total}] {m.id} {m.file}:{m.line} {m.operator} -> {fields.get('ape', fields.get('outcome'))} "
                     f"({fields.get('build_s', 0)} s build, {fields.get('test_s', fields.get('ape_s', 0))} s test)")

    def worker(self, wid: int, work: queue.Queue, stage: str, timeout: float) -> None:
        wdir = Path(tempfile.mkdtemp(prefix=f"dv-mutate-{wid}-"))
        try:
            copy_repo(self.a.root, wdir)
            cmd = self.a.test_cmd if stage == "forge" else self.a.ape_cmd
            st, b_secs, out = _run(self.a.build_cmd, wdir, None, self.state)
            st2, t_secs, out2 = _run(cmd, wdir, None, self.state) if st == "ok" else ("fail", 0.0, "")
            self.log(f"worker {wid}: baseline build {st} {b_secs} s, {stage} tests {st2} {t_secs} s")
            if st != "ok" or st2 != "ok":
                self.log(f"worker {wid}: the baseline fails; no mutant run\n{out}\n{out2}")
                self.failed = True
                return
            with self.lock:
                self.report.setdefault("baseline", {})[stage] = {"build_s": b_secs, "test_s": t_secs}
            limit = timeout or max(60.0, 3 * t_secs + 30)
            while not self.stop.is_set():
                if self.a.deadline and time.time() > self.a.deadline:
                    self.log(f"worker {wid}: past the deadline, no new mutant")
                    return
                try:
                    m = work.get_nowait()
                except queue.Empty:
                    return
                self.one(wdir, m, stage, cmd, limit)
        finally:
            if not self.a.keep:
                for link in (".venv", "node_modules"):  # the links go, never what they point to
                    if (wdir / link).is_symlink():
                        (wdir / link).unlink()
                shutil.rmtree(wdir, ignore_errors=True)

    def one(self, wdir: Path, m: gen.Mutant, stage: str, cmd: str, limit: float) -> None:
        path = wdir / m.file
        original = path.read_text()
        path.write_text(gen.apply(original, m))
        try:
            st, b_secs, out = _run(self.a.build_cmd, wdir, max(limit, 300.0), self.state)
            if st != "ok":
                self.record(m, {"outcome": "not_compiled", "build_s": b_secs, "compile_error": _first_error(out)}
                            if stage == "forge" else {"ape": "not_compiled"})
                return
            killer = self.killers.get(m.id)
            if killer and stage == "forge":
                # --verify-killers: the named test alone must fail on the mutant
                test = killer.partition("::")[2]
                cmd = killer_test_cmd(cmd, killer)
            st, t_secs, out = _run(cmd, wdir, limit, self.state)
            if killer and stage == "forge" and f"{test}()" not in out:
                self.log(f"{m.id}: the test {killer} did not run:\n{out[-1500:]}")
                self.failed = True
                return
            outcome = {"ok": "survived", "fail": "killed", "timeout": "timeout"}[st]
            if stage == "forge":
                self.record(m, {"outcome": outcome, "build_s": b_secs, "test_s": t_secs}
                            | ({"killed_by": killer} if killer else {}))
            else:
                self.record(m, {"ape": outcome, "ape_s": t_secs})
        finally:
            path.write_text(original)

    def run(self, mutants: list[gen.Mutant], stage: str) -> bool:
        self.total, self.done, self.failed = len(mutants), 0, False
        self.stop = threading.Event()
        if not mutants:
            return True
        work: queue.Queue = queue.Queue()
        for m in mutants:
            work.put(m)
        threads = [threading.Thread(target=self.worker, args=(w, work, stage, self.a.timeout), daemon=True)
                   for w in range(min(self.a.jobs, len(mutants)))]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(1.0)
        except KeyboardInterrupt:
            self.stop.set()
            self.log("interrupted: finishing the mutants under way (the report keeps every one done)")
            for t in threads:
                t.join()
            raise
        return not self.failed


def _head(root: Path) -> str:
    """The commit the worker copies were taken from (+ "-dirty" with uncommitted changes outside tools/mutate)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=root, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", ".", ":!tools/mutate"], check=False, cwd=root,
                           capture_output=True, text=True).stdout.strip()
    return head + ("-dirty" if dirty else "")


def _deadline(text: str) -> float:
    """UTC HH:MM today (tomorrow if already past) as a Unix time."""
    now = dt.datetime.now(dt.UTC)
    h, m = (int(x) for x in text.split(":"))
    t = now.replace(hour=h, minute=m, second=0, microsecond=0)
    return (t if t > now else t + dt.timedelta(days=1)).timestamp()


def _first_error(out: str) -> str:
    for line in out.splitlines():
        if "Error" in line:
            return line.strip()[:300]
    return out.strip().splitlines()[-1][:300] if out.strip() else ""


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=ROOT, help="the repository to mutate (copied per worker)")
    ap.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    ap.add_argument("--triage", type=Path, default=DEFAULT_TRIAGE)
    ap.add_argument("--summary-file", type=Path, default=DEFAULT_SUMMARY)
    ap.add_argument("--jobs", type=int, default=2, help="parallel workers (default 2, the most this machine takes)")
    ap.add_argument("--all", action="store_true", help="every generated mutant, not the campaign's sample")
    ap.add_argument("--only", nargs="+", metavar="ID", help="these mutants (re-run even if in the report)")
    ap.add_argument("--survivors", action="store_true", help="re-run the report's survivors only")
    ap.add_argument("--verify-killers", action="store_true",
                    help="re-run the triage's killed_by mutants, each against its named test alone")
    ap.add_argument("--limit", type=int, help="at most this many mutants in this run")
    ap.add_argument("--fresh", action="store_true", help="discard the report first")
    ap.add_argument("--ape", action="store_true", help="then run the ape vault unit tests on the forge survivors")
    ap.add_argument("--build-cmd", default=os.environ.get("MUTATE_BUILD_CMD", BUILD_CMD))
    ap.add_argument("--test-cmd", default=os.environ.get("MUTATE_TEST_CMD", TEST_CMD))
    ap.add_argument("--ape-cmd", default=os.environ.get("MUTATE_APE_CMD", APE_CMD))
    ap.add_argument("--prepare", default=os.environ.get("MUTATE_PREPARE_CMD", PREPARE_CMD),
                    help="a command run once in the repository before the workers start")
    ap.add_argument("--timeout", type=float, default=0.0, help="test timeout per mutant (default 3 x baseline + 30 s)")
    ap.add_argument("--deadline", type=_deadline, default=0.0,
                    help="UTC HH:MM after which no new mutant starts (the report keeps what ran; run again to resume)")
    ap.add_argument("--keep", action="store_true", help="keep the worker directories")
    ap.add_argument("--list", action="store_true", help="list the selected mutants and stop")
    ap.add_argument("--summary", action="store_true", help="print the report's summary and write SUMMARY.md")
    ap.add_argument("--check", action="store_true", help="check the report against the triage file")
    a = ap.parse_args(argv)
    a.root = a.root.resolve()

    try:
        population = gen.generate(a.root)
    except (gen.ParseError, OSError) as err:
        print(f"mutate: cannot generate mutants: {err}", file=sys.stderr)
        return 2
    order = {m.id: i for i, m in enumerate(population)}
    sample = select(population, None if a.all else SAMPLE_RATES)
    report = {"mutants": {}} if a.fresh else load_report(a.report)

    if a.check:
        try:
            triage = load_triage(yaml.safe_load(a.triage.read_text()) if a.triage.exists() else None)
        except (TriageError, yaml.YAMLError) as err:
            print(f"mutate: bad triage file: {err}", file=sys.stderr)
            return 2
        problems = check(report, triage, population, a.root)
        for p in problems:
            print(p)
        s = summarize(list(report["mutants"].values()))
        print(f"mutate check: {'FAIL' if problems else 'PASS'}: {s['mutants']} mutants in the report, kill rate "
              f"{s['kill_rate']}, {len(s['survivors'])} survivors, {len(triage)} triage entries")
        return 1 if problems else 0

    def _triage_or_none() -> dict[str, dict] | None:
        try:
            return load_triage(yaml.safe_load(a.triage.read_text())) if a.triage.exists() else None
        except (TriageError, yaml.YAMLError):
            return None

    if a.summary:
        text = summary_markdown(report, _triage_or_none())
        a.summary_file.write_text(text)
        print(text)
        return 0

    by_id = {m.id: m for m in population}
    if a.only:
        unknown = [i for i in a.only if i not in by_id]
        if unknown:
            print(f"mutate: unknown mutant ids: {unknown}", file=sys.stderr)
            return 2
        todo = [by_id[i] for i in a.only]
    elif a.verify_killers:
        triage = load_triage(yaml.safe_load(a.triage.read_text()) if a.triage.exists() else None)
        killers = {i: t["killed_by"] for i, t in triage.items() if "killed_by" in t and i in by_id}
        todo = [by_id[i] for i in killers]
    elif a.survivors:
        todo = [by_id[i] for i, e in report["mutants"].items() if i in by_id and final_outcome(e) == "survived"]
    else:
        todo = [m for m in sample if m.id not in report["mutants"]]
    # a deterministic shuffle: a campaign stopped part-way (--limit, --deadline) ran a uniform subsample
    todo.sort(key=lambda m: hashlib.sha1(f"order:{m.id}".encode()).hexdigest())
    if a.limit is not None:
        todo = todo[:a.limit]

    if a.list:
        for m in todo:
            print(m.id, m.describe())
        print(f"{len(todo)} to run; sample {len(sample)} of {len(population)} generated: {gen.counts(sample)}")
        return 0

    # mutants no longer generated (the code changed) leave the report; the others follow their line
    for stale in [i for i in report["mutants"] if i not in by_id]:
        del report["mutants"][stale]
    for i, e in report["mutants"].items():
        e["line"] = by_id[i].line
    report.update({
        "tool": "tools/mutate/run.py",
        "targets": list(gen.TARGETS),
        "population": len(population),
        "population_by_operator": gen.counts(population),
        "sample_rates": None if a.all else SAMPLE_RATES,
        "sample": len(sample),
        "commands": {"build": a.build_cmd, "test": a.test_cmd, "ape": a.ape_cmd, "prepare": a.prepare},
    })
    report.setdefault("runs", [])

    def log(msg: str) -> None:
        print(f"{dt.datetime.now(dt.UTC):%H:%M:%S} {msg}", flush=True)

    camp = Campaign(a, report, order, log)
    if a.verify_killers:
        camp.killers = killers
    # SIGTERM (and SIGINT, which a background job ignores) stop the campaign like ^C: the mutants
    # under way finish and are recorded, no new one starts
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if todo and a.prepare:
        st, secs, out = _run(a.prepare, a.root, None, camp.state)
        log(f"prepare ({a.prepare}): {st} in {secs} s")
        if st != "ok":
            print(out, file=sys.stderr)
            return 1
    started = time.monotonic()
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    log(f"{len(todo)} mutants to run with {a.jobs} workers ({len(sample)} in the sample, {len(population)} generated)")
    interrupted = False
    try:
        ok = camp.run(todo, "forge")
    except KeyboardInterrupt:
        ok, interrupted = False, True
    forge_s = round(time.monotonic() - started, 1)
    run = {"started": started_at, "commit": _head(a.root), "test_cmd": a.test_cmd, "mutants": len(todo),
           "jobs": a.jobs, "forge_wall_s": forge_s, "mode": "only" if a.only else "verify-killers" if a.verify_killers else "survivors" if a.survivors else "resume"}
    if interrupted:
        run["interrupted"] = True
        run["mutants_done"] = camp.done
    if ok and a.ape:
        survivors = [by_id[i] for i, e in report["mutants"].items()
                     if e["outcome"] == "survived" and (a.survivors or a.only or "ape" not in e)]
        log(f"ape stage: {len(survivors)} forge survivors")
        t1 = time.monotonic()
        ok = camp.run(survivors, "ape")
        run["ape_mutants"], run["ape_wall_s"] = len(survivors), round(time.monotonic() - t1, 1)
    report["runs"].append(run)
    write_report(a.report, report, order)
    text = summary_markdown(load_report(a.report) | {}, _triage_or_none())
    a.summary_file.write_text(text)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
