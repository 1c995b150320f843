"""Start and stop an anvil node (the embedded Chain 138 mirror, or a fork of an upstream)."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from web3 import Web3

from dealvault.chain138 import CHAIN_ID
from dealvault.errors import ExitCode
from dealvault.kit.errors import KitError
from dealvault.paths import node_bin

__all__ = ["CHAIN_ID", "AnvilError", "AnvilNode", "AnvilTimeout", "PortInUse", "free_port", "port_in_use", "start_anvil"]


class PortInUse(KitError):  # noqa: N818 - a public name the mirror script catches
    """The requested port is taken; the message names it (bad input: exit code 2)."""

    exit_code = ExitCode.INPUT


class AnvilError(KitError):
    """anvil exited before answering."""


class AnvilTimeout(AnvilError, TimeoutError):  # noqa: N818 - a TimeoutError, named like one
    """anvil did not answer in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on ``host:port``."""
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@dataclass
class AnvilNode:
    """A running anvil process; ``stop()`` (or use as a context manager) ends it."""

    port: int
    process: subprocess.Popen[bytes]
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def web3(self) -> Web3:
        return Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 60}))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> AnvilNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_anvil(
    port: int | None = None,
    *,
    chain_id: int = CHAIN_ID,
    fork_url: str | None = None,
    fork_block: int | None = None,
    hardfork: str | None = "paris",
    load_state: Path | None = None,
    dump_state: Path | None = None,
    extra: list[str] | None = None,
    timeout: float = 20.0,
) -> AnvilNode:
    """Start anvil with Chain 138's chain id on ``port`` (a free one if None) and wait for it.

    ``hardfork`` defaults to paris: Chain 138's EVM version is not published, so the mirror
    refuses post-paris opcodes (PUSH0, MCOPY...) exactly like a conservative target would.
    """
    if port is None:
        port = free_port()
    elif port_in_use(port):
        raise PortInUse(f"port {port} on 127.0.0.1 is already in use: stop what runs there or pick another --port")
    args = [str(node_bin("anvil")), "--port", str(port), "--chain-id", str(chain_id), "--silent"]
    if hardfork:
        args += ["--hardfork", hardfork]
    if fork_url:
        args += ["--fork-url", fork_url]
        if fork_block is not None:
            args += ["--fork-block-number", str(fork_block)]
    if load_state:
        args += ["--load-state", str(load_state)]
    if dump_state:
        args += ["--dump-state", str(dump_state)]
    args += extra or []
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    node = AnvilNode(port=port, process=proc, args=args)
    deadline = time.monotonic() + timeout
    w3 = node.web3()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise AnvilError(f"anvil exited with code {proc.returncode}: {err.strip()[:2000]}")
        try:
            if w3.eth.chain_id == chain_id:
                return node
        except Exception:
            time.sleep(0.05)
    node.stop()
    raise AnvilTimeout(f"anvil did not answer on {node.url} within {timeout}s")
