"""Mutant generator for `make mutate`: the mutation sites of the vault's code, deterministically.

The vault's code is contracts/DealVault.sol and what it runs: DealVaultBase.sol,
DealVaultExtension.sol (by DELEGATECALL) and contracts/libraries/*.sol (DealVaultStorage is only
declarations; the lens is not the vault). See tools/mutate/README.md for the operators.

Parsing: a Solidity lexer (line, block and NatSpec comments, string literals with escapes, hex and
decimal numbers with `_` and exponents, maximal-munch operators), then a small statement parser
over each function body (blocks, `if`/`else`, loops, `unchecked`, `assembly`, simple statements to
their `;`). Nothing is mutated in comments, strings, `pragma`/`import`/`using` directives,
`event`/`error` declarations, inline assembly, or the arguments of `emit` and `revert` statements
(those only change logs and revert data; a dropped revert is the GUARD operator's).

A mutant is one span of one file replaced: (file, start, end, original, mutated). Its id is
`<file stem>-<operator>-<8 hex>`, a hash of the file, the operator, the span's line (stripped),
the original and mutated text and the occurrence of that tuple in the file: it does not depend on
line numbers or on other mutants, so an edit elsewhere in a file keeps every other mutant's id.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The files mutated, relative to the repository root, in this order.
TARGETS = (
    "contracts/DealVault.sol",
    "contracts/DealVaultBase.sol",
    "contracts/DealVaultExtension.sol",
    "contracts/libraries/OracleLib.sol",
    "contracts/libraries/ParamTable.sol",
    "contracts/libraries/RiskLib.sol",
    "contracts/libraries/TwapLib.sol",
)
#: Where the books (the storage variables whose skipped updates BOOK makes) are declared.
STORAGE_FILE = "contracts/DealVaultStorage.sol"

#: The operators, in report order, with what each does.
OPERATORS = {
    "ROR": "relational operator: < <= > >= shifted at the boundary or negated, == and != swapped",
    "AOR": "arithmetic operator: + and - swapped (also += -=), * and / swapped",
    "LOR": "logical operator: && and || swapped, a unary ! dropped",
    "CONST": "numeric literal changed: 0 -> 1, n -> n + 1",
    "GUARD": "a guard dropped: `if (c) revert ...`, `require(...)` or an early `if (c) return ...`",
    "BOOK": "a book update skipped: an assignment or delete of a storage variable, or a _set*/_book* writer call",
    "CALL": "a check or effect helper call dropped: an internal `_name(...);` statement",
}

#: Internal calls that write books: dropping one is a skipped book update (BOOK), not CALL.
BOOK_WRITERS = frozenset({"_setStable", "_setCollateral", "_setScaled", "_bookScaled", "_writeWord", "_takeIdleEth"})

ROR_MAP = {"<": ("<=", ">="), "<=": ("<", ">"), ">": (">=", "<="), ">=": (">", "<"), "==": ("!=",), "!=": ("==",)}
AOR_MAP = {"+": ("-",), "-": ("+",), "*": ("/",), "/": ("*",), "+=": ("-=",), "-=": ("+=",)}
LOR_MAP = {"&&": ("||",), "||": ("&&",)}
ASSIGN_OPS = frozenset({"=", "+=", "-=", "*=", "/=", "%=", "|=", "&=", "^=", "<<=", ">>="})
ELEMENTARY = re.compile(r"^(u?int\d*|address|bool|string|bytes\d*|byte)$")

_OPS = sorted(
    [">>>=", "<<=", ">>=", ">>>", "**", "==", "!=", "<=", ">=", "&&", "||", "++", "--", "+=", "-=", "*=", "/=",
     "%=", "&=", "|=", "^=", "<<", ">>", "=>", "->", ":=", "+", "-", "*", "/", "%", "&", "|", "^", "~", "!", "<",
     ">", "=", "?", ":", ";", ",", ".", "(", ")", "[", "]", "{", "}"],
    key=len,
    reverse=True,
)
_NUMBER = re.compile(r"0[xX][0-9a-fA-F_]+|(?:\d[\d_]*(?:\.\d[\d_]*)?|\.\d[\d_]*)(?:[eE]-?\d[\d_]*)?")
_IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


class ParseError(Exception):
    """The source is not Solidity this parser understands."""


@dataclass(frozen=True)
class Token:
    kind: str  # ident | number | string | op | comment
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Mutant:
    id: str
    file: str
    line: int
    operator: str
    original: str
    mutated: str
    start: int
    end: int

    def describe(self) -> str:
        return f"{self.file}:{self.line} {self.operator} `{_squash(self.original)}` -> `{_squash(self.mutated) or '(deleted)'}`"

    def as_dict(self) -> dict:
        return asdict(self)


def _squash(text: str) -> str:
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------
# Lexer
# --------------------------------------------------------------------------------------------


def tokenize(src: str) -> list[Token]:
    """Every token of `src`, comments included (kind 'comment'); whitespace dropped."""
    toks: list[Token] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c.isspace():
            i += 1
            continue
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            toks.append(Token("comment", src[i:j], i, j))
            i = j
            continue
        if src.startswith("/*", i):
            j = src.find("*/", i + 2)
            if j < 0:
                raise ParseError(f"unterminated block comment at offset {i}")
            toks.append(Token("comment", src[i:j + 2], i, j + 2))
            i = j + 2
            continue
        if c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                if src[j] == "\\":
                    j += 1
                elif src[j] == "\n":
                    raise ParseError(f"newline in string literal at offset {i}")
                j += 1
            if j >= n:
                raise ParseError(f"unterminated string literal at offset {i}")
            toks.append(Token("string", src[i:j + 1], i, j + 1))
            i = j + 1
            continue
        m = _NUMBER.match(src, i) if (c.isdigit() or (c == "." and i + 1 < n and src[i + 1].isdigit())) else None
        if m:
            toks.append(Token("number", m.group(), i, m.end()))
            i = m.end()
            continue
        m = _IDENT.match(src, i)
        if m:
            toks.append(Token("ident", m.group(), i, m.end()))
            i = m.end()
            continue
        for op in _OPS:
            if src.startswith(op, i):
                toks.append(Token("op", op, i, i + len(op)))
                i += len(op)
                break
        else:
            raise ParseError(f"unexpected character {c!r} at offset {i}")
    return toks


# --------------------------------------------------------------------------------------------
# Structure
# --------------------------------------------------------------------------------------------


@dataclass
class Stmt:
    kind: str  # block | if | loop | unchecked | assembly | simple
    start: int  # token index (code tokens)
    end: int  # token index of the last token, inclusive
    parent_kind: str = "block"  # block: a statement of a block; branch: the body of an if/else/loop
    cond: tuple[int, int] | None = None  # if: the condition's tokens (exclusive of the parentheses)
    then: Stmt | None = None
    other: Stmt | None = None
    children: list[Stmt] | None = None


class _Parser:
    def __init__(self, toks: list[Token]):
        self.t = toks

    def text(self, i: int) -> str:
        return self.t[i].text if i < len(self.t) else ""

    def match(self, i: int) -> int:
        """The index of the bracket closing the one at i."""
        pairs = {"(": ")", "[": "]", "{": "}"}
        opening = self.t[i].text
        depth = 0
        for j in range(i, len(self.t)):
            s = self.t[j].text if self.t[j].kind == "op" else ""
            if s == opening:
                depth += 1
            elif s == pairs[opening]:
                depth -= 1
                if depth == 0:
                    return j
        raise ParseError(f"unbalanced {opening!r} at offset {self.t[i].start}")

    def to_semicolon(self, i: int) -> int:
        j = i
        while j < len(self.t):
            s = self.t[j].text if self.t[j].kind == "op" else ""
            if s in ("(", "[", "{"):
                j = self.match(j) + 1
                continue
            if s == ";":
                return j
            j += 1
        raise ParseError(f"statement without ';' at offset {self.t[i].start}")

    def block(self, i: int, kind: str = "block", parent_kind: str = "block") -> Stmt:
        if self.text(i) != "{":
            raise ParseError(f"expected '{{' at offset {self.t[i].start}")
        end = self.match(i)
        kids: list[Stmt] = []
        j = i + 1
        while j < end:
            st = self.statement(j, "block")
            kids.append(st)
            j = st.end + 1
        return Stmt(kind, i, end, parent_kind, children=kids)

    def statement(self, i: int, parent_kind: str) -> Stmt:
        w = self.text(i)
        if w == "{":
            return self.block(i, parent_kind=parent_kind)
        if w == "unchecked":
            b = self.block(i + 1, kind="unchecked")
            return Stmt("unchecked", i, b.end, parent_kind, children=b.children)
        if w == "assembly":
            j = i + 1
            while self.text(j) != "{":
                j = self.match(j) + 1 if self.text(j) == "(" else j + 1
            return Stmt("assembly", i, self.match(j), parent_kind)
        if w == "if":
            close = self.match(i + 1)
            then = self.statement(close + 1, "branch")
            other = None
            end = then.end
            if self.text(then.end + 1) == "else":
                other = self.statement(then.end + 2, "branch")
                end = other.end
            return Stmt("if", i, end, parent_kind, cond=(i + 2, close), then=then, other=other)
        if w in ("for", "while"):
            close = self.match(i + 1)
            body = self.statement(close + 1, "branch")
            return Stmt("loop", i, body.end, parent_kind, then=body)
        if w == "do":
            body = self.statement(i + 1, "branch")
            return Stmt("loop", i, self.to_semicolon(body.end + 1), parent_kind, then=body)
        if w == "try":
            raise ParseError(f"try/catch is not supported (offset {self.t[i].start})")
        return Stmt("simple", i, self.to_semicolon(i), parent_kind)


# --------------------------------------------------------------------------------------------
# Mutation sites
# --------------------------------------------------------------------------------------------


@dataclass
class _Site:
    operator: str
    start: int  # source offsets
    end: int
    mutated: str


def storage_names(src: str) -> set[str]:
    """The state variables declared in a contract-level file (DealVaultStorage): the books."""
    names: set[str] = set()
    code = [t for t in tokenize(src) if t.kind != "comment"]
    depth = 0
    stmt: list[Token] = []
    for t in code:
        if t.kind == "op" and t.text == "{":
            depth += 1
            stmt = []
            continue
        if t.kind == "op" and t.text == "}":
            depth -= 1
            stmt = []
            continue
        if depth != 1:
            continue
        if t.kind == "op" and t.text == ";":
            if stmt and stmt[0].text not in ("using", "event", "error", "function") and "constant" not in {
                s.text for s in stmt
            } and "immutable" not in {s.text for s in stmt}:
                idents = [s for s in stmt if s.kind == "ident"]
                eq = next((k for k, s in enumerate(stmt) if s.kind == "op" and s.text == "="), len(stmt))
                before = [s for s in stmt[:eq] if s.kind == "ident"]
                if idents and before:
                    names.add(before[-1].text)
            stmt = []
            continue
        stmt.append(t)
    return names


def _is_operand_end(t: Token | None) -> bool:
    if t is None:
        return False
    if t.kind in ("ident", "number", "string"):
        return t.text not in ("return", "returns", "emit", "revert", "else", "delete")
    return t.kind == "op" and t.text in (")", "]")


def _const_value(text: str) -> str | None:
    """The CONST replacement of a numeric literal: 0 -> 1, n -> n + 1 (unit suffixes stay)."""
    plain = text.replace("_", "")
    try:
        if plain.lower().startswith("0x"):
            v = int(plain, 16)
            return "1" if v == 0 else hex(v + 1)
        if re.fullmatch(r"\d+", plain):
            v = int(plain)
            return "1" if v == 0 else str(v + 1)
        if re.fullmatch(r"\d+[eE]\d+", plain):
            m, e = re.split(r"[eE]", plain)
            return str(int(m) * 10 ** int(e) + 1)
    except ValueError:
        return None
    return None


class _FileMutator:
    def __init__(self, path: str, src: str, books: set[str]):
        self.path = path
        self.src = src
        self.books = books
        self.code = [t for t in tokenize(src) if t.kind != "comment"]
        self.p = _Parser(self.code)
        self.sites: list[_Site] = []

    # expression operators over code tokens [a, b)
    def expr(self, a: int, b: int) -> None:
        code = self.code
        for k in range(a, b):
            t = code[k]
            prev = code[k - 1] if k > 0 else None
            nxt = code[k + 1] if k + 1 < len(code) else None
            if t.kind == "op":
                if t.text in ROR_MAP:
                    for r in ROR_MAP[t.text]:
                        self.sites.append(_Site("ROR", t.start, t.end, r))
                elif t.text in AOR_MAP and (t.text in ("+=", "-=") or _is_operand_end(prev)):
                    for r in AOR_MAP[t.text]:
                        self.sites.append(_Site("AOR", t.start, t.end, r))
                elif t.text in LOR_MAP:
                    for r in LOR_MAP[t.text]:
                        self.sites.append(_Site("LOR", t.start, t.end, r))
                elif t.text == "!":
                    self.sites.append(_Site("LOR", t.start, t.end, ""))
            elif t.kind == "number":
                # an array type's length (uint256[11]) is a type, not a value
                if prev is not None and prev.text == "[" and k >= 2 and ELEMENTARY.match(code[k - 2].text) and nxt and nxt.text == "]":
                    continue
                r = _const_value(t.text)
                if r is not None:
                    self.sites.append(_Site("CONST", t.start, t.end, r))

    def top(self) -> None:
        """Contract level: constant initializers (expression operators) and function bodies."""
        code, p = self.code, self.p
        i = 0
        while i < len(code):
            w = code[i].text
            if code[i].kind == "ident" and w in ("pragma", "import", "using", "event", "error"):
                i = p.to_semicolon(i) + 1
                continue
            if code[i].kind == "ident" and w in ("function", "constructor", "modifier", "receive", "fallback"):
                j = i + 1
                while code[j].text not in ("{", ";"):
                    j = p.match(j) + 1 if code[j].text == "(" else j + 1
                if code[j].text == ";":
                    i = j + 1
                    continue
                body = p.block(j)
                self.body(body)
                i = body.end + 1
                continue
            if code[i].kind == "ident" and w in ("struct", "enum"):
                j = i
                while code[j].text != "{":
                    j += 1
                i = p.match(j) + 1
                continue
            if code[i].kind == "ident" and w == "constant":
                end = p.to_semicolon(i)
                eq = next(k for k in range(i, end) if code[k].text == "=")
                self.expr(eq + 1, end)
                i = end + 1
                continue
            i += 1

    def body(self, st: Stmt) -> None:
        for kid in st.children or []:
            self.statement(kid)

    def statement(self, st: Stmt) -> None:
        code = self.code
        if st.kind in ("block", "unchecked"):
            self.body(st)
            return
        if st.kind == "assembly":
            return
        if st.kind == "loop":
            head_end = st.then.start if st.then else st.end
            self.expr(st.start + 1, head_end)
            if st.then:
                self.statement(st.then)
            return
        if st.kind == "if":
            assert st.cond is not None and st.then is not None
            self.expr(*st.cond)
            if st.other is None and self._is_guard(st.then):
                self.drop(st, "GUARD")
            self.statement(st.then)
            if st.other is not None:
                self.statement(st.other)
            return
        # simple statement
        first = code[st.start].text
        if first in ("emit", "revert"):
            return
        if first == "require":
            self.drop(st, "GUARD")
            return
        if (first == "delete" and code[st.start + 1].text in self.books) or (first in self.books and self._assigns(st)):
            self.drop(st, "BOOK")
        elif first.startswith("_") and code[st.start + 1].text == "(" and self.p.match(st.start + 1) + 1 == st.end:
            # `_helper(...);`: the whole statement is one internal call
            self.drop(st, "BOOK" if first in BOOK_WRITERS else "CALL")
        self.expr(st.start, st.end)

    def _assigns(self, st: Stmt) -> bool:
        """`book = ...;`, `book += ...;`, `book[i] = ...;`: the statement's top-level operator."""
        code = self.code
        k = st.start + 1
        if code[k].text == "[":
            k = self.p.match(k) + 1
        return code[k].kind == "op" and code[k].text in ASSIGN_OPS

    def _is_guard(self, then: Stmt) -> bool:
        code = self.code
        if then.kind == "simple":
            return code[then.start].text in ("revert", "return")
        if then.kind == "block" and then.children:
            return all(c.kind == "simple" and code[c.start].text == "revert" for c in then.children)
        return False

    def drop(self, st: Stmt, operator: str) -> None:
        a, b = self.code[st.start].start, self.code[st.end].end
        self.sites.append(_Site(operator, a, b, "{}" if st.parent_kind == "branch" else ""))


def mutants_of(path: str, src: str, books: set[str]) -> list[Mutant]:
    """The mutants of one file (`path` relative to the repo root), in source order."""
    fm = _FileMutator(path, src, books)
    fm.top()
    sites = sorted(fm.sites, key=lambda s: (s.start, list(OPERATORS).index(s.operator), s.end, s.mutated))
    line_starts = [0] + [m.end() for m in re.finditer("\n", src)]
    seen: dict[tuple, int] = {}
    out: list[Mutant] = []
    for s in sites:
        line = _line_of(line_starts, s.start)
        line_text = src[line_starts[line - 1]:].split("\n", 1)[0].strip()
        original = src[s.start:s.end]
        key = (s.operator, line_text, original, s.mutated)
        occurrence = seen.get(key, 0)
        seen[key] = occurrence + 1
        digest = hashlib.sha1(repr((path, *key, occurrence)).encode()).hexdigest()[:8]
        out.append(Mutant(f"{Path(path).stem}-{s.operator}-{digest}", path, line, s.operator, original, s.mutated, s.start, s.end))
    return out


def _line_of(line_starts: list[int], offset: int) -> int:
    lo, hi = 0, len(line_starts)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if line_starts[mid] <= offset:
            lo = mid
        else:
            hi = mid
    return lo + 1


def generate(root: Path = ROOT, targets: tuple[str, ...] = TARGETS) -> list[Mutant]:
    """Every mutant of the target files under `root`, deterministic order (file, offset, operator)."""
    books = storage_names((root / STORAGE_FILE).read_text())
    out: list[Mutant] = []
    for rel in targets:
        out.extend(mutants_of(rel, (root / rel).read_text(), books))
    ids = [m.id for m in out]
    if len(set(ids)) != len(ids):
        raise ParseError("mutant ids collide")
    return out


def apply(src: str, m: Mutant) -> str:
    """`src` with mutant `m` applied; the span must still hold the original text."""
    if src[m.start:m.end] != m.original:
        raise ValueError(f"{m.id}: {m.file} changed since the mutants were generated")
    return src[:m.start] + m.mutated + src[m.end:]


def counts(mutants: list[Mutant]) -> dict[str, int]:
    c = dict.fromkeys(OPERATORS, 0)
    for m in mutants:
        c[m.operator] += 1
    return c
