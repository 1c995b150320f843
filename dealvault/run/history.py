"""What the vault's logs say a deal has done: the legs completed (``LegCompleted``, by legSeq) and
the USDTz bought (``Bought``). The chain is the source of truth: the steps decide from this what
is left to do, so a re-run continues from the first leg not done.

Read once per run (one ``eth_getLogs``, both events), then kept up to date from the legs this run
confirms (their receipts' events): only this deal's operator runs its borrow and buy legs, and
the record's lock keeps a second run of the deal out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from web3 import Web3

from dealvault.run.chain import rpc_guard
from dealvault.vault import Event, Leg, VaultClient

__all__ = ["LegHistory"]


@dataclass
class LegHistory:
    """The vault's completed legs ``(legSeq, Leg)`` in order, and the USDTz bought in total."""

    legs: list[tuple[int, Leg]] = field(default_factory=list)
    bought: int = 0

    @classmethod
    def read(cls, w3: Web3, client: VaultClient, from_block: int = 0) -> LegHistory:
        events = client.contract.events
        topics = [events.LegCompleted().topic, events.Bought().topic]
        with rpc_guard("eth_getLogs"):
            logs = w3.eth.get_logs({"address": client.address, "fromBlock": from_block, "toBlock": "latest",
                                    "topics": [topics]})
        h = cls()
        for log in logs:
            topic0 = "0x" + bytes(log["topics"][0]).hex()
            if topic0 == _hex(topics[0]):
                args: Any = events.LegCompleted().process_log(log)["args"]
                h.legs.append((int(args["legSeq"]), Leg(int(args["leg"]))))
            else:
                h.bought += int(events.Bought().process_log(log)["args"]["amountOut"])
        h.legs.sort()
        return h

    def add(self, events: list[Event]) -> None:
        """A leg this run confirmed (its vault events)."""
        for e in events:
            if e.name == "LegCompleted":
                self.legs.append((int(e.args["legSeq"]), Leg(int(e.args["leg"]))))
            elif e.name == "Bought":
                self.bought += int(e.args["amountOut"])
        self.legs.sort()

    def done(self, leg: Leg) -> int:
        """How many times ``leg`` completed."""
        return sum(1 for _s, kind in self.legs if kind == leg)

    def any_but(self, leg: Leg) -> bool:
        """Whether any leg other than ``leg`` completed."""
        return any(kind != leg for _s, kind in self.legs)


def _hex(topic: Any) -> str:
    return topic if isinstance(topic, str) else "0x" + bytes(topic).hex()
