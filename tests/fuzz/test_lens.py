"""The lens's TWAP view on the fuzzer's vault (tests/fuzz/harness.py), outside the state machine.

FINDING (contract, found by the fuzzer's first example; fixed in 07dc182): ``DealVaultLens.twap``
computed ``readyAt`` as ``observedAt + ParamTable.get(st.words[2], TwapWindow)``, but ParamTable
keeps TwapWindow in storage slot 0 (byte offset 29), not slot 2: the word it read had zero bytes
there, so ``readyAt == observedAt`` whatever the window, and a client waiting until ``readyAt``
(as tests/unit/vault/helpers_vault.twap_ready does) bought too early and got ``TwapWindowShort``. The
state machine checks ``readyAt`` after every step too; this is the deterministic regression test.
"""

from __future__ import annotations

from dealvault.kit.evm import rpc

from .harness import get_env, reset


def test_twap_ready_at_is_the_observation_plus_the_window():
    env = get_env()
    reset(env)  # the root state (funded, split), whatever the state machine left
    snap = rpc(env.w3, "evm_snapshot")
    try:
        env.must(env.roles["operator"], env.enc("observe"), what="observe")
        now = env.now()
        window = env.lens.functions.params(env.vault_addr).call()[env.pm_fields.index("twapWindow")]
        assert window == 60  # tests.model.TWAP_WINDOW, from the constructor
        for stable in (env.m.cusdt, env.m.cusdc):
            _spot, _twap, observed_at, ready_at, _sx, _tx = env.lens.functions.twap(env.vault_addr, stable).call()
            assert observed_at == now
            assert ready_at == observed_at + window, f"readyAt {ready_at} != observedAt {observed_at} + twapWindow {window}"
    finally:
        rpc(env.w3, "evm_revert", [snap])
