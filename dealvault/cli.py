"""What the `ape run` scripts share: ape's option conventions, connecting to the node (an ape
network or a plain RPC URL), and stopping with the one exit-code table.

    @click.command()
    @network_option()                 # --network ecosystem:network:provider (ape's NetworkChoice)
    @rpc_options()                    # --rpc URL, --rpc-timeout SECONDS
    @account_option(required=True)    # --account ALIAS (ape's AccountAliasPromptChoice: TEST::N too)
    def cli(provider, rpc, rpc_timeout, account): ...
        with connect(rpc, provider, timeout=rpc_timeout) as w3:
            ...

``ape`` is imported only when an option is built or used, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, TypeVar

from web3 import Web3

from dealvault.errors import ExitCode, InputError

__all__ = ["DEFAULT_RPC_TIMEOUT", "connect", "network_option", "account_option", "rpc_options", "plot_option", "Stop", "exit_with", "console", "ape_logs_to_stderr", "connect_provider", "provider_url"]

DEFAULT_RPC_TIMEOUT = 60.0  # seconds per JSON-RPC request over --rpc

F = TypeVar("F", bound=Callable[..., Any])


def ape_logs_to_stderr() -> None:
    """ape's log lines ("Connecting to a 'anvil' node.") go to stderr: stdout carries only a
    script's result (its JSON)."""
    import logging

    from ape.logging import ClickHandler

    for h in logging.getLogger("ape").handlers:
        if isinstance(h, ClickHandler):
            h.echo_kwargs = {level: {**h.echo_kwargs.get(level, {}), "err": True}
                             for level in ("debug", "info", "success", "warning", "error", "critical")}


def network_option(help: str | None = None) -> Callable[[F], F]:
    """ape's ``--network`` (``ecosystem:network:provider``), optional: the command gets
    ``provider`` (an unconnected ape ProviderAPI) or None. ape's log lines go to stderr."""
    from ape.cli import network_option as ape_network_option

    ape_logs_to_stderr()
    if help:
        return ape_network_option(default=None, help=help)  # type: ignore[no-any-return]
    return ape_network_option(default=None)  # type: ignore[no-any-return]


def provider_url(provider: Any) -> str | None:
    """The HTTP URL of an ape provider (a dry run forks it), if it has one."""
    if provider is None or isinstance(provider, str):
        return None
    return getattr(provider, "http_uri", None) or getattr(provider, "uri", None)


def account_option(*param_decls: str, required: bool = False, help: str = "") -> Callable[[F], F]:
    """An ape account by alias or ``TEST::N`` (ape's AccountAliasPromptChoice): the command gets
    the AccountAPI. Unknown aliases are a usage error (exit 2) naming the alias."""
    import click
    from ape.cli.choices import AccountAliasPromptChoice

    ape_logs_to_stderr()

    decls = param_decls or ("--account",)
    return click.option(*decls, type=AccountAliasPromptChoice(), required=required, default=None, help=help)


def plot_option(help: str) -> Callable[[F], F]:
    """``--plot FILE``: where to write the deal's chart; the command gets a Path (or None). A name
    without .png, or in a folder that does not exist, is a usage error (exit 2) before anything runs
    (:func:`dealvault.run.plot.check_plot_path`)."""
    import click

    from dealvault.run.plot import check_plot_path

    def check(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
        try:
            return check_plot_path(value) if value is not None else None
        except InputError as exc:
            raise click.BadParameter(str(exc)) from exc

    return click.option("--plot", default=None, type=click.Path(path_type=Path), callback=check, metavar="FILE.png", help=help)


def rpc_options() -> Callable[[F], F]:
    """``--rpc URL`` (web3 over HTTP instead of an ape provider) and ``--rpc-timeout SECONDS``."""
    import click

    def deco(f: F) -> F:
        f = click.option("--rpc-timeout", "rpc_timeout", default=DEFAULT_RPC_TIMEOUT, show_default=True,
                         type=click.FloatRange(min=0, min_open=True),
                         help="--rpc: seconds per JSON-RPC request before giving up (exit 5)")(f)
        return click.option("--rpc", default=None, help="connect to this RPC URL with web3 instead of an ape provider")(f)

    return deco


def connect(rpc: str | None, provider: Any, *, timeout: float = DEFAULT_RPC_TIMEOUT) -> AbstractContextManager[Web3]:
    """A context manager yielding a :class:`~web3.Web3` for ``rpc`` (a plain HTTP provider with a
    ``timeout`` in seconds per request) or else for the ape ``provider`` (a ProviderAPI from
    :func:`network_option`, or a choice string ``ecosystem:network:provider``), connected for the
    block. Raises :class:`~dealvault.errors.InputError` when neither is given."""
    if rpc:
        # no retries: --rpc-timeout bounds each request (web3's default 5 retries made 3 s into 18.5 s)
        return contextlib.nullcontext(Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": timeout},
                                                             exception_retry_configuration=None)))
    if provider:
        return _ape(provider)
    raise InputError("give --network <ecosystem:network:provider> or --rpc URL")


@contextlib.contextmanager
def _ape(provider: Any) -> Iterator[Web3]:
    with connect_provider(provider) as connected:
        yield connected.web3


@contextlib.contextmanager
def connect_provider(provider: Any) -> Iterator[Any]:
    """The ape ``provider`` (a ProviderAPI from :func:`network_option`, or a choice string),
    connected for the block. A node that does not answer is :class:`~dealvault.errors.ChainError`
    (exit 5); a URI that is not set (``${CHAIN138_RPC_URL}`` in ape-config.yaml) is
    :class:`~dealvault.errors.InputError` (exit 2); nothing is sent either way."""
    from ape import networks

    from dealvault.errors import ChainError

    if provider is None:
        raise InputError("give --network <ecosystem:network:provider> (e.g. chain138:mirror:node, chain138:mainnet:node)")
    name = provider if isinstance(provider, str) else f"{provider.network.choice}:{provider.name}"
    ctx = networks.parse_network_choice(provider) if isinstance(provider, str) else provider.network.use_provider(provider)
    with contextlib.ExitStack() as stack:
        try:
            connected = stack.enter_context(ctx)
        except Exception as exc:
            msg = " ".join(str(exc).split())
            unset = re.findall(r"\$\{(\w+)\}", msg)
            if unset:
                raise InputError(f"network {name}: its node URI is {'${' + unset[0] + '}'}, and {unset[0]} is not set: export "
                                 f"{unset[0]}=<the node's URL>; nothing sent") from None
            raise ChainError(f"network {name}: the node could not be reached ({type(exc).__name__}: {msg[:200]}); "
                             "nothing sent") from None
        yield connected


def console(*, stderr: bool = False) -> Any:
    """The rich Console every script prints through: text is never wrapped by rich (a message, a
    hash, a path stays one line, whole when piped; the terminal wraps what it must), tables fit
    the terminal's width (80 columns when piped)."""
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True)


class Stop(Exception):  # noqa: N818 - a script's way out, not an error class of the library
    """A script stops with ``code`` after printing ``message`` (see :func:`exit_with`)."""

    def __init__(self, message: str, code: int = ExitCode.INPUT) -> None:
        super().__init__(message)
        self.code = int(code)


def exit_with(run: Callable[[], int], *, as_json: bool = False, err: Any = None) -> None:
    """Run a script's body and exit with its code: a :class:`Stop` or any
    :class:`~dealvault.errors.DealVaultError` prints ``error: <message>`` on stderr (and, with
    ``as_json``, ``{"status": "error", "exit_code", "message"}`` on stdout) and exits with its code."""
    from dealvault.errors import DealVaultError

    try:
        code = run()
    except (Stop, DealVaultError) as exc:
        code = exc.code if isinstance(exc, Stop) else int(exc.exit_code)
        if err is None:
            err = console(stderr=True)
        err.print(f"[red]error:[/] {exc}", highlight=False)
        if as_json:
            print(json.dumps({"status": "error", "exit_code": code, "message": str(exc)}))
    sys.exit(code)
