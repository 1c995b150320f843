"""What the deploy pipeline raises: every error names the item it concerns (a config key such as
``venues.desk``, ``network.genesis_hash``, ``record``, ``constructor``) and carries the exit code
of the scripts' table (:class:`dealvault.errors.ExitCode`): a verification mismatch exits 1,
everything else here (bad input, a refused preflight, a record that disagrees) exits 2."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dealvault.errors import DealVaultError, ExitCode

__all__ = ["BuildError", "DeployError", "DeploymentRecordError", "PreflightError", "Problem", "VerificationError"]


class DeployError(DealVaultError, RuntimeError):
    """A deployment step refused; ``item`` names what it concerns (a config key, a record...)."""

    exit_code = ExitCode.INPUT

    def __init__(self, message: str, item: str = "") -> None:
        self.item = item
        self.message = message
        super().__init__(f"{item}: {message}" if item else message)


@dataclass(frozen=True)
class Problem:
    """One failed check: the item it concerns and what is wrong."""

    item: str
    message: str

    def __str__(self) -> str:
        return f"{self.item}: {self.message}"


def _listed(problems: Sequence[Problem]) -> str:
    return "\n".join(f"  - {p}" for p in problems)


class PreflightError(DeployError):
    """One or more preflight checks failed; nothing was sent. ``problems`` lists them all."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("preflight failed", self.problems[0].item if self.problems else "")

    def __str__(self) -> str:  # keep the list readable (no "item: " prefix on the whole block)
        return f"preflight failed, nothing was sent ({len(self.problems)} problem(s)):\n{_listed(self.problems)}"

    def items(self) -> list[str]:
        return [p.item for p in self.problems]


class DeploymentRecordError(DeployError):
    """A deployment record is missing or bad, or disagrees with the chain or the current build/config."""


class VerificationError(DeployError):
    """The code or parameters at the deployed address are not what the record/build says."""

    exit_code = ExitCode.FAILED

    def __init__(self, problems: Sequence[Problem], address: str = "") -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems), "")
        self.address = address

    def __str__(self) -> str:
        return f"verification of {self.address or 'the deployment'} failed:\n{_listed(self.problems)}"


class BuildError(DeployError):
    """The contract could not be built reproducibly."""
