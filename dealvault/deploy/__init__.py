"""Deploy one DealVault per deal, verify it, and record what was deployed.

A deal's vault is one address with two bytecodes: the core (``DealVault``, the legs) and its
extension (``DealVaultExtension``, every other function, run by DELEGATECALL), which the core's
constructor creates: one creation transaction. Its views live in the lens (``DealVaultLens``,
stateless, one per chain): the pipeline deploys one unless the network config names one
(``venues.lens``), whose code it then checks against the build.

Where each part lives:

- ``build``: the standard-JSON input from the sources, compiled by the solc bridge, checked
  against ape's build (:class:`Build`, :func:`build_contract`, :func:`companion_builds`);
- ``params``: the deal's parameters (:class:`DealParams` from its spec) and the constructor's
  ``Config`` encoding;
- ``preflight``: every check before anything is sent (:func:`preflight` -> :class:`Plan`);
- ``opcodes``: post-paris opcodes in a build, probed on the target chain;
- ``verify``: the three runtime codes (immutables masked) and the parameters read back
  (:func:`verify_deployment`, :func:`reverify`);
- ``records``: ``deployments/<network>/<deal-id>.json`` (path, load, write, history);
- ``pipeline``: :func:`deploy_vault` (preflight, deploy, verify, record; idempotent) and
  :func:`dry_run` (the same on a throw-away fork);
- ``commands``: what ``ape run deploy`` / ``ape run verify_deployment`` do (exit codes included);
- ``signers``: who sends (:class:`AnvilSigner`, :class:`ApeSigner`);
- ``errors``: :class:`DeployError` and its kinds, each naming its item.

The same functions serve the scripts, the orchestrator (``make demo``) and the fork tests; the
record format is in deployments/README.md.
"""

from __future__ import annotations

from dealvault.accounts import ape_account
from dealvault.deploy import opcodes
from dealvault.deploy.build import (
    CACHE_DIR,
    CONTRACT,
    EXTENSION,
    FAMILY,
    FAMILY_ROOTS,
    LENS,
    SOLC_BRIDGE,
    Build,
    build_contract,
    build_family,
    companion_builds,
    compiler_settings,
    run_solc,
    standard_json_input,
)
from dealvault.deploy.commands import deploy_command, run_deploy, run_verify, verify_command
from dealvault.deploy.errors import (
    BuildError,
    DeployError,
    DeploymentRecordError,
    PreflightError,
    Problem,
    VerificationError,
)
from dealvault.deploy.params import DealParams, constructor_config, deal_params, decode_constructor, encode_constructor
from dealvault.deploy.pipeline import DeployResult, deploy_vault, dry_run
from dealvault.deploy.preflight import Identity, Plan, check_identity, preflight
from dealvault.deploy.records import RECORD_FORMAT, load_record, record_path
from dealvault.deploy.signers import AnvilSigner, ApeSigner, Signer
from dealvault.deploy.verify import ReadBack, VerifyReport, read_params, reverify, verify_deployment
from dealvault.spec.netconfig import DEPLOYMENTS_DIR

__all__ = [
    "CACHE_DIR", "CONTRACT", "DEPLOYMENTS_DIR", "EXTENSION", "FAMILY", "FAMILY_ROOTS", "LENS", "RECORD_FORMAT", "SOLC_BRIDGE",
    "AnvilSigner", "ApeSigner", "Build", "BuildError", "DealParams", "DeployError", "DeployResult", "DeploymentRecordError",
    "Identity", "Plan", "PreflightError", "Problem", "ReadBack", "Signer", "VerificationError", "VerifyReport",
    "ape_account", "build_contract", "build_family", "check_identity", "companion_builds", "compiler_settings",
    "constructor_config", "deal_params", "decode_constructor", "deploy_command",
    "deploy_vault", "dry_run", "encode_constructor", "load_record", "opcodes", "preflight", "read_params",
    "record_path", "reverify", "run_deploy", "run_solc", "run_verify", "standard_json_input", "verify_command",
    "verify_deployment",
]
