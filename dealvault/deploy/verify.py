"""Verification: is the deployed vault what the build and the record say?

The runtime code of the core (at the vault's address), of its extension (``vault.extension()``)
and of the lens equals their builds with the immutables masked (solc's ``immutableReferences``),
and the records' hashes; the core's and the extension's immutables agree with ``vault.setup()``;
every constructor parameter reads back equal (the venues from ``setup()``, the roles from their
getters, the risk parameters through ``lens.params(vault)``, typed by :mod:`dealvault.vault`).
Re-verification later (:func:`reverify`, ``ape run verify_deployment``) accepts owner-settable
caps the owner tightened since deployment, as notes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address
from web3 import Web3

from dealvault.deploy.build import CONTRACT, EXTENSION, LENS, Build, companion_builds, keccak_hex
from dealvault.deploy.errors import DeploymentRecordError, Problem, VerificationError
from dealvault.deploy.params import CONFIG_VENUES, ROLES
from dealvault.deploy.preflight import genesis_hash
from dealvault.deploy.records import load_record
from dealvault.jsonable import jsonable
from dealvault.vault.abi import vault_abi
from dealvault.vault.client import Params, Setup, VaultClient, Venues
from dealvault.vault.params import BY_NAME, RISK_PARAMS_FIELDS, is_tighter

__all__ = ["ReadBack", "VerifyReport", "read_params", "recorded_build", "reverify", "verify_deployment", "verify_record"]


@dataclass(frozen=True)
class ReadBack:
    """The vault's configuration as read on chain: ``setup()``, the roles, ``lens.params(vault)``."""

    setup: Setup
    roles: dict[str, str]
    risk: Params

    def as_config(self) -> dict[str, Any]:
        """Keyed like the constructor's Config (risk by RiskParams field, in struct order), plus
        ``setup`` (the whole Setup, by field name): what a record's ``verification.params`` holds."""
        out: dict[str, Any] = {n: getattr(self.setup.venues, n) for n in CONFIG_VENUES}
        out.update(self.roles)
        risk = self.risk.as_dict()
        out["risk"] = {n: risk[n] for n in RISK_PARAMS_FIELDS}
        out["setup"] = jsonable(self.setup)
        return out


@dataclass
class VerifyReport:
    address: str
    code_hash: str                 # keccak of the deployed runtime with immutables masked
    params: dict[str, Any]         # ReadBack.as_config(): what was read back
    notes: list[str] = field(default_factory=list)
    immutables: dict[str, str] = field(default_factory=dict)
    extension: str = ""            # vault.extension()
    extension_code_hash: str = ""  # keccak of its runtime, immutables masked
    extension_immutables: dict[str, str] = field(default_factory=dict)
    lens: str = ""
    lens_code_hash: str = ""
    read: ReadBack | None = None   # the same, typed


def read_params(w3: Web3, address: str, lens: str) -> ReadBack:
    """The vault's configured parameters as read on chain, through the vault client: the venues
    from ``vault.setup()``, the roles from ``owner()/operator()/guardian()``, the risk parameters
    from ``lens.params(vault)``."""
    client = VaultClient(w3, address, lens)
    getters = client.contract.functions
    roles: dict[str, str] = {r: to_checksum_address(getattr(getters, r)().call()) for r in ROLES}
    return ReadBack(setup=client.setup(), roles=roles, risk=client.params())


def _setup_values(setup: Setup) -> dict[str, Any]:
    """The core's (and the extension's) immutables by name -> what ``setup()`` says they hold."""
    v = setup.venues
    out: dict[str, Any] = {f.name: getattr(v, f.name) for f in fields(Venues)}
    out.update(pairT=v.pairCusdt, pairC=v.pairCusdc, usdtzIs0T=setup.usdtzIs0T, usdtzIs0C=setup.usdtzIs0C,
               coreBps=setup.coreBps, workingBps=setup.workingBps, opportunisticBps=setup.opportunisticBps,
               rung0=setup.rungs[0], rung1=setup.rungs[1], rung2=setup.rungs[2], minTranche=setup.minTranche)
    return out


def _immutable_value(hex32: str, like: Any) -> Any:
    n = int(hex32, 16)
    if isinstance(like, str):
        return to_checksum_address(n.to_bytes(32, "big")[-20:])
    if isinstance(like, bool):
        return bool(n)
    return n


def _check_immutables(where: str, immutables: Mapping[str, str], setup: Setup) -> list[Problem]:
    """Each immutable of ``where`` (the core or the extension) equals what setup() reports."""
    out = []
    for name, want in _setup_values(setup).items():
        if name not in immutables:
            continue
        got = _immutable_value(immutables[name], want)
        if str(got).lower() != str(want).lower():
            out.append(Problem(f"{where}.immutables.{name}", f"the deployed code holds {got}, setup() says {want}"))
    return out


def _check_config(read: ReadBack, expected: Mapping[str, Any], allow_tightened: bool, notes: list[str]) -> list[Problem]:
    """Every parameter of ``expected`` (constructor Config) against what was read back. A risk
    parameter the owner may set (``setParam``) may have been tightened since: a note, when allowed."""
    problems = []
    got_config = read.as_config()
    for n, want in expected.items():
        if n == "risk":
            continue
        got = got_config.get(n)
        if got is None:
            problems.append(Problem(f"config.{n}", "cannot be read back"))
        elif str(got).lower() != str(want).lower():
            problems.append(Problem(f"config.{n}", f"reads {got}, configured {want}"))
    for n, want in (expected.get("risk") or {}).items():
        got = got_config["risk"].get(n)
        if got is None:
            problems.append(Problem(f"risk.{n}", "cannot be read back (not in lens.params)"))
            continue
        want_v = [int(x) for x in want] if isinstance(want, (list, tuple)) else int(want)
        if got == want_v:
            continue
        if allow_tightened and BY_NAME[n].param is not None and is_tighter(n, got, want_v):
            notes.append(f"risk.{n} was tightened on chain since deployment: {want_v} -> {got}")
        else:
            problems.append(Problem(f"risk.{n}", f"reads {got}, configured {want_v}"))
    return problems


def _check_code(w3: Web3, prefix: str, address: str, build: Build, expected_hash: str | None, *, called: str = "",
                masked: str = " (immutables masked)") -> tuple[bytes, str, list[Problem]]:
    """The code at ``address`` against ``build`` and a record's hash: (code, masked hash, problems);
    items ``<prefix>runtime_bytecode`` and ``<prefix>runtime_bytecode_hash``."""
    code = bytes(w3.eth.get_code(to_checksum_address(address)))
    if not code:
        return code, "", [Problem(prefix.rstrip(".") or "address", f"no contract at {address}{called}")]
    code_hash = keccak_hex(build.mask(code))
    problems = []
    why = build.mismatch(code)
    if why:
        problems.append(Problem(f"{prefix}runtime_bytecode", f"the code at {address}{called} {why}"))
    if expected_hash is not None and code_hash != expected_hash.lower():
        problems.append(Problem(f"{prefix}runtime_bytecode_hash", f"the record says {expected_hash}, the code at {address} hashes to {code_hash}{masked}"))
    return code, code_hash, problems


def verify_deployment(
    w3: Web3,
    address: str,
    build: Build,
    expected: Mapping[str, Any],
    *,
    lens: str | None = None,
    extension_build: Build | None = None,
    lens_build: Build | None = None,
    expected_code_hash: str | None = None,
    expected_extension_hash: str | None = None,
    expected_lens_hash: str | None = None,
    allow_tightened: bool = False,
) -> VerifyReport:
    """The runtime code at ``address`` equals ``build``'s (immutables masked) and, if given,
    ``expected_code_hash`` (a record's); the extension's (``vault.extension()``) equals
    ``extension_build``'s and the ``lens``'s equals ``lens_build``'s (and the records' hashes);
    every parameter of ``expected`` (constructor Config) reads back equal, through the lens; the
    core's and the extension's immutables agree with ``setup()``. ``allow_tightened``
    (re-verification later) accepts caps the owner tightened since, as notes. Raises
    VerificationError listing every difference."""
    address = to_checksum_address(address)
    if extension_build is None or lens_build is None:
        ext_b, lens_b = companion_builds(build)
        extension_build, lens_build = extension_build or ext_b, lens_build or lens_b
    notes: list[str] = []
    code, code_hash, problems = _check_code(w3, "", address, build, expected_code_hash)
    if not code:
        raise VerificationError(problems, address)

    ext, ext_hash, ext_imm = "", "", {}
    try:
        ext = to_checksum_address(w3.eth.contract(address=address, abi=vault_abi()).functions.extension().call())
    except Exception as exc:
        problems.append(Problem("extension", f"{address} does not answer extension(): {exc}"))
    if ext:
        ext_code, ext_hash, found = _check_code(w3, "extension.", ext, extension_build, expected_extension_hash,
                                                called=" (vault.extension())")
        problems += found
        ext_imm = extension_build.immutables(ext_code) if ext_code else {}
    lens_hash = ""
    if lens is None:
        problems.append(Problem("lens", "no lens address: the deployment record or the network config (venues.lens) must name the DealVaultLens"))
    else:
        lens = to_checksum_address(lens)
        _lens_code, lens_hash, found = _check_code(w3, "lens.", lens, lens_build, expected_lens_hash, masked="")
        problems += found

    read: ReadBack | None = None
    if not problems and lens is not None:
        try:
            read = read_params(w3, address, lens)
        except Exception as exc:
            problems.append(Problem("params", f"cannot read the parameters back (vault.setup(), roles, lens.params): {exc}"))
    if read is not None:
        problems += _check_immutables("core", build.immutables(code), read.setup)
        problems += _check_immutables("extension", ext_imm, read.setup)
        imm_ext = build.immutables(code).get("extension")
        if imm_ext is not None and _immutable_value(imm_ext, "") != ext:
            problems.append(Problem("core.immutables.extension", f"the deployed code holds {_immutable_value(imm_ext, '')}, extension() says {ext}"))
        problems += _check_config(read, expected, allow_tightened, notes)
    if problems:
        raise VerificationError(problems, address)
    return VerifyReport(address=address, code_hash=code_hash, params=read.as_config() if read else {}, notes=notes,
                        immutables=build.immutables(code), extension=ext, extension_code_hash=ext_hash,
                        extension_immutables=ext_imm, lens=lens or "", lens_code_hash=lens_hash, read=read)


# ---------------------------------------------------------------------------------------------
# against a record


def recorded_build(rec: Mapping[str, Any], contract: str) -> Build:
    """A Build view of a record's block (the core's, ``extension`` or ``lens``), to check an old
    deployment against its own record: no code (its hash is checked instead), its immutable map."""
    return Build(contract=rec.get("contract", contract), source_key=rec.get("source_key", ""), compiler_version="",
                 settings={}, standard_json_input={}, abi=rec.get("abi") or [], creation=b"", runtime=b"",
                 immutable_references=rec.get("immutable_references") or {}, metadata="",
                 immutable_names=rec.get("immutable_names") or {})


def _record_builds(rec: Mapping[str, Any], build: Build | None, ext_build: Build | None,
                   lens_build: Build | None) -> tuple[Build, Build, Build]:
    """The builds to check a record against: the given (current) ones where their runtime hash is
    the record's, else views of the record itself (its hashes and immutable maps)."""

    def pick(given: Build | None, block: Mapping[str, Any], contract: str) -> Build:
        if given is not None and given.runtime_hash == block.get("runtime_bytecode_hash"):
            return given
        return recorded_build(block, contract)

    return (pick(build, rec, CONTRACT), pick(ext_build, rec.get("extension") or {}, EXTENSION),
            pick(lens_build, rec.get("lens") or {}, LENS))


def verify_record(w3: Web3, rec: Mapping[str, Any], builds: tuple[Build | None, Build | None, Build | None],
                  expected: Mapping[str, Any], *, allow_tightened: bool) -> VerifyReport:
    """:func:`verify_deployment` of a record's vault against its own hashes (and ``builds`` where
    they are the recorded ones)."""
    if not rec.get("extension") or not rec.get("lens"):
        raise DeploymentRecordError("the record has no extension or lens block (a DealVault v1 record?): it cannot be verified "
                                    "against DealVault v2; redeploy (--redeploy keeps it under history)", "record")
    b, e, lb = _record_builds(rec, *builds)
    return verify_deployment(w3, rec["address"], b, expected, lens=rec["lens"].get("address"), extension_build=e, lens_build=lb,
                             expected_code_hash=rec["runtime_bytecode_hash"],
                             expected_extension_hash=rec["extension"].get("runtime_bytecode_hash"),
                             expected_lens_hash=rec["lens"].get("runtime_bytecode_hash"), allow_tightened=allow_tightened)


def reverify(w3: Web3, record_file: str | Path, *, build: Build | None = None) -> VerifyReport:
    """``ape run verify_deployment``: re-run the verification against a record at any time.

    Checks the record's own hashes (core, extension, lens) against the chain; where the current
    build has the same runtime hash it is used for a byte-for-byte check, else the record's
    immutable references. The parameters read back through the recorded lens."""
    rec = load_record(Path(record_file))
    genesis = genesis_hash(w3)
    net = rec.get("network") or {}
    problems = []
    if int(w3.eth.chain_id) != int(net.get("chain_id", -1)):
        problems.append(Problem("network.chain_id", f"the node reports {w3.eth.chain_id}, the record was made on {net.get('chain_id')}"))
    if net.get("genesis_hash") and net["genesis_hash"] != genesis:
        problems.append(Problem("network.genesis_hash", f"the node's block 0 hash is {genesis}, the record was made on {net['genesis_hash']}"))
    if problems:
        raise VerificationError(problems, rec.get("address", ""))
    ext_build = lens_build = None
    if build is not None and build.runtime_hash == rec.get("runtime_bytecode_hash"):
        ext_build, lens_build = companion_builds(build)
    report = verify_record(w3, rec, (build, ext_build, lens_build), rec["constructor_args"]["decoded"], allow_tightened=True)
    stale = [b.contract for b in _record_builds(rec, build, ext_build, lens_build) if not b.runtime]
    if stale:
        report.notes.append(f"checked {', '.join(stale)} against the record's hashes and immutable references "
                            "(no current build given, or the current build differs from the recorded one)")
    return report
