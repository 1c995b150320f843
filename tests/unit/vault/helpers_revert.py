"""Expected reverts ape cannot decode by itself.

``deploy_reverts``: ape cannot decode a constructor's custom error (there is no contract address
yet): it raises a ContractLogicError carrying the raw revert data, and
``ape.reverts(project.DealVault.X, ...)`` around a deployment passes whatever the data says. The
expected bytes (selector + ABI-encoded arguments) are built from the ABI and compared exactly.
"""

from __future__ import annotations

from typing import Any


def deploy_reverts(project: Any, deployer: Any, cfg: Any, error: str, **args: Any) -> None:
    """``project.DealVault.deploy(cfg)`` reverts with exactly the custom error ``error(**args)``."""
    from ape.exceptions import ContractLogicError
    from eth_abi import encode
    from eth_utils import keccak

    from dealvault.artifacts import own

    abi = next(a for a in own("DealVault").abi if a.get("type") == "error" and a["name"] == error)
    types = [i["type"] for i in abi["inputs"]]
    assert sorted(args) == sorted(i["name"] for i in abi["inputs"]), (error, args)
    want = keccak(text=f"{error}({','.join(types)})")[:4] + encode(types, [args[i["name"]] for i in abi["inputs"]])
    try:
        project.DealVault.deploy(cfg, sender=deployer)
    except ContractLogicError as e:
        data = getattr(e, "revert_message", None) or ""
        assert isinstance(data, str) and data.startswith("0x"), (error, repr(e))
        assert bytes.fromhex(data[2:]) == want, (error, args, data)
    else:
        raise AssertionError(f"the constructor did not revert (expected {error}{args})")
