"""Metrics and alerts end to end (issue 16), all real: the guard (`ape run guard --metrics-port
--notify`, a process) on a kit (the mirror), a real Prometheus (Debian's package) scraping it every
second with the repo's own rules (ops/prometheus/alerts.yml, as shipped), a real Alertmanager
sending to a webhook receiver here. The deal's ETH feed goes stale; the guard holds the deal; the
DealInHolding alert reaches the webhook through Alertmanager, and the guard's own notification
reaches its json:// receiver. Also `deal_status --watch --metrics-port`, scraped directly.

The shipped DealInHolding rule has no `for:` (HOLDING is never a blip), so the test needs no
test-only rules; only the scrape and evaluation intervals (1 s) and Alertmanager's group_wait (1 s)
are short here, in the test's own configuration files."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from helpers_deal import EXAMPLE, deploy_demo, kit, reverted, signer  # noqa: F401 (kit: the fixture)
from helpers_http import Receiver
from rich.console import Console

from dealvault.kit.anvil import free_port
from dealvault.kit.mirror import make_feed_stale
from dealvault.paths import ROOT
from dealvault.record import open_record
from dealvault.run import run_deal
from dealvault.vault import Phase, VaultClient

PROMETHEUS = Path("/usr/bin/prometheus")
ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
RULES = ROOT / "ops" / "prometheus" / "alerts.yml"
APE = ROOT / ".venv" / "bin" / "ape"

pytestmark = pytest.mark.skipif(not (PROMETHEUS.exists() and ALERTMANAGER.exists()),
                                reason="needs Debian's prometheus and prometheus-alertmanager packages (.ci/run installs them)")


@pytest.fixture(scope="module")
def deal(kit, tmp_path_factory):
    d = deploy_demo(kit, tmp_path_factory.mktemp("observe"))
    d.spec_path = EXAMPLE
    return d


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def wait_for(what, timeout: float, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            assert p.poll() is None, p.communicate()
        try:
            got = what()
        except OSError:
            got = None
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s")


class Procs:
    """Processes the test starts, each stopped (SIGTERM, then SIGKILL) by its own pid at the end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []

    def start(self, args, log: Path, **kw) -> subprocess.Popen:
        p = subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, **kw)
        self.started.append(p)
        return p

    def stop(self) -> None:
        for p in self.started:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.started:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def procs():
    ps = Procs()
    yield ps
    ps.stop()


def start_alertmanager(procs: Procs, tmp: Path, webhook: str) -> str:
    port = free_port()
    cfg = tmp / "alertmanager.yml"
    cfg.write_text(yaml.safe_dump({
        "route": {"receiver": "hook", "group_by": ["alertname", "deal_id"], "group_wait": "1s", "group_interval": "1s",
                  "repeat_interval": "1h"},
        "receivers": [{"name": "hook", "webhook_configs": [{"url": webhook, "send_resolved": True}]}],
    }))
    p = procs.start([str(ALERTMANAGER), f"--config.file={cfg}", f"--storage.path={tmp / 'am'}",
                     f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="], tmp / "alertmanager.log")
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: get_json(f"{url}/api/v2/status"), 60, [p])
    return url


def start_prometheus(procs: Procs, tmp: Path, guard_port: int, alertmanager: str) -> str:
    port = free_port()
    cfg = tmp / "prometheus.yml"
    cfg.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],  # the shipped rules, as they are
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.removeprefix("http://")]}]}]},
        "scrape_configs": [{"job_name": "dealvault-guard", "static_configs": [{"targets": [f"127.0.0.1:{guard_port}"]}]}],
    }))
    p = procs.start([str(PROMETHEUS), f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                     f"--web.listen-address=127.0.0.1:{port}"], tmp / "prometheus.log")
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: urllib.request.urlopen(f"{url}/-/ready", timeout=2).status == 200, 60, [p])
    return url


def query(prom: str, expr: str) -> list[dict]:
    return get_json(f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))["data"]["result"]


def firing(prom: str, name: str) -> list[dict]:
    return [a for a in get_json(f"{prom}/api/v1/alerts")["data"]["alerts"]
            if a["labels"]["alertname"] == name and a["state"] == "firing"]


def test_a_deal_entering_holding_fires_the_alert_through_prometheus_and_alertmanager(kit, deal, procs, tmp_path):
    with reverted(kit.w3) as w3:
        db = f"sqlite:///{tmp_path}/g.db"
        rec = open_record(db)
        try:
            run_deal(deal.spec, w3=w3, operator=signer("TEST::1", w3), owner=signer("TEST::0", w3), record=rec,
                     venues=deal.venues, until="buy")
        finally:
            rec.close()
        client = VaultClient(w3, deal.venues.vault, deal.venues.lens)
        phase = client.risk_view().phase
        assert phase != Phase.HOLDING
        hook, notes = Receiver(), Receiver()
        try:
            am = start_alertmanager(procs, tmp_path, f"http://127.0.0.1:{hook.port}/alertmanager")
            metrics_port = free_port()
            env = {**os.environ, "SOLCX_BINARY_PATH": str(ROOT / "tools" / "solcx")}
            guard = procs.start([str(APE), "run", "guard", "--rpc", kit.node.url, "--deals", str(EXAMPLE),
                                 "--config", str(deal.config), "--deployments-dir", str(deal.tmp / "dep"),
                                 "--account", "TEST::1", "--guardian-account", "TEST::2", "--db", db, "--interval", "0.5",
                                 "--metrics-port", str(metrics_port), "--notify", notes.url("/guard")],
                                tmp_path / "guard.log", cwd=ROOT, env=env)
            prom = start_prometheus(procs, tmp_path, metrics_port, am)
            deal_id = deal.spec.deal_id
            # scraped: the guard is up and Prometheus has the deal's phase as the chain has it; nothing fires
            wait_for(lambda: query(prom, f'dealvault_deal_phase{{deal_id="{deal_id}"}} == {int(phase)}'), 180, [guard])
            assert query(prom, 'up{job="dealvault-guard"}')[0]["value"][1] == "1"
            legseq = int(query(prom, f'dealvault_deal_leg_seq{{deal_id="{deal_id}"}}')[0]["value"][1])
            assert legseq == client.risk_view().legSeq
            assert firing(prom, "DealInHolding") == [] and hook.posts == []

            t0 = time.monotonic()
            make_feed_stale(w3, kit.mirror)
            post = hook.wait(lambda p: any(a["labels"].get("alertname") == "DealInHolding" and a["status"] == "firing"
                                           for a in p.get("alerts", [])), timeout=120)
            took = post["at"] - t0
            (alert,) = [a for a in post["alerts"] if a["labels"]["alertname"] == "DealInHolding"]
            assert alert["labels"]["deal_id"] == deal_id and alert["labels"]["severity"] == "page"
            assert alert["annotations"]["runbook"] == "docs/playbook.md#deal-in-holding"
            assert client.risk_view().phase == Phase.HOLDING  # the chain says so too (the guardian's hold)
            (prom_alert,) = firing(prom, "DealInHolding")
            assert prom_alert["labels"]["deal_id"] == deal_id
            # the guard's own notification of its hold, through apprise
            note = notes.wait(lambda p: p["title"] == f"DealVault guard: {deal_id} oracle act", timeout=30)
            print(f"\nstale feed -> DealInHolding at the webhook: {took:.1f} s; guard notification: {note['at'] - t0:.1f} s")
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
                text = r.read().decode()
            assert f'dealvault_guard_actions_total{{deal_id="{deal_id}",rule="oracle"}} 1.0' in text
            assert f'dealvault_deal_phase_state{{deal_id="{deal_id}",phase="HOLDING"}} 1.0' in text
            assert guard.poll() is None  # still guarding
        finally:
            procs.stop()
            hook.close()
            notes.close()
            out = (tmp_path / "guard.log").read_text()
        assert "Prometheus metrics on http://127.0.0.1:" in out and "notifications to 1 target(s): #1 json" in out, out
        assert notes.url() not in out  # the URL itself is never said


def client_params(w3, deal):
    return VaultClient(w3, deal.venues.vault, deal.venues.lens).read().params


def test_deal_status_watch_serves_the_deal_it_reads(kit, deal):
    from dealvault.run.status import watch

    w3 = kit.w3
    port = free_port()
    done: dict[str, object] = {}

    def run() -> None:
        done["code"] = watch(None, vault=deal.venues.vault, lens=deal.venues.lens, rpc=kit.node.url, every=1, iterations=8,
                             metrics_port=port, out=Console(file=io.StringIO()), err=Console(file=io.StringIO()))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        def scraped():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                text = r.read().decode()
            return text if "dealvault_deal_leg_seq{" in text else None

        text = wait_for(scraped, 30)
    finally:
        t.join(timeout=30)
    rv = VaultClient(w3, deal.venues.vault, deal.venues.lens).risk_view()
    label = f'deal_id="{deal.venues.vault}"'  # no deal id given: the vault's address names it
    assert f"dealvault_deal_leg_seq{{{label}}} {float(rv.legSeq)}" in text, text
    assert f'dealvault_deal_phase_state{{{label},phase="{rv.phase.name}"}} 1.0' in text
    assert "dealvault_rpc_errors_total 0.0" in text
    hf = "+Inf" if rv.healthFactor == 2**256 - 1 else str(rv.healthFactor / 10**18)
    assert f"dealvault_deal_health_factor{{{label}}} {hf}" in text
    assert f"dealvault_deal_ltv_cap_ratio{{{label}}} {client_params(w3, deal).maxLtvBps / 10**4}" in text
    assert done["code"] == 0
    with pytest.raises(OSError):  # the watch ended: its server with it
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_a_metrics_port_in_use_is_bad_input(kit, deal):
    import socket

    from dealvault.errors import ExitCode
    from dealvault.run.status import watch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        err = Console(file=io.StringIO())
        code = watch(None, vault=deal.venues.vault, lens=deal.venues.lens, rpc=kit.node.url, every=1, iterations=1,
                     metrics_port=busy, out=Console(file=io.StringIO()), err=err)
    assert code == ExitCode.INPUT and f"--metrics-port {busy}: cannot listen" in err.file.getvalue()
