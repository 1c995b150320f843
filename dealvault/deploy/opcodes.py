"""Post-paris opcodes: find them in a build, and ask the target chain whether it runs them.

Chain 138's EVM version is not published, so we compile for ``paris``. Before a deployment the
pipeline scans the build (creation and runtime code, skipping PUSH data and the CBOR metadata
tail) for opcodes newer than paris and probes the target chain with ``eth_call`` of tiny init
code that executes each one. A build that uses an opcode the chain rejects is refused before
anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3

from dealvault.deploy.errors import BuildError

__all__ = ["BY_NAME", "POST_PARIS", "Opcode", "UnsupportedOpcodeError", "check_build", "probe", "scan", "scan_build", "strip_metadata"]


@dataclass(frozen=True)
class Opcode:
    byte: int
    name: str
    fork: str          # first hardfork that has it
    probe: str         # init code (hex, no 0x) that executes the opcode and stops


# PUSH1..PUSH32 carry 1..32 data bytes; PUSH0 (0x5f) carries none.
POST_PARIS: dict[int, Opcode] = {
    0x5F: Opcode(0x5F, "PUSH0", "shanghai", "5f5ff3"),                  # PUSH0 PUSH0 RETURN
    0x5E: Opcode(0x5E, "MCOPY", "cancun", "6000600060005e00"),          # PUSH1 0 x3, MCOPY, STOP
    0x5C: Opcode(0x5C, "TLOAD", "cancun", "60005c00"),                  # PUSH1 0, TLOAD, STOP
    0x5D: Opcode(0x5D, "TSTORE", "cancun", "600060005d00"),             # PUSH1 0 x2, TSTORE, STOP
    0x49: Opcode(0x49, "BLOBHASH", "cancun", "60004900"),               # PUSH1 0, BLOBHASH, STOP
    0x4A: Opcode(0x4A, "BLOBBASEFEE", "cancun", "4a00"),                # BLOBBASEFEE, STOP
}
BY_NAME = {op.name: op for op in POST_PARIS.values()}
CONTROL_PROBE = "600060005200"  # PUSH1 0 PUSH1 0 MSTORE STOP: paris-valid, must succeed


class UnsupportedOpcodeError(BuildError):
    """The build uses an opcode the target chain rejects (or whose support cannot be probed)."""

    def __init__(self, message: str, opcodes: list[str] | None = None) -> None:
        super().__init__(message)
        self.opcodes = opcodes or []


def _bytes(code: str | bytes) -> bytes:
    if isinstance(code, bytes):
        return code
    return bytes.fromhex(code.removeprefix("0x"))


def strip_metadata(code: str | bytes) -> bytes:
    """``code`` without solc's CBOR metadata tail (the last two bytes give its length).

    Only stripped when the tail looks like solc's CBOR map (starts with 0xa1..0xa5), so
    hand-assembled code without metadata is left whole.
    """
    b = _bytes(code)
    if len(b) < 2:
        return b
    n = int.from_bytes(b[-2:], "big")
    start = len(b) - 2 - n
    if 0 < n < len(b) - 2 and 0xA1 <= b[start] <= 0xA5:
        return b[:start]
    return b


def scan(code: str | bytes, *, strip: bool = True) -> dict[str, list[int]]:
    """Post-paris opcodes found in ``code``: name -> byte offsets (PUSH data skipped).

    A linear sweep: bytes after the last reachable instruction (data sections, constructor
    arguments) are read as instructions too, so a stray data byte can show up here. That errs on
    the side of refusing a deployment, never of allowing one.
    """
    b = strip_metadata(code) if strip else _bytes(code)
    found: dict[str, list[int]] = {}
    i = 0
    while i < len(b):
        op = b[i]
        if 0x60 <= op <= 0x7F:
            i += op - 0x5F + 1
            continue
        if op in POST_PARIS:
            found.setdefault(POST_PARIS[op].name, []).append(i)
        i += 1
    return found


def scan_build(creation: str | bytes, runtime: str | bytes) -> dict[str, dict[str, list[int]]]:
    """Scan a build's init code and runtime code separately.

    The creation code is ``init code ++ runtime code (with its metadata)``: when the runtime is
    found inside it, only the part before it is scanned as init code, so the runtime's metadata
    is never mistaken for instructions.
    """
    c, r = _bytes(creation), _bytes(runtime)
    idx = c.find(r) if r else -1
    init = c[:idx] if idx > 0 else c
    out: dict[str, dict[str, list[int]]] = {}
    init_found = scan(init, strip=idx <= 0)
    run_found = scan(r)
    if init_found:
        out["creation"] = init_found
    if run_found:
        out["runtime"] = run_found
    return out


def _call_ok(w3: Web3, init_hex: str) -> tuple[bool, str]:
    resp = w3.provider.make_request("eth_call", [{"data": "0x" + init_hex, "gas": hex(1_000_000)}, "latest"])  # type: ignore[arg-type]
    if "error" in resp:
        err = resp["error"]
        return False, str(err.get("message", err) if isinstance(err, dict) else err)
    return True, ""


def probe(w3: Web3, names: list[str] | None = None) -> dict[str, tuple[bool, str]]:
    """Run each opcode on the chain (eth_call of init code, nothing is sent): name -> (ok, error).

    Raises UnsupportedOpcodeError when even a paris-valid control call fails: then the node cannot
    tell us, and we do not guess.
    """
    ok, err = _call_ok(w3, CONTROL_PROBE)
    if not ok:
        raise UnsupportedOpcodeError(f"cannot probe opcodes: eth_call of plain init code failed on the target chain: {err}")
    result: dict[str, tuple[bool, str]] = {}
    for name in names if names is not None else list(BY_NAME):
        result[name] = _call_ok(w3, BY_NAME[name].probe)
    return result


def check_build(w3: Web3, creation: str | bytes, runtime: str | bytes, *, what: str = "build") -> dict[str, Any]:
    """Refuse a build that uses a post-paris opcode the chain rejects; return the report."""
    found = scan_build(creation, runtime)
    used = sorted({name for part in found.values() for name in part})
    probed = probe(w3, used) if used else {}
    rejected = [n for n, (ok, _) in probed.items() if not ok]
    if rejected:
        details = "; ".join(
            f"{n} (0x{BY_NAME[n].byte:02x}, {BY_NAME[n].fork}) at "
            + ", ".join(f"{part} offset {offs[0]}" for part, hits in found.items() for nm, offs in hits.items() if nm == n)
            + f": chain says {probed[n][1]!r}"
            for n in rejected
        )
        raise UnsupportedOpcodeError(
            f"{what} uses opcodes the target chain rejects: {details}. "
            "Compile for an older EVM version (evm_version: paris in ape-config.yaml)",
            rejected,
        )
    return {"used": found, "probed": {n: ok for n, (ok, _) in probed.items()}}
