"""The read-only status API and its page (dealvault.observe.api; issue 16), served by a real uvicorn
on a free port, over a demo deal on the mirror kit driven to its position (split, supply, borrow).

Expectations come from the record and the chain read directly (the lens's risk view, the record's
rows), never from the API's own numbers. The page is driven in a real headless Chromium (Debian's,
through Playwright): it shows what the API returns and updates when a leg lands, without reload.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from helpers_deal import deploy_demo, kit, reverted, signer  # noqa: F401 (kit: the fixture)

from dealvault.errors import InputError
from dealvault.observe.api import Limits, create_app
from dealvault.paths import ROOT
from dealvault.record import open_record
from dealvault.run import run_deal
from dealvault.units import amount_text
from dealvault.vault import VaultClient

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts"
DOC_IMAGE = ROOT / "docs" / "img" / "status-page.png"
DEAL = "demo-001"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served(db_url: str, w3, limits: Limits | None = None) -> Iterator[str]:
    """The app on a real uvicorn in a thread, bound to 127.0.0.1; its base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(db_url, w3, limits=limits), host="127.0.0.1", port=port,
                                           log_level="warning", timeout_graceful_shutdown=1))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert t.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        t.join(15)


def drive(w3, deal, rec, until, *, resume=False):
    return run_deal(deal.spec, w3=w3, operator=signer("TEST::1", w3), owner=signer("TEST::0", w3), record=rec,
                    venues=deal.venues, until=until, resume=resume)


@pytest.fixture(scope="module")
def deal(kit, tmp_path_factory):
    """The demo deal deployed and driven to its position; its record at ``deal.db``."""
    tmp = tmp_path_factory.mktemp("observe")
    d = deploy_demo(kit, tmp)
    d.db = tmp / "deals.db"
    with open_record(f"sqlite:///{d.db}") as rec:
        drive(kit.w3, d, rec, "position")
    return d


@pytest.fixture(scope="module")
def api(kit, deal) -> Iterator[str]:
    with served(f"sqlite:///{deal.db}", kit.w3) as url:
        yield url


@pytest.fixture
def moving(kit, deal, tmp_path):
    """For a test that drives the deal further: its own copy of the record, the chain put back after."""
    db = tmp_path / "deals.db"
    shutil.copy(deal.db, db)
    with reverted(kit.w3) as w3, open_record(f"sqlite:///{db}") as rec:
        yield w3, rec, f"sqlite:///{db}"


def test_deals_and_legs_are_the_record_with_amounts_as_strings(api, kit, deal):
    with open_record(f"sqlite:///{deal.db}", migrate=False) as rec:
        legs = rec.legs(DEAL)
        info = rec.get_deal(DEAL)
    deals = httpx.get(f"{api}/deals").json()
    assert [d["id"] for d in deals] == [DEAL]
    d = deals[0]
    assert (d["status"], d["chain_id"], d["vault_address"], d["lens_address"]) == (info.status, 138, info.vault_address, info.lens_address)
    assert d["last_leg_seq"] == max(leg.leg_seq for leg in legs if leg.status == "confirmed")
    assert d["legs"] == len(legs)

    out = httpx.get(f"{api}/deals/{DEAL}/legs").json()
    assert [(x["id"], x["leg"], x["leg_seq"], x["tx_hash"], x["gas_used"], x["block_number"]) for x in out] == [
        (leg.id, leg.leg, leg.leg_seq, leg.tx_hash, leg.gas_used, leg.block_number) for leg in legs]
    assert all(len(x["tx_hash"]) == 66 for x in out)  # full hashes
    for x, leg in zip(out, legs, strict=True):
        view = leg.risk_after["risk"]
        assert x["risk_after"]["nav_usd"] == amount_text(view["nav"], 8, grouped=False)
        assert x["risk_after"]["ltv_bps"] == str(view["ltvBps"]) and isinstance(x["risk_after"]["ltv_bps"], str)
        assert x["risk_after"]["exposure_bps"] == str(view["exposureBps"])
    assert any(int(x["risk_after"]["ltv_bps"]) > 0 for x in out)  # the borrow is in
    text = json.dumps(out)
    assert "raw_tx" not in text and "private" not in text.lower()


def test_deal_has_the_live_risk_view_through_its_lens(api, kit, deal):
    risk = VaultClient(kit.w3, deal.venues.vault, deal.venues.lens).read()
    body = httpx.get(f"{api}/deals/{DEAL}").json()
    live = body["live"]
    assert body["live_error"] is None and live["vault"] == deal.venues.vault and live["lens"] == deal.venues.lens
    r, p = risk.risk, risk.params
    assert live["nav_usd"] == amount_text(r.nav, 8, grouped=False) and int(r.nav) > 0
    assert (live["ltv_bps"], live["exposure_bps"], live["leg_seq"], live["phase"]) == (str(r.ltvBps), str(r.exposureBps), r.legSeq,
                                                                                       r.phase.name)
    assert (live["max_ltv_bps"], live["max_exposure_bps"]) == (str(p.maxLtvBps), str(p.maxExposureBps))
    rows = {row["key"]: row for row in live["risk"]}
    assert rows["collateralWeth"]["amount"] == {"raw": str(r.collateralWeth), "value": amount_text(r.collateralWeth, 18, grouped=False),
                                                "unit": "ETH", "decimals": 18}
    assert rows["debt"]["amount"]["raw"] == str(r.debt) and int(r.debt) > 0
    ladder = body["ladder"]
    assert [g["rung"] for g in ladder["rungs"]] == [1, 2, 3] and ladder["rung"] == r.rung + 1
    assert [g["size"]["raw"] for g in ladder["rungs"]] == [str(x) for x in p.rungs]
    # no float anywhere: every number that is money is a string
    assert not [k for k, v in live.items() if isinstance(v, float)]


def test_errors_are_json_and_the_service_is_read_only(api, kit):
    r = httpx.get(f"{api}/deals/no-such-deal")
    assert r.status_code == 404 and r.json() == {"error": "no deal 'no-such-deal' in the record", "status": 404}
    assert httpx.get(f"{api}/deals/no-such-deal/legs").status_code == 404
    assert httpx.get(f"{api}/nowhere").json()["status"] == 404
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = httpx.request(method, f"{api}/deals", content=b"{}")
        assert r.status_code == 405 and r.json()["status"] == 405 and r.headers["allow"] == "GET, HEAD"
    r = httpx.request("GET", f"{api}/deals", content=b"x" * 10)
    assert r.status_code == 413 and r.json()["status"] == 413
    r = httpx.get(f"{api}/deals/{'x' * 3000}")
    assert r.status_code == 414 and r.json()["status"] == 414
    r = httpx.head(f"{api}/deals")
    assert r.status_code == 200 and r.content == b""
    r = httpx.head(f"{api}/events", timeout=5)  # the stream's headers, not a stream
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    h = httpx.get(f"{api}/healthz")
    assert h.status_code == 200
    assert h.json()["status"] == "ok" and h.json()["node"]["block"] == kit.w3.eth.block_number and h.json()["record"]["deals"] == 1
    paths = httpx.get(f"{api}/openapi.json").json()["paths"]
    assert {"/deals", "/deals/{deal_id}", "/deals/{deal_id}/legs", "/healthz", "/events"} <= set(paths)
    assert all(set(ops) == {"get"} for ops in paths.values())  # no write endpoint
    schema = httpx.get(f"{api}/openapi.json").json()["components"]["schemas"]
    assert schema["Live"]["properties"]["nav_usd"]["type"] == "string"


def test_rate_bound_answers_429(kit, deal):
    with served(f"sqlite:///{deal.db}", kit.w3, Limits(rate=1, burst=5)) as url, httpx.Client() as c:
        codes = [c.get(f"{url}/healthz").status_code for _ in range(8)]
        assert codes[:5] == [200] * 5 and 429 in codes[5:]
        r = c.get(f"{url}/deals")
        assert r.status_code == 429 and r.json()["status"] == 429 and r.headers["retry-after"] == "1"
        time.sleep(1.1)  # a token back
        assert c.get(f"{url}/deals").status_code == 200


def test_event_streams_are_bounded(kit, deal):
    with served(f"sqlite:///{deal.db}", kit.w3, Limits(max_streams=1)) as url, httpx.Client(timeout=10) as c:
        with c.stream("GET", f"{url}/events") as first:
            lines = first.iter_lines()  # held: dropping the iterator would close the stream
            assert next(lines).startswith("retry:")  # open and counted
            r = httpx.get(f"{url}/events", timeout=5)
            assert r.status_code == 503 and r.json() == {"error": "at most 1 event streams at once", "status": 503}
        codes, deadline = [], time.monotonic() + 5  # the first one closed: its place is free again
        while 200 not in codes and time.monotonic() < deadline:
            with c.stream("GET", f"{url}/events") as again:
                codes.append(again.status_code)
            time.sleep(0.1)
        assert codes[-1] == 200, codes


def test_a_broken_record_is_a_json_500_and_a_missing_one_is_refused(kit, tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()  # a file, but no schema: every read fails
    with served(f"sqlite:///{empty}", kit.w3) as url:
        r = httpx.get(f"{url}/deals")
        assert r.status_code == 500 and r.json() == {"error": "internal error: OperationalError", "status": 500}
        h = httpx.get(f"{url}/healthz")
        assert h.status_code == 503 and h.json()["record"]["ok"] is False and h.json()["node"]["ok"] is True
    with pytest.raises(InputError, match="no deal record at"):
        create_app(f"sqlite:///{tmp_path / 'nothing.db'}", kit.w3)
    assert not (tmp_path / "nothing.db").exists()


def test_node_down_is_said_not_hidden(deal):
    with served(f"sqlite:///{deal.db}", f"http://127.0.0.1:{_free_port()}") as url:
        h = httpx.get(f"{url}/healthz")
        assert h.status_code == 503 and h.json()["node"]["ok"] is False and h.json()["record"]["ok"] is True
        body = httpx.get(f"{url}/deals/{DEAL}").json()
        assert body["live"] is None and "ConnectionError" in body["live_error"] and body["deal"]["id"] == DEAL


def _listening(port: int) -> set[str]:
    """The local addresses (kernel hex) with a TCP socket listening on ``port``, IPv4 and IPv6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            for row in f.read().splitlines()[1:]:
                local, state = row.split()[1], row.split()[3]
                addr, hexport = local.split(":")
                if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                    found.add(addr)
    return found


def test_ape_run_serve_binds_localhost_and_stops_on_sigterm(kit, deal):
    """`ape run serve` as a user runs it: 127.0.0.1 by default, the record's deals, exit 0 on SIGTERM."""
    port = _free_port()
    env = {**os.environ, "SOLCX_BINARY_PATH": str(ROOT / "tools" / "solcx")}
    p = subprocess.Popen([str(ROOT / ".venv" / "bin" / "ape"), "run", "serve", "--rpc", kit.node.url, "--db", f"sqlite:///{deal.db}",
                          "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert p.poll() is None, p.communicate()[0]
            assert time.monotonic() < deadline, "ape run serve did not answer"
            with contextlib.suppress(httpx.TransportError):
                h = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            time.sleep(0.2)
        assert h.status_code == 200 and h.json()["node"]["chain_id"] == 138
        assert [d["id"] for d in httpx.get(f"http://127.0.0.1:{port}/deals").json()] == [DEAL]
        assert "<svg id=\"chart\"" in httpx.get(f"http://127.0.0.1:{port}/").text
        assert _listening(port) == {"0100007F"}  # 127.0.0.1 only (/proc/net/tcp's little-endian hex)
    finally:
        p.send_signal(signal.SIGTERM)
        out = p.communicate(timeout=60)[0]
    assert p.returncode == 0, out


def _read_events(url: str, got: list, stop: threading.Event) -> None:
    """Parse the stream into ``got`` as (arrival time, event) until ``stop`` (the server going
    away after it is the end of the test, not an error)."""
    with contextlib.suppress(httpx.RemoteProtocolError), httpx.Client(timeout=None) as c, c.stream("GET", f"{url}/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        event = {}
        for line in r.iter_lines():
            if line.startswith("event:"):
                event["event"] = line[6:].strip()
            elif line.startswith("data:"):
                event["data"] = json.loads(line[5:])
            elif line == "" and "data" in event:
                got.append((time.time(), event))
                event = {}
            if stop.is_set():
                return


def test_events_stream_a_leg_when_the_record_confirms_it(moving, deal):
    w3, rec, db_url = moving
    with served(db_url, w3, Limits(keepalive=0.5)) as url:
        got: list = []
        stop = threading.Event()
        reader = threading.Thread(target=_read_events, args=(url, got, stop), daemon=True)
        reader.start()
        time.sleep(1.0)  # the stream is open and has read the record
        drive(w3, deal, rec, "buy", resume=True)
        new = [leg for leg in rec.legs(DEAL) if leg.step == 2 and leg.status == "confirmed"]
        assert new
        deadline = time.monotonic() + 10
        while len(got) < len(new) and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        reader.join(5)  # at the next keep-alive, before the server goes
        assert not reader.is_alive()
        assert [e["event"] for _, e in got] == ["leg"] * len(new)
        assert [(e["data"]["id"], e["data"]["leg_seq"], e["data"]["tx_hash"]) for _, e in got] == [
            (leg.id, leg.leg_seq, leg.tx_hash) for leg in new]
        lag = [t - leg.confirmed_at.timestamp() for (t, _), leg in zip(got, new, strict=True)]
        print(f"SSE latency from the record's confirmation to the event: {max(lag) * 1000:.0f} ms (max of {len(lag)})")
        assert max(lag) < 3.0


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (Debian's chromium package) on this machine")
def test_page_shows_the_api_numbers_and_updates_when_a_leg_lands(moving, deal):
    from playwright.sync_api import sync_playwright

    w3, rec, db_url = moving
    with served(db_url, w3) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            errors: list = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/")
            page.wait_for_selector("#live [data-field=nav_usd]:not(:empty)")
            page.wait_for_selector("#conn[data-state=open]")
            api = httpx.get(f"{url}/deals/{DEAL}").json()["live"]
            for f in ("nav_usd", "ltv_bps", "exposure_bps", "max_ltv_bps", "max_exposure_bps", "phase"):
                assert page.text_content(f"#live [data-field={f}]") == str(api[f]), f
            legs = httpx.get(f"{url}/deals/{DEAL}/legs").json()
            assert page.locator("#legs tbody tr").count() == len(legs)
            assert page.text_content("#legs tbody tr:first-child [data-field=nav_usd]") == legs[-1]["risk_after"]["nav_usd"]
            assert page.text_content("#legs tbody tr:first-child [data-field=ltv_bps]") == legs[-1]["risk_after"]["ltv_bps"]
            assert page.get_attribute("#chart", "data-points") == str(len(legs))
            assert page.locator("#cap-ltv").get_attribute("data-value") == api["max_ltv_bps"]
            ladder = httpx.get(f"{url}/deals/{DEAL}").json()["ladder"]
            assert [page.text_content(f"#ladder tr[data-rung='{g['rung']}'] td:nth-child(2)") for g in ladder["rungs"]] == [
                g["size"]["value"] for g in ladder["rungs"]]
            assert page.text_content("#ladder-note [data-field=rung]") == str(ladder["rung"])
            page.evaluate("window.__sameDocument = true")  # gone if the page reloads
            assert page.text_content("#deals tr[data-deal-id] [data-field=last_leg_seq]") == str(legs[-1]["leg_seq"])

            drive(w3, deal, rec, "buy", resume=True)  # a leg lands
            landed = [leg for leg in rec.legs(DEAL) if leg.status == "confirmed"][-1]
            page.wait_for_selector(f"#legs tr[data-leg-id='{landed.id}']", timeout=10_000)
            page.wait_for_function(f"document.body.dataset.lastLegId === '{landed.id}'", timeout=10_000)
            seen = int(page.get_attribute("body", "data-refreshed")) / 1000  # the page's clock when its refresh ended
            print(f"page updated {(seen - landed.confirmed_at.timestamp()) * 1000:.0f} ms after the record confirmed "
                  f"leg {landed.leg} (legSeq {landed.leg_seq})")
            after = httpx.get(f"{url}/deals/{DEAL}").json()["live"]
            assert page.text_content("#live [data-field=leg_seq]") == str(after["leg_seq"]) == str(landed.leg_seq)
            assert page.text_content("#live [data-field=nav_usd]") == after["nav_usd"]
            top = page.locator("#legs tbody tr").first
            assert top.get_attribute("data-leg-seq") == str(landed.leg_seq)
            assert page.get_attribute("#chart", "data-points") == str(len(httpx.get(f"{url}/deals/{DEAL}/legs").json()))
            assert page.locator(f"#chart circle[data-series=ltv][data-leg-seq='{landed.leg_seq}']").count() == 1
            assert page.evaluate("window.__sameDocument === true")  # updated in place, not reloaded
            assert not errors, errors
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "status-page.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            DOC_IMAGE.parent.mkdir(parents=True, exist_ok=True)
            if not DOC_IMAGE.exists():  # the README's image: written once, committed
                shutil.copy(shot, DOC_IMAGE)
        finally:
            browser.close()

