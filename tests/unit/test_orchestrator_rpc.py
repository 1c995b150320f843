"""RPC failures: the chain stops mid-deal, refuses connections, or stops answering.

Each test runs on its own anvil node started from the orchestrator kit's state (the mirror, the
overlay and the deployed vault), so stopping it leaves the shared kit alone. The node is stopped
with SIGTERM, which makes anvil write its ``--dump-state`` file; it comes back on the same port
from that file. Expectations come from raw reads (nonces, receipts, the record's rows).
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from test_orchestrator import (  # noqa: F401  (fixtures)
    _cli,
    backend,
    deployed,
    fresh_db,
    kit,
    nonces,
    rec,
    signers,
)
from web3 import Web3
from web3.exceptions import TransactionNotFound

from dealvault.kit.anvil import start_anvil
from dealvault.record import open_record
from dealvault.run import EXIT_CHAIN, ChainError, read_risk, run_deal

DEAL = "demo-001"


def _flat(text: str) -> str:
    """The CLI's stderr with rich's line wrapping undone."""
    return " ".join(text.split())


def _genesis(w3: Web3) -> str:
    return "0x" + bytes(w3.eth.get_block(0)["hash"]).hex()


@pytest.fixture
def kit_state(kit, deployed, tmp_path) -> Path:
    """The kit's state after the vault's deployment, as an anvil --load-state file."""
    raw = kit.w3.provider.make_request("anvil_dumpState", [])["result"]
    data = bytes.fromhex(raw[2:])
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    path = tmp_path / "kit-state.json"
    path.write_bytes(data)
    return path


@pytest.fixture
def node(kit, kit_state, tmp_path):
    """A fresh anvil from the kit's state that dumps its own state on exit (SIGTERM)."""
    dump = tmp_path / "node-state.json"
    n = start_anvil(load_state=kit_state, dump_state=dump)
    n.dump = dump
    assert n.web3().eth.block_number == kit.w3.eth.block_number  # the deployment's blocks came along
    started = [n]
    yield started
    for x in started:
        x.stop()


def _one_genesis(dump: Path) -> Path:
    """anvil quirk (1.7): a node started with --load-state keeps its own fresh genesis block beside
    the loaded one and dumps both; a node loading that dump then reports either block 0 (hash map
    order), so the chain's genesis hash would change across a restart and --resume would rightly
    refuse it as another network. The loaded history predates the node: keep the oldest block 0."""
    state = json.loads(dump.read_text())

    def num(b):
        n = b["header"]["number"]
        return int(n, 16) if isinstance(n, str) else int(n)

    def ts(b):
        t = b["header"]["timestamp"]
        return int(t, 16) if isinstance(t, str) else int(t)

    zeros = [b for b in state["blocks"] if num(b) == 0]
    keep = min(zeros, key=ts)
    state["blocks"] = [b for b in state["blocks"] if num(b) != 0 or b is keep]
    out = dump.with_name(dump.stem + ".one-genesis.json")
    out.write_text(json.dumps(state))
    return out


def _wait_reached(p: subprocess.Popen, gate: Path, limit: float = 120) -> str:
    reached = Path(str(gate) + ".reached")
    deadline = time.monotonic() + limit
    while not reached.exists():
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline, "the test hook was never reached"
        time.sleep(0.05)
    return reached.read_text()


def _pending(db: str) -> list[tuple[str, str]]:
    r = open_record(db)
    try:
        return [(l.tx_hash, l.status) for l in r.pending_legs(DEAL)]
    finally:
        r.close()


def _assert_completed_once(w3: Web3, vault: str, db: str, n0: tuple[int, int], crashed_hash: str) -> None:
    assert read_risk(w3, vault)["phaseName"] == "CLOSED"
    assert nonces(w3) == (n0[0] + 1, n0[1] + 9)  # owner funds once, the operator sends 9 legs: none twice
    assert int(w3.eth.get_transaction_receipt(crashed_hash)["status"]) == 1
    r = open_record(db)
    try:
        legs = r.legs(DEAL)
        assert [l.leg_seq for l in legs] == list(range(1, 11)) and all(l.status == "confirmed" for l in legs)
        assert len({l.nonce for l in legs if l.sender == legs[1].sender}) == 9
        assert [l.tx_hash for l in legs].count(crashed_hash) == 1
    finally:
        r.close()


# ---- the chain stops mid-deal -----------------------------------------------------------------


# Each hook and each record backend once (pairwise, not the 2 x 2 product): what the record does on
# resume is the same calls on either backend, each checked on both in test_record.py and by
# test_orchestrator.py's SIGKILL tests (every hook on every backend); the chain stop is the subject.
@pytest.mark.parametrize("backend,hook,leg_no", [("sqlite", "after-broadcast", 3), ("postgresql", "before-broadcast", 5)])
def test_chain_stopped_mid_deal_then_resume(kit, deployed, node, fresh_db, tmp_path, hook, leg_no):
    """The node stops between a leg's persistence and its receipt: exit 5 with a clear message, the
    record keeps the pending leg; while the node is down a resume is refused the same way (nothing
    changes); once the node is back from its dump, the resume completes the deal, no leg twice."""
    (b,) = node
    w3 = b.web3()
    n0 = nonces(w3)
    genesis = _genesis(w3)
    db = fresh_db()
    gate = tmp_path / "gate"
    p = _cli(kit, deployed, db, env={"DEALVAULT_TEST_HOOK": f"{hook}:{gate}", "DEALVAULT_TEST_HOOK_LEG": str(leg_no)},
             wait=False, rpc=b.url)
    crashed_hash = _wait_reached(p, gate)
    b.stop()  # SIGTERM: anvil writes its --dump-state file on the way out
    assert b.process.returncode is not None and b.dump.exists()
    gate.touch()
    out, err = p.communicate(timeout=180)
    assert p.returncode == EXIT_CHAIN, out + err
    err = _flat(err)
    assert "the chain could not be reached" in err and "--resume" in err
    assert "Traceback" not in err
    pending = _pending(db)
    assert pending == [(crashed_hash, "broadcast" if hook == "after-broadcast" else "signed")]

    # connection refused: the node is down; the resume stops before touching anything
    down = _cli(kit, deployed, db, "--resume", DEAL, "--json", rpc=b.url)
    assert down.returncode == EXIT_CHAIN, down.stdout + down.stderr
    assert "could not be reached" in _flat(down.stderr) and "Traceback" not in down.stderr
    j = json.loads(down.stdout)
    assert j["exit_code"] == EXIT_CHAIN and j["status"] == "error"
    assert _pending(db) == pending

    # the chain is back (same port, from its dump): same chain, same history
    b2 = start_anvil(b.port, load_state=_one_genesis(b.dump))
    node.append(b2)
    w3 = b2.web3()
    assert _genesis(w3) == genesis
    if hook == "after-broadcast":  # mined before the node stopped; the dump kept it
        assert int(w3.eth.get_transaction_receipt(crashed_hash)["status"]) == 1
    else:  # never reached the node
        with pytest.raises(TransactionNotFound):
            w3.eth.get_transaction(crashed_hash)
    ok = _cli(kit, deployed, db, "--resume", DEAL, "--json", rpc=b2.url)
    assert ok.returncode == 0, ok.stderr
    j = json.loads(ok.stdout)
    assert j["status"] == "completed" and j["phase"] == "CLOSED"
    _assert_completed_once(w3, deployed.venues.vault, db, n0, crashed_hash)


# ---- the node stops answering (timeout) -------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])  # the node is the subject; resume on PostgreSQL: the test above
def test_node_stops_answering_mid_deal_then_resume(kit, deployed, node, fresh_db, tmp_path):
    """The node is frozen (SIGSTOP) after a leg is broadcast: the receipt wait times out within the
    --rpc-timeout bound, exit 5; once it answers again (SIGCONT) the resume completes the deal."""
    (b,) = node
    w3 = b.web3()
    n0 = nonces(w3)
    db = fresh_db()
    gate = tmp_path / "gate"
    p = _cli(kit, deployed, db, "--rpc-timeout", "1", env={"DEALVAULT_TEST_HOOK": f"after-broadcast:{gate}",
                                                           "DEALVAULT_TEST_HOOK_LEG": "4"}, wait=False, rpc=b.url)
    crashed_hash = _wait_reached(p, gate)
    os.kill(b.process.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        gate.touch()
        out, err = p.communicate(timeout=120)
        elapsed = time.monotonic() - t0
    finally:
        os.kill(b.process.pid, signal.SIGCONT)
    assert p.returncode == EXIT_CHAIN, out + err
    err = _flat(err)
    assert "could not be reached" in err and "Timeout" in err and "--resume" in err
    assert elapsed < 60  # bounded: a 1 s timeout per request and web3's few retries
    assert _pending(db) == [(crashed_hash, "broadcast")]
    ok = _cli(kit, deployed, db, "--resume", DEAL, "--json", rpc=b.url)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "completed"
    _assert_completed_once(w3, deployed.venues.vault, db, n0, crashed_hash)


class _Silent:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.accepted = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(c)
            self.accepted += 1

    def close(self):
        self._stop.set()
        self._t.join(timeout=5)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def silent():
    s = _Silent()
    yield s
    s.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once closed


@pytest.mark.parametrize("backend", ["sqlite"])  # nothing reaches the record
def test_api_timeout_and_connection_refused_are_chain_errors(deployed, silent, rec):
    for url, timeout, kind in ((f"http://127.0.0.1:{silent.port}", 0.3, "Timeout"),
                               (f"http://127.0.0.1:{_closed_port()}", 5, "ConnectionError")):
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}))
        op, owner = signers(w3)
        t0 = time.monotonic()
        with pytest.raises(ChainError) as ei:
            run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=deployed.venues)
        assert time.monotonic() - t0 < 30
        assert ei.value.exit_code == EXIT_CHAIN
        msg = str(ei.value)
        assert "could not be reached" in msg and kind in msg and "--resume" in msg
        assert rec.get_deal(DEAL) is None  # nothing recorded, nothing sent
    assert silent.accepted >= 1


def test_cli_timeout_exit_code(kit, deployed, silent, tmp_path):
    out = _cli(kit, deployed, f"sqlite:///{tmp_path}/t.db", "--rpc-timeout", "0.3", rpc=f"http://127.0.0.1:{silent.port}")
    assert out.returncode == EXIT_CHAIN, out.stdout + out.stderr
    err = _flat(out.stderr)
    assert "could not be reached" in err and "Timeout" in err and "Traceback" not in err
    # issue 13: --rpc-timeout bounds the wait: one request, not web3's six tries (3 s used to be 18.5 s)
    assert silent.accepted == 1, silent.accepted
