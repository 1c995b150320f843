"""``ape run <script> ...`` inside the test process: click's CliRunner over ape's own CLI (``ape._cli.cli``),
so the script is found, its options parsed and checked, its body run and its exit code set exactly as
in a process, without the ~2.4 s of CPU a new interpreter pays for its imports (measured: a bad-input
``ape run execute_deal`` takes 2.7 s of CPU, of which the run itself is a few ms).

The tests that need a real process (a SIGKILL, a signal, an unattended keystore, the README's commands
verbatim) start one; tests/unit/test_readme_commands.py runs every script as a real process.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass

from dealvault.paths import ROOT


@dataclass(frozen=True)
class Ran:
    """What a finished ``ape run`` gave back, named as subprocess.CompletedProcess names it."""

    returncode: int
    stdout: str
    stderr: str


def ape_run(script: str, *args: str, env: Mapping[str, str | None] | None = None) -> Ran:
    """Run ``ape run <script> <args>`` in this process (cwd: the project root, as ape needs; ``env``
    set for the run only, a None value unsets). An exception the CLI lets out is what a process
    would die of: exit 1 and its traceback on stderr, so "no traceback" checks keep their meaning."""
    from ape._cli import cli
    from click.testing import CliRunner

    assert os.getcwd() == str(ROOT), "ape run resolves scripts/ from the working directory"
    result = CliRunner(mix_stderr=False).invoke(cli, ["run", script, *args], env=dict(env or {}), catch_exceptions=True)
    stderr, code = result.stderr, result.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
        code = 1
    return Ran(code, result.stdout, stderr)
