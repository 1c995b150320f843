"""The README's commands against `make mirror`, verbatim (issue 13): the block marked
``mirror-commands`` is read from README.md and each line is run as written, in order, against a
`make mirror` started here on 127.0.0.1:8545 (the ape network chain138:mirror:node). Nothing in a
command is rewritten; the deal record goes to a temporary database through DATABASE_URL and the
deployment record the deploy writes (deployments/local/mirror/demo-001.json) is put back as it was."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time

import pytest

from dealvault.paths import ROOT

RECORD = ROOT / "deployments" / "local" / "mirror" / "demo-001.json"


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- mirror-commands:[^>]*-->\s*```bash\n(.*?)```", text, re.S)
    assert m, "README.md has no mirror-commands block"
    return [line for line in m.group(1).splitlines() if line.strip()]


def server_commands() -> list[str]:
    """The README's long-running commands (blocks marked ``server-commands``), in order."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"<!-- server-commands:[^>]*-->\s*```bash\n(.*?)```", text, re.S)
    assert blocks, "README.md has no server-commands block"
    return [line for b in blocks for line in b.splitlines() if line.strip()]


#: How each server command is checked: (its port, the path that must answer 200).
SERVER_CHECKS = {"prometheus": (9090, "/-/ready"), "ape": (8000, "/healthz")}


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def mirror():
    """`make mirror`, as the README says, until the test ends (SIGTERM stops its anvil)."""
    if not _port_free(8545):
        pytest.skip("127.0.0.1:8545 is in use: the README's mirror commands need it free")
    env = {**os.environ, "SOLCX_BINARY_PATH": str(ROOT / "tools" / "solcx")}
    p = subprocess.Popen(["make", "-s", "mirror"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    try:
        deadline, lines = time.monotonic() + 300, []
        while not any("up; Ctrl-C to stop" in line for line in lines):
            assert p.poll() is None and time.monotonic() < deadline, "".join(lines)
            lines.append(p.stderr.readline())
        yield p
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(timeout=60)
    assert _port_free(8545), "make mirror left its anvil running"


@pytest.fixture
def clean_record():
    saved = RECORD.read_bytes() if RECORD.exists() else None
    RECORD.unlink(missing_ok=True)
    try:
        yield
    finally:
        RECORD.unlink(missing_ok=True)
        if saved is not None:
            RECORD.write_bytes(saved)


def test_readme_commands_run_verbatim_against_make_mirror(mirror, clean_record, tmp_path):
    cmds = readme_commands()
    assert [shlex.split(c)[2] for c in cmds] == ["deploy", "verify_deployment", "execute_deal", "execute_deal", "deal_status",
                                                    "guard"]
    env = {**os.environ, "SOLCX_BINARY_PATH": str(ROOT / "tools" / "solcx"), "DATABASE_URL": f"sqlite:///{tmp_path}/deals.db",
           "PATH": f"{ROOT / '.venv' / 'bin'}:{ROOT / 'node_modules' / '.bin'}:{os.environ.get('PATH', '')}"}
    outs = []
    for cmd in cmds:
        out = subprocess.run(cmd, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, f"{cmd}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        assert "Traceback" not in out.stderr, cmd
        outs.append(out)
    deployed = json.loads(outs[0].stdout)
    assert deployed["status"] == "deployed" and json.loads(RECORD.read_text())["address"] == deployed["address"]
    verified = json.loads(outs[1].stdout)
    assert verified["verified"] is True and verified["notes"] == []  # checked against the current build, byte for byte
    assert "dry run on a throw-away fork: nothing was sent" in outs[2].stdout
    assert "deal completed: the vault is CLOSED" in outs[3].stdout
    assert "no flags" in outs[4].stdout + outs[4].stderr
    # the guard's one poll of the closed deal: its lease taken, nothing to do, nothing sent
    assert "1 deal(s) shared through the record's leases" in outs[5].stderr and "act:" not in outs[5].stderr, outs[5].stderr
    # the servers, verbatim: each answers, then stops cleanly on SIGTERM
    servers = server_commands()
    assert [shlex.split(c)[0] for c in servers] == ["prometheus", "ape"]
    for cmd in servers:
        port, path = SERVER_CHECKS[shlex.split(cmd)[0]]
        if not _port_free(port):
            pytest.skip(f"127.0.0.1:{port} is in use: the README's `{cmd}` needs it free")
        # the words as written, no shell in between: SIGTERM reaches the server itself
        p = subprocess.Popen(shlex.split(cmd), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            body = _answer(p, port, path)
            if path == "/healthz":  # the service sees the mirror and the record the commands above wrote
                health = json.loads(body)
                assert health["status"] == "ok" and health["record"]["deals"] == 1, body
        finally:
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=60)
        assert p.returncode == 0 and "Traceback" not in err, f"{cmd}: exit {p.returncode}\n{err[-2000:]}"
    assert (ROOT / ".dealvault" / "prometheus").is_dir()


def _answer(p: subprocess.Popen, port: int, path: str) -> str:
    """GET http://127.0.0.1:{port}{path} once the server answers 200 (60 s at most); its body."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + 60
    while True:
        assert p.poll() is None, p.communicate()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                if r.status == 200:
                    return r.read().decode()
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        assert time.monotonic() < deadline, f"127.0.0.1:{port}{path} did not answer"
        time.sleep(0.2)


@pytest.mark.parametrize("script", ["deploy", "verify_deployment"])
def test_network_not_configured_or_down_is_a_message_not_a_traceback(script):
    """Issue 13: the README's mainnet network without CHAIN138_RPC_URL is exit 2 naming the
    variable; the mirror's network with no mirror running is exit 5; never a traceback."""
    env = {k: v for k, v in os.environ.items() if k != "CHAIN138_RPC_URL"}
    env["SOLCX_BINARY_PATH"] = str(ROOT / "tools" / "solcx")
    extra = {"deploy": ["--account", "TEST::0", "--deal", "deals/example.yaml"], "verify_deployment": ["--deal", "demo-001"]}[script]
    ape = str(ROOT / ".venv" / "bin" / "ape")
    out = subprocess.run([ape, "run", script, "--network", "chain138:mainnet:node", *extra], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    err = " ".join(out.stderr.split())
    assert out.returncode == 2 and "CHAIN138_RPC_URL is not set" in err and "Traceback" not in out.stderr, out.stderr
    if not _port_free(8545):
        pytest.skip("127.0.0.1:8545 is in use")
    out = subprocess.run([ape, "run", script, "--network", "chain138:mirror:node", *extra], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    err = " ".join(out.stderr.split())
    assert out.returncode == 5 and "the node could not be reached" in err and "Traceback" not in out.stderr, out.stderr


def test_every_make_target_the_readme_names_is_a_target():
    """Each ``make <target>`` the README names in a code span or block is a target of the Makefile
    (``make -n``: printed, not run; the long ones, fuzz / prove / mutate, run outside make test)."""
    text = (ROOT / "README.md").read_text()
    spans = re.findall(r"`([^`\n]+)`", text) + re.findall(r"```bash\n(.*?)```", text, re.S)
    targets = sorted({t for s in spans for t in re.findall(r"(?:^|\s)make ([a-z][a-z-]*)", s)})
    assert {"demo", "test", "invariant", "fuzz", "prove", "mutate"} <= set(targets), targets
    for t in targets:
        p = subprocess.run(["make", "-n", t], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, (t, p.stderr[-500:])
