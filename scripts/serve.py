"""`ape run serve`: the read-only status API and its page (deals, NAV / LTV / exposure by legSeq
against the caps, the ladder, the latest legs; live).

\b
    ape run serve --network chain138:mainnet:node --db postgresql://... [--host 127.0.0.1] [--port 8000]
    ape run serve --rpc http://127.0.0.1:8545 --db sqlite:///.dealvault/deals.db

GET /deals, /deals/{id} (record + live risk view), /deals/{id}/legs, /healthz, /events (Server-Sent
Events: a `leg` each time the record confirms one), / (the page); the schema at /openapi.json.
Read-only: no write endpoint, no account loaded; bound to 127.0.0.1 unless --host says otherwise.
Exit codes: 0 stopped (SIGINT/SIGTERM), 2 bad input, 5 the node could not be reached.
The logic lives in dealvault.observe.api; this is a thin wrapper.
"""

from __future__ import annotations

import sys

import click

from dealvault.cli import network_option, rpc_options


@click.command(help=__doc__)
@network_option()
@rpc_options()
@click.option("--db", "db_url", default=None, help="deal record URL (default DATABASE_URL or .dealvault/deals.db)")
@click.option("--lens", default=None, help="the DealVaultLens for deals whose record names none")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind (0.0.0.0: every interface)")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--rate", default=20.0, show_default=True, type=float, help="requests a second per client address")
@click.option("--burst", default=60, show_default=True, type=int, help="requests a client may send at once")
def cli(provider, rpc, rpc_timeout, db_url, lens, host, port, rate, burst):
    from dealvault.observe.api import Limits, serve

    sys.exit(serve(rpc=rpc, provider=provider, db_url=db_url, host=host, port=port, lens=lens, rpc_timeout=rpc_timeout,
                   limits=Limits(rate=rate, burst=burst)))
