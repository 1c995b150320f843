"""Where things live: the project root, npm packages, the solc bridge."""

from __future__ import annotations

import os
from pathlib import Path

from dealvault.errors import DealVaultError

__all__ = ["BUILD_MANIFEST", "NODE_MODULES", "ROOT", "SOLCX_DIR", "ToolNotFoundError", "ensure_tool_env", "node_bin"]

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
SOLCX_DIR = ROOT / "tools" / "solcx"
BUILD_MANIFEST = ROOT / ".build" / "__local__.json"


class ToolNotFoundError(DealVaultError, FileNotFoundError):
    """A binary of the toolchain (anvil, forge, cast) is not installed."""


def node_bin(name: str) -> Path:
    """A binary shipped by an npm package (anvil, forge, cast), installed by ``npm ci``."""
    for candidate in (
        NODE_MODULES / ".bin" / name,
        NODE_MODULES / "@foundry-rs" / f"{name}-linux-amd64" / "bin" / name,
    ):
        if candidate.exists():
            return candidate
    raise ToolNotFoundError(f"{name} not found under {NODE_MODULES}: run `make setup` (npm ci)")


def ensure_tool_env() -> None:
    """Make the npm binaries and the solc bridge visible to ape, py-solc-x and anvil users."""
    os.environ.setdefault("SOLCX_BINARY_PATH", str(SOLCX_DIR))
    bin_dir = str(NODE_MODULES / ".bin")
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
