"""`ape run mirror`: start the embedded Chain 138 mirror (anvil, chain id 138) and keep it up.

    ape run mirror [--port 8545] [--overlay] [--dump-state FILE] [--check] [--cusdt fiattoken|tether]

Installs what Chain 138 has at its real addresses (WETH9, WETH10, cUSDT, cUSDC, the ETH/USD
feed; ``--cusdt tether`` puts a Tether-style token at cUSDT instead of Circle's FiatToken); with --overlay also the venues a deal needs (Aave V3 market, Uniswap V2, USDTz, the
redemption desk). Prints every address, then stays up until Ctrl-C (or exits at once with
--check). Exit codes: 0, 2 the port is taken. The kit lives in dealvault.kit; this is a thin wrapper.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from dealvault.cli import console as make_console
from dealvault.kit import address_rows, start_kit
from dealvault.kit.anvil import PortInUse
from dealvault.kit.mirror import CUSDT_KINDS


@click.command(help=__doc__)
@click.option("--port", type=int, default=8545, show_default=True, help="TCP port on 127.0.0.1")
@click.option("--overlay/--no-overlay", default=False, help="also deploy the venues overlay")
@click.option("--dump-state", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write anvil's state here on exit (reload with anvil --load-state)")
@click.option("--check", is_flag=True, help="build, print, and exit instead of staying up")
@click.option("--cusdt", "cusdt_kind", type=click.Choice(CUSDT_KINDS), default="fiattoken", show_default=True,
              help="the token at cUSDT: Circle's FiatToken (as on Chain 138) or a Tether-style token")
def cli(port: int, overlay: bool, dump_state: Path | None, check: bool, cusdt_kind: str) -> None:
    console = make_console(stderr=True)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the mirror as Ctrl-C does: its anvil too
    try:
        kit = start_kit(port, overlay=overlay, dump_state=dump_state, cusdt_kind=cusdt_kind)
    except PortInUse as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(exc.exit_code)
    try:
        table = Table(title=f"Chain 138 mirror at {kit.node.url} (chain id {kit.w3.eth.chain_id})")
        table.add_column("name", no_wrap=True)
        table.add_column("address", no_wrap=True)
        table.add_column("symbol", no_wrap=True)
        for record in (kit.mirror, kit.overlay):
            if record is not None:
                for name, address, symbol in address_rows(kit.w3, record):
                    table.add_row(name, address, symbol)
        Console(width=140).print(table)
        console.print(f"built in {kit.build_seconds:.2f} s")
        if kit.overlay is not None:
            from dealvault.spec.netconfig import write_local_config

            console.print(f"network config: {write_local_config(kit.w3, kit.mirror, kit.overlay)}")
        if check:
            return
        console.print("up; Ctrl-C to stop")
        while kit.node.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        kit.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
