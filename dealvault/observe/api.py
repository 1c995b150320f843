"""The read-only status API and its page (``ape run serve``; issue 16).

    app = create_app("sqlite:///.dealvault/deals.db", w3)        # FastAPI; serve it with uvicorn
    GET /deals                 the record's deals (id, status, network, chain_id, vault_address, lens_address, last_leg_seq)
    GET /deals/{id}            the deal, and its vault's live risk view through its lens (amounts as decimal strings),
                               the caps and the ladder
    GET /deals/{id}/legs       the record's legs, each with NAV / LTV / exposure after it (its ``risk_after``)
    GET /healthz               the record and the node reachable, the latest block (503 when either is not)
    GET /events                Server-Sent Events: ``leg`` when the record confirms (or sees revert) a leg
    GET /                      the page (dealvault/observe/static/index.html): deals, chart, ladder, legs; live

Nothing here writes: only GET and HEAD are answered (others: 405), the record is opened without
migrating it and no account is ever loaded. Every error is JSON ``{"error": ..., "status": ...}``.
Requests are bounded: the URL (414), any body (413), a token bucket per client address (429) and
the number of open event streams (503). Money is never a float: every amount is a decimal string
(:func:`~dealvault.units.amount_text`), its raw integer a string too (JavaScript's numbers would
round it), with its unit. Field names follow ``deal_status --json`` (:func:`dealvault.run.report.status_json`).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.engine import make_url
from starlette.exceptions import HTTPException
from web3 import Web3

from dealvault.errors import InputError
from dealvault.record import DealInfo, LegInfo, Record, TrancheInfo, default_url, normalize_url, open_record
from dealvault.run.report import RISK_ROWS
from dealvault.run.status import WATCHED_PARAMS, read_deal
from dealvault.units import ETH_DECIMALS, STABLE_DECIMALS, USD_DECIMALS, amount_text
from dealvault.vault import VaultClient, rung_number

__all__ = ["Limits", "create_app", "serve", "DealSummary", "DealDetail", "LegOut", "Health"]

STATIC = Path(__file__).resolve().parent / "static"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: the unit of an amount by its decimals (6 dp: the stablecoins and USDTz, at par with the dollar)
_UNITS = {ETH_DECIMALS: "ETH", STABLE_DECIMALS: "USD6", USD_DECIMALS: "USD"}
_RATIO = frozenset({"healthFactor"})  # 18 dp but not ETH


@dataclass(frozen=True)
class Limits:
    """The request bounds: ``rate`` requests a second per client address, in bursts of ``burst``;
    the URL's length; open event streams; the record's poll for ``/events`` (seconds)."""

    rate: float = 20.0
    burst: int = 60
    max_url: int = 2048
    max_streams: int = 32
    poll: float = 0.5
    keepalive: float = 15.0


# --------------------------------------------------------------------------------------------
# response models (the OpenAPI schema at /openapi.json)


class Amount(BaseModel):
    raw: str = Field(description="the chain's integer, as a decimal string")
    value: str = Field(description="in whole units, exact (raw / 10**decimals)")
    unit: str = Field(description="ETH, USD (8 dp), USD6 (6-dp stablecoin / USDTz at par) or ratio")
    decimals: int


class RiskRow(BaseModel):
    key: str = Field(description="the RiskView field (Solidity name)")
    label: str
    value: str = Field(description="as deal_status shows it: an amount in whole units, an enum's name, a count")
    amount: Amount | None = None


class DealSummary(BaseModel):
    id: str
    status: str
    network: str
    chain_id: int
    vault_address: str | None
    lens_address: str | None
    last_leg_seq: int | None
    legs: int
    created_at: datetime
    updated_at: datetime


class RiskPoint(BaseModel):
    """NAV, LTV and exposure after a leg (from the record's ``risk_after``)."""

    leg_seq: int | None
    source: str = Field(description="risk: the lens's risk view after the leg; snapshot: LegCompleted's")
    phase: str | None
    nav_usd: str | None = Field(description="USD, exact; None when the snapshot carries no marks (a light leg)")
    ltv_bps: str | None
    exposure_bps: str | None


class LegOut(BaseModel):
    id: int
    deal_id: str
    leg_seq: int | None
    step: int
    leg: str
    status: str
    tx_hash: str | None
    nonce: int | None
    sender: str | None
    block_number: int | None
    gas_used: int | None
    error: str | None
    confirmed_at: datetime | None
    risk_after: RiskPoint | None


class Rung(BaseModel):
    rung: int = Field(description="1..3, as every DealVault output numbers them")
    size: Amount
    unlocked: bool


class Tranche(BaseModel):
    id: int
    leg_id: int | None
    rung: int
    size: Amount
    received: Amount
    fee: Amount
    ok: bool
    reason: str | None


class Ladder(BaseModel):
    rung: int = Field(description="the rung unlocked now, 1..3")
    rung_progress: Amount
    redeemed_total: Amount
    rungs: list[Rung]
    tranches: list[Tranche]
    tranches_attempted: int
    tranches_succeeded: int
    success_rate: str
    wilson_lower_bound: str


class Live(BaseModel):
    vault: str
    lens: str
    block: int
    timestamp: int
    phase: str
    leg_seq: int
    nav_usd: str
    ltv_bps: str
    exposure_bps: str
    max_ltv_bps: str
    max_exposure_bps: str
    params: dict[str, str] = Field(description="the watched parameters (deal_status's), as decimal strings")
    risk: list[RiskRow]


class DealDetail(BaseModel):
    deal: DealSummary
    live: Live | None = Field(description="None when the node or the lens could not be read (see live_error)")
    live_error: str | None
    ladder: Ladder | None


class NodeHealth(BaseModel):
    ok: bool
    chain_id: int | None = None
    block: int | None = None
    error: str | None = None


class RecordHealth(BaseModel):
    ok: bool
    deals: int | None = None
    error: str | None = None


class Health(BaseModel):
    status: str = Field(description="ok, or degraded (then the HTTP status is 503)")
    record: RecordHealth
    node: NodeHealth


class ErrorOut(BaseModel):
    error: str
    status: int


# --------------------------------------------------------------------------------------------
# conversions


def _amount(raw: int, decimals: int, unit: str | None = None) -> Amount:
    return Amount(raw=str(int(raw)), value=amount_text(int(raw), decimals, grouped=False),
                  unit=unit or _UNITS.get(decimals, f"{decimals}dp"), decimals=decimals)


def _summary(rec: Record, d: DealInfo, legs: list[LegInfo] | None = None) -> DealSummary:
    rows = legs if legs is not None else rec.legs(d.id)
    seqs = [leg.leg_seq for leg in rows if leg.leg_seq is not None and leg.status == "confirmed"]
    return DealSummary(id=d.id, status=d.status, network=d.network, chain_id=d.chain_id, vault_address=d.vault_address,
                       lens_address=d.lens_address, last_leg_seq=max(seqs) if seqs else None, legs=len(rows),
                       created_at=d.created_at, updated_at=d.updated_at)


def _point(leg: LegInfo) -> RiskPoint | None:
    """The record keeps ``{"risk": RiskView, "snapshot": Snapshot}`` (either may be None); a light
    leg's snapshot has no marks (oracle ``Unread``): its NAV / LTV / exposure are unknown."""
    after = leg.risk_after
    if not after:
        return None
    view, source = (after.get("risk"), "risk") if after.get("risk") else (after.get("snapshot"), "snapshot")
    if not view and "nav" in after:  # a bare view
        view, source = after, "risk"
    if not view:
        return None
    marked = source == "risk" or view.get("oracleStatusName") != "Unread"
    return RiskPoint(leg_seq=leg.leg_seq, source=source, phase=view.get("phaseName"),
                     nav_usd=amount_text(int(view["nav"]), USD_DECIMALS, grouped=False) if marked else None,
                     ltv_bps=str(int(view["ltvBps"])) if marked else None,
                     exposure_bps=str(int(view["exposureBps"])) if marked else None)


def _leg(leg: LegInfo) -> LegOut:
    return LegOut(id=leg.id, deal_id=leg.deal_id, leg_seq=leg.leg_seq, step=leg.step, leg=leg.leg, status=leg.status,
                  tx_hash=leg.tx_hash, nonce=leg.nonce, sender=leg.sender, block_number=leg.block_number, gas_used=leg.gas_used,
                  error=leg.error, confirmed_at=leg.confirmed_at, risk_after=_point(leg))


def _risk_row(key: str, label: str, decimals: int | None, v: Any) -> RiskRow:
    if isinstance(v, Enum):
        return RiskRow(key=key, label=label, value=v.name)
    if key == "rung":
        return RiskRow(key=key, label=label, value=str(rung_number(v)))
    if decimals is None or isinstance(v, bool) or not isinstance(v, int):
        return RiskRow(key=key, label=label, value=str(v).lower() if isinstance(v, bool) else str(v))
    a = _amount(v, decimals, "ratio" if key in _RATIO else None)
    return RiskRow(key=key, label=label, value=a.value, amount=a)


def _tranche(t: TrancheInfo) -> Tranche:
    return Tranche(id=t.id, leg_id=t.leg_id, rung=rung_number(t.rung), size=_amount(t.size, STABLE_DECIMALS),
                   received=_amount(t.received, STABLE_DECIMALS), fee=_amount(t.fee, STABLE_DECIMALS), ok=t.ok, reason=t.reason)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


_HEAD_EVENTS = Response(b"", media_type="text/event-stream", headers={"Cache-Control": "no-store"})


# --------------------------------------------------------------------------------------------
# the bounds, before any route (a plain ASGI middleware: the event stream is not buffered)


@dataclass
class _Bounds:
    app: ASGIApp
    limits: Limits
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # client -> (tokens, at)

    def _take(self, client: str) -> bool:
        now = time.monotonic()
        if len(self.buckets) > 10_000:  # forget the idle clients (full buckets)
            horizon = self.limits.burst / max(self.limits.rate, 1e-9)
            self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < horizon}
        tokens, at = self.buckets.get(client, (float(self.limits.burst), now))
        tokens = min(float(self.limits.burst), tokens + (now - at) * self.limits.rate)
        ok = tokens >= 1.0
        self.buckets[client] = (tokens - 1.0 if ok else tokens, now)
        return ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        url_len = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
        client = (scope.get("client") or ("?", 0))[0]
        refusal: JSONResponse | None = None
        if url_len > self.limits.max_url:
            refusal = _error(414, f"the URL is longer than {self.limits.max_url} bytes")
        elif method not in ("GET", "HEAD"):
            refusal = _error(405, f"{method}: this service is read-only (GET and HEAD only)", {"Allow": "GET, HEAD"})
        elif int(headers.get("content-length") or 0) > 0 or "transfer-encoding" in headers:
            refusal = _error(413, "a request body is not accepted")
        elif not self._take(client):
            refusal = _error(429, f"too many requests: at most {self.limits.rate:g} a second (bursts of {self.limits.burst})",
                             {"Retry-After": "1"})
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if method == "HEAD" and scope["path"] == "/events":  # the stream's headers, no stream
            await _HEAD_EVENTS(scope, receive, send)
            return
        if method == "HEAD":  # answered as GET; the server sends no body for a HEAD request
            scope = dict(scope, method="GET")
        await self.app(scope, receive, send)


# --------------------------------------------------------------------------------------------
# the app


@dataclass
class _Service:
    record: Record
    w3: Web3 | None
    lens: str | None
    limits: Limits
    streams: int = 0
    _settled: tuple[float, dict[int, LegInfo]] = (float("-inf"), {})
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def deal(self, deal_id: str) -> DealInfo:
        d = self.record.get_deal(deal_id)
        if d is None:
            raise HTTPException(404, f"no deal {deal_id!r} in the record")
        return d

    def detail(self, deal_id: str) -> DealDetail:
        d = self.deal(deal_id)
        summary = _summary(self.record, d)
        lens = d.lens_address or self.lens
        if self.w3 is None:
            return DealDetail(deal=summary, live=None, live_error="no node configured", ladder=None)
        if not d.vault_address or not lens:
            why = "the record has no vault for this deal" if not d.vault_address else "no lens (the record has none; give --lens)"
            return DealDetail(deal=summary, live=None, live_error=why, ladder=None)
        try:
            st = read_deal(VaultClient(self.w3, d.vault_address, lens))
        except Exception as exc:  # the node or the lens: the record's part still answers
            return DealDetail(deal=summary, live=None, live_error=f"{type(exc).__name__}: {str(exc)[:300]}", ladder=None)
        r, p = st.risk, st.params
        live = Live(vault=st.vault, lens=st.lens, block=st.block, timestamp=st.timestamp, phase=r.phase.name, leg_seq=r.legSeq,
                    nav_usd=amount_text(r.nav, USD_DECIMALS, grouped=False), ltv_bps=str(r.ltvBps), exposure_bps=str(r.exposureBps),
                    max_ltv_bps=str(p.maxLtvBps), max_exposure_bps=str(p.maxExposureBps),
                    params={k: str(getattr(p, k)) for k in WATCHED_PARAMS},
                    risk=[_risk_row(k, label, dec, getattr(r, k)) for k, label, dec in RISK_ROWS])
        stats = self.record.tranche_stats(d.id)
        ladder = Ladder(rung=rung_number(r.rung), rung_progress=_amount(r.rungProgress, STABLE_DECIMALS),
                        redeemed_total=_amount(r.redeemedTotal, STABLE_DECIMALS),
                        rungs=[Rung(rung=i + 1, size=_amount(size, STABLE_DECIMALS), unlocked=i <= r.rung) for i, size in enumerate(p.rungs)],
                        tranches=[_tranche(t) for t in self.record.tranches(d.id)], tranches_attempted=stats.attempted,
                        tranches_succeeded=stats.succeeded, success_rate=format(stats.success_rate, "f"),
                        wilson_lower_bound=format(stats.wilson_lower, "f"))
        return DealDetail(deal=summary, live=live, live_error=None, ladder=ladder)

    def health(self) -> tuple[Health, int]:
        try:
            rec = RecordHealth(ok=True, deals=len(self.record.list_deals()))
        except Exception as exc:
            rec = RecordHealth(ok=False, error=f"{type(exc).__name__}: {str(exc)[:200]}")
        if self.w3 is None:
            node = NodeHealth(ok=False, error="no node configured")
        else:
            try:
                node = NodeHealth(ok=True, chain_id=int(self.w3.eth.chain_id), block=int(self.w3.eth.block_number))
            except Exception as exc:
                node = NodeHealth(ok=False, error=f"{type(exc).__name__}: {str(exc)[:200]}")
        ok = rec.ok and node.ok
        return Health(status="ok" if ok else "degraded", record=rec, node=node), 200 if ok else 503

    def settled(self) -> dict[int, LegInfo]:
        """Every leg the record has seen mined (confirmed or reverted), by id; one read of the
        record per poll interval whatever the number of open streams (they share it)."""
        with self._lock:
            at, legs = self._settled
            if time.monotonic() - at >= self.limits.poll * 0.8:
                legs = {leg.id: leg for d in self.record.list_deals() for leg in self.record.legs(d.id)
                        if leg.status in ("confirmed", "reverted")}
                self._settled = (time.monotonic(), legs)
            return legs

    async def events(self, request: Request, deal_id: str | None) -> AsyncIterator[str]:
        """``leg`` events: each leg the record settles after the stream opened (polled every
        ``limits.poll`` s), its data a :class:`LegOut`; a comment as keep-alive."""
        self.streams += 1
        try:
            seen = set(await asyncio.to_thread(self.settled))
            yield f"retry: 2000\n: watching the record every {self.limits.poll:g} s\n\n"
            quiet = 0.0
            while not await request.is_disconnected():
                await asyncio.sleep(self.limits.poll)
                legs = await asyncio.to_thread(self.settled)
                new = sorted((leg for i, leg in legs.items() if i not in seen), key=lambda leg: (leg.leg_seq or 0, leg.id))
                seen.update(legs)
                sent = False
                for leg in new:
                    if deal_id is None or leg.deal_id == deal_id:
                        yield f"event: leg\nid: {leg.id}\ndata: {_leg(leg).model_dump_json()}\n\n"
                        sent = True
                quiet = 0.0 if sent else quiet + self.limits.poll
                if quiet >= self.limits.keepalive:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
        finally:
            self.streams -= 1


def _existing(url: str | None) -> str:
    """``url`` (default: the default record's); a SQLite file that is not there is bad input (a
    read-only service does not create an empty record)."""
    target = url or default_url()
    u = make_url(normalize_url(target))
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:" and not Path(u.database).exists():
        raise InputError(f"no deal record at {u.database} (give --db URL)")
    return target


def create_app(record: Record | str | None, w3: Web3 | str | None, *, lens: str | None = None,
               limits: Limits | None = None) -> FastAPI:
    """The status API over the deal record (a :class:`~dealvault.record.Record`, or its URL: opened
    read-only, not migrated; None: the default record) and the node (a Web3, or its HTTP URL).
    ``lens``: the DealVaultLens for deals whose record names none."""
    lim = limits or Limits()
    rec = record if isinstance(record, Record) else open_record(_existing(record), migrate=False)
    node = Web3(Web3.HTTPProvider(w3, request_kwargs={"timeout": 10})) if isinstance(w3, str) else w3
    svc = _Service(rec, node, lens, lim)
    page = (STATIC / "index.html").read_text()
    errors: dict[int | str, dict[str, Any]] = {
        404: {"model": ErrorOut, "description": "no such deal or path"},
        429: {"model": ErrorOut, "description": "rate bound hit"}}

    app = FastAPI(title="DealVault status API", version="1", docs_url=None, redoc_url=None,
                  description="Read-only: the deal record and each vault's live risk view. Amounts are decimal strings.")

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        return _error(422, f"invalid request: {'.'.join(map(str, first.get('loc', ())))}: {first.get('msg', '')}")

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error: {type(exc).__name__}")

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                                                                      "style-src 'unsafe-inline'; img-src 'self' data:"})

    @app.get("/deals", response_model=list[DealSummary], responses=errors)
    def deals() -> list[DealSummary]:
        """The record's deals, oldest first."""
        return [_summary(svc.record, d) for d in svc.record.list_deals()]

    @app.get("/deals/{deal_id}", response_model=DealDetail, responses=errors)
    def deal(deal_id: str) -> DealDetail:
        """The deal, its vault's live risk view through its lens, the caps and the ladder."""
        return svc.detail(deal_id)

    @app.get("/deals/{deal_id}/legs", response_model=list[LegOut], responses=errors)
    def legs(deal_id: str) -> list[LegOut]:
        """The deal's legs in the record's order, each with NAV / LTV / exposure after it."""
        svc.deal(deal_id)
        return [_leg(leg) for leg in svc.record.legs(deal_id)]

    @app.get("/healthz", response_model=Health, responses={503: {"model": Health, "description": "record or node down"}})
    def healthz() -> JSONResponse:
        """The record and the node reachable, the latest block."""
        h, status = svc.health()
        return JSONResponse(json.loads(h.model_dump_json()), status_code=status)

    @app.get("/events", responses={200: {"content": {"text/event-stream": {}},
                                         "description": "Server-Sent Events: `leg` (data: a LegOut), keep-alive comments"},
                                   503: {"model": ErrorOut, "description": "too many open streams"}})
    async def events(request: Request, deal: str | None = None) -> StreamingResponse:
        """A live stream of the legs the record settles (``deal``: only that deal's)."""
        if svc.streams >= lim.max_streams:
            raise HTTPException(503, f"at most {lim.max_streams} event streams at once")
        return StreamingResponse(svc.events(request, deal), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    app.state.service = svc
    app.add_middleware(_Bounds, limits=lim)
    return app


def serve(*, rpc: str | None, provider: Any, db_url: str | None, host: str, port: int, lens: str | None = None,
          rpc_timeout: float = 10.0, limits: Limits | None = None) -> int:
    """``ape run serve``: the API on ``host:port`` until SIGINT/SIGTERM (exit 0); 2 bad input."""
    import signal
    import sys

    import uvicorn

    from dealvault.cli import connect
    from dealvault.errors import DealVaultError

    try:
        with connect(rpc, provider, timeout=rpc_timeout) as w3:
            app = create_app(db_url, w3, lens=lens, limits=limits)
            # uvicorn stops gracefully on SIGINT/SIGTERM, then raises the signal again under the
            # handlers it found: quiet ones, so that a stop asked for is exit 0
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: None)
            # bounded: open connections, header size; no access log of query strings beyond uvicorn's
            uvicorn.run(app, host=host, port=port, limit_concurrency=256, h11_max_incomplete_event_size=16 * 1024,
                        timeout_graceful_shutdown=2, log_level="info")
    except DealVaultError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    return 0
