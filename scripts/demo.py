"""`ape run demo`: the whole demo deal on a fresh local Chain 138 mirror, end to end.

Starts the kit (anvil with chain id 138 + the Chain 138 mirror + the venues overlay) on a free
port, deploys the vault for deals/example.yaml with the shared deploy pipeline (the vault, whose
constructor creates its extension, and a DealVaultLens for its views), funds it as the owner, runs
every leg of the deal as the operator (ape test accounts TEST::0 / TEST::1, which are the kit
node's dev accounts: ape signs locally, the raw transactions go to the kit; before the buy the
local chain's clock is advanced to the TWAP observation's readiness), prints the report (operator
loss against the loss budget included), the gas and the wall time, and stops the chain.

\b
    ape run demo [--deal deals/example.yaml] [--json] [--port N]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click


@click.command(help=__doc__)
@click.option("--deal", "deal_path", default="deals/example.yaml", show_default=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON on stdout")
@click.option("--port", type=int, default=None, help="kit port (default: a free one)")
def cli(deal_path: Path, as_json: bool, port: int | None) -> None:
    t0 = time.perf_counter()
    from dealvault.run.demo import run_demo

    sys.exit(run_demo(deal_path, as_json=as_json, port=port, t0=t0))
