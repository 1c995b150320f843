"""The guard's read side (dealvault.guard.read.read_all) on the kit: a real vault and lens deployed
by the deploy pipeline, the deal run with run_deal to the phase each test needs; USDTz frozen and
cUSDT blacklisting by the kit's FiatToken roles, the desk halted by its issuer."""

from __future__ import annotations

import pytest
from helpers_deal import deploy_demo, kit, resolver, reverted  # noqa: F401 (kit: the fixture)
from web3 import HTTPProvider, Web3

from dealvault.accounts import ape_account
from dealvault.guard.model import Target
from dealvault.guard.read import DESK_WOULD_FAIL, MULTICALL3, desk_amount, has_multicall3, read_all
from dealvault.kit import fiattoken
from dealvault.kit.evm import act_as, has_code, set_code
from dealvault.kit.mirror import install_multicall3, multicall3_runtime
from dealvault.kit.overlay import freeze_usdtz, halt_desk
from dealvault.record import open_record
from dealvault.run import run_deal
from dealvault.signer import ApeAccountSigner
from dealvault.vault import Phase, VaultClient, vault_abi

MODES = ["batch", "multicall"]


class Counting(HTTPProvider):
    """An HTTP provider counting the HTTP requests it makes (a batch is one)."""

    requests = 0

    def make_request(self, method, params):  # type: ignore[no-untyped-def]
        self.requests += 1
        return super().make_request(method, params)

    def make_batch_request(self, requests):  # type: ignore[no-untyped-def]
        self.requests += 1
        return super().make_batch_request(requests)


@pytest.fixture(scope="module")
def deployed(kit, tmp_path_factory):
    d = deploy_demo(kit, tmp_path_factory.mktemp("gread"))
    v = d.venues
    d.target = Target(deal_id=d.spec.deal_id, vault=v.vault, lens=str(v.lens), stable=v.cusdt, usdtz=v.usdtz, desk=v.desk,
                      operator=resolver("TEST::1"))
    return d


@pytest.fixture
def chain(kit, deployed):
    with reverted(kit.w3) as w3:
        yield w3


def run_to(w3, deployed, tmp_path, until):
    op, owner = ApeAccountSigner(ape_account("TEST::1"), w3), ApeAccountSigner(ape_account("TEST::0"), w3)
    rec = open_record(f"sqlite:///{tmp_path}/rec.db")
    try:
        run_deal(deployed.spec, w3=w3, operator=op, owner=owner, record=rec, venues=deployed.venues, until=until)
    finally:
        rec.close()


def monetizing(w3, deployed, tmp_path) -> VaultClient:
    """The deal bought its USDTz, then one rung-1 tranche redeemed by the operator: MONETIZING
    with USDTz still held."""
    run_to(w3, deployed, tmp_path, "buy")
    client = VaultClient(w3, deployed.venues.vault, str(deployed.venues.lens))
    r = client.read()
    vault = w3.eth.contract(address=deployed.venues.vault, abi=vault_abi())
    act_as(w3, deployed.target.operator, vault.functions.redeem(deployed.venues.cusdt, r.params.rungs[0]))
    r = client.read()
    assert r.risk.phase == Phase.MONETIZING and r.risk.usdtzHeld > 0
    return client


@pytest.mark.parametrize("mode", MODES)
def test_readings_equal_vault_client_and_probes_healthy(chain, deployed, tmp_path, mode):
    w3 = chain
    client = monetizing(w3, deployed, tmp_path)
    poll = read_all(w3, [deployed.target], mode=mode)
    ref = client.read(block=poll.block_number)
    g = poll.readings[deployed.spec.deal_id]
    assert g.risk == ref.risk and g.params == ref.params
    assert g.probes.usdtz_transfer is None and g.probes.stable_transfer is None and g.probes.desk is None
    assert poll.errors == {}
    block = w3.eth.get_block(poll.block_number)
    assert (poll.block_hash, poll.parent_hash, poll.timestamp) == ("0x" + bytes(block["hash"]).hex(),
                                                                   "0x" + bytes(block["parentHash"]).hex(), block["timestamp"])
    assert poll.round_trips == 2  # the batch, then the desk probe (MONETIZING with USDTz held)
    # the desk probe's amount is the smallest the vault takes: minTranche (or all that is left)
    assert desk_amount(g.risk, g.params) == min(g.risk.usdtzHeld, g.params.minTranche)


def test_split_vault_one_round_trip_no_desk_probe(chain, deployed, tmp_path):
    run_to(chain, deployed, tmp_path, "split")
    poll = read_all(chain, [deployed.target])
    g = poll.readings[deployed.spec.deal_id]
    assert g.risk.phase == Phase.SPLIT and g.probes == type(g.probes)()
    assert poll.round_trips == 1


def test_usdtz_frozen_names_it(kit, chain, deployed, tmp_path):
    monetizing(chain, deployed, tmp_path)
    freeze_usdtz(chain, kit.overlay, deployed.venues.vault)
    g = read_all(chain, [deployed.target]).readings[deployed.spec.deal_id]
    assert g.probes.usdtz_transfer is not None and "Blacklistable: account is blacklisted" in g.probes.usdtz_transfer
    assert g.probes.stable_transfer is None
    # the vault cannot hand its USDTz to the desk either: the redemption would fail
    assert g.probes.desk is not None and g.probes.desk.startswith(DESK_WOULD_FAIL)


def test_stable_blacklisted_names_it(kit, chain, deployed, tmp_path):
    run_to(chain, deployed, tmp_path, "split")
    fiattoken.freeze(chain, kit.mirror.cusdt_token, deployed.venues.vault)
    g = read_all(chain, [deployed.target]).readings[deployed.spec.deal_id]
    assert g.probes.stable_transfer is not None and "Blacklistable: account is blacklisted" in g.probes.stable_transfer
    assert g.probes.usdtz_transfer is None
    # a 0 transfer still checks the blacklist (the probe is not vacuous): the same call reverts in a plain eth_call
    tok = kit.mirror.cusdt_token.contract(chain)
    with pytest.raises(Exception, match="blacklisted"):
        tok.functions.transfer(deployed.venues.vault, 0).call({"from": deployed.venues.vault})


def test_stable_paused_names_it(kit, chain, deployed, tmp_path):
    run_to(chain, deployed, tmp_path, "split")
    fiattoken.pause(chain, kit.mirror.cusdt_token)
    g = read_all(chain, [deployed.target]).readings[deployed.spec.deal_id]
    assert g.probes.stable_transfer is not None and "Pausable: paused" in g.probes.stable_transfer


def test_token_returning_nothing_counts_as_success(chain, deployed, tmp_path):
    """A stablecoin whose transfer returns no data (USDT-style) is a success: a STOP-only contract
    at the stablecoin's address answers every call with empty data."""
    run_to(chain, deployed, tmp_path, "split")
    stop_only = "0x00"
    set_code(chain, deployed.venues.cusdt, stop_only)
    g = read_all(chain, [deployed.target]).readings[deployed.spec.deal_id]
    assert g.probes.stable_transfer is None
    set_code(chain, deployed.venues.cusdt, "0x60006000f3")  # any other code: still empty return data
    assert read_all(chain, [deployed.target]).readings[deployed.spec.deal_id].probes.stable_transfer is None


def test_desk_halted_says_so(kit, chain, deployed, tmp_path):
    monetizing(chain, deployed, tmp_path)
    halt_desk(chain, kit.overlay)
    g = read_all(chain, [deployed.target]).readings[deployed.spec.deal_id]
    assert g.probes.desk is not None and g.probes.desk.startswith(DESK_WOULD_FAIL)
    assert g.probes.usdtz_transfer is None and g.probes.stable_transfer is None
    # nothing was sent: the vault is still MONETIZING, its ladder untouched
    assert g.risk.phase == Phase.MONETIZING
    assert read_all(chain, [deployed.target]).readings[deployed.spec.deal_id].risk == g.risk


@pytest.mark.parametrize("mode", MODES)
def test_bogus_targets_go_to_errors_others_read(chain, deployed, tmp_path, mode):
    run_to(chain, deployed, tmp_path, "split")
    t = deployed.target
    no_vault = Target("bogus-1", "0x" + "11" * 20, t.lens, t.stable, t.usdtz, t.desk, t.operator)
    not_a_lens = Target("bogus-2", t.vault, t.usdtz, t.stable, t.usdtz, t.desk, t.operator)  # USDTz is no lens
    poll = read_all(chain, [no_vault, t, not_a_lens], mode=mode)
    assert set(poll.errors) == {"bogus-1", "bogus-2"} and set(poll.readings) == {t.deal_id}
    assert no_vault.vault.lower() in poll.errors["bogus-1"].lower() and "riskView" in poll.errors["bogus-1"]
    assert poll.readings[t.deal_id].risk.phase == Phase.SPLIT


@pytest.mark.parametrize("mode", MODES)
def test_round_trips_constant_for_1_and_20_targets(kit, chain, deployed, tmp_path, mode):
    monetizing(chain, deployed, tmp_path)
    prov = Counting(kit.node.url)
    w3 = Web3(prov)
    t = deployed.target
    trips = {}
    for n in (1, 20):
        targets = [Target(f"d{i}", t.vault, t.lens, t.stable, t.usdtz, t.desk, t.operator) for i in range(n)]
        before = prov.requests
        poll = read_all(w3, targets, mode=mode)
        trips[n] = (poll.round_trips, prov.requests - before)
        assert len(poll.readings) == n and not poll.errors
        assert all(g.probes.desk is None for g in poll.readings.values())
    assert trips[1] == trips[20] == (2, 2)


def test_no_multicall3_falls_back_to_batch(kit, chain, deployed, tmp_path):
    run_to(chain, deployed, tmp_path, "split")
    assert has_code(chain, MULTICALL3)  # the mirror installed it
    code = chain.eth.get_code(MULTICALL3)
    assert "0x" + bytes(code).hex() == multicall3_runtime()
    assert install_multicall3(chain) is False  # already there: left alone
    set_code(chain, MULTICALL3, "0x")
    w3 = Web3(Counting(kit.node.url))
    ref = read_all(chain, [deployed.target], mode="batch")
    poll = read_all(w3, [deployed.target], mode="multicall")
    assert poll.readings == ref.readings and poll.round_trips == 2  # found out, then the lens reads by batch
    assert has_multicall3(w3) is False
    assert read_all(w3, [deployed.target], mode="multicall").round_trips == 1  # remembered
    assert install_multicall3(chain) is True and has_code(chain, MULTICALL3)


class MinesDuringFirstBatch(Counting):
    """A block comes in while the first batch is answered: its last header is the new block's."""

    mined = False

    def make_batch_request(self, requests):  # type: ignore[no-untyped-def]
        out = super().make_batch_request(requests)
        if not self.mined:
            self.mined = True
            Web3(HTTPProvider(self.endpoint_uri)).provider.make_request("evm_mine", [])
            out[-1] = {"jsonrpc": "2.0", "id": out[-1]["id"], "result": super().make_request("eth_getBlockByNumber", ["latest", False])["result"]}
        return out


def test_block_moving_during_the_batch_rereads_at_the_new_block(kit, chain, deployed, tmp_path):
    run_to(chain, deployed, tmp_path, "split")
    before = chain.eth.block_number
    prov = MinesDuringFirstBatch(kit.node.url)
    poll = read_all(Web3(prov), [deployed.target])
    assert poll.block_number == before + 1 == chain.eth.block_number
    assert poll.block_hash == "0x" + bytes(chain.eth.get_block(before + 1)["hash"]).hex()
    assert poll.round_trips == 2 and prov.requests == 3  # the batch, the re-read pinned to the new block (+ the stand-in header)
    assert poll.readings[deployed.spec.deal_id].risk.phase == Phase.SPLIT
