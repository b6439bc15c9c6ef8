"""Without -v, framework noise stays off the terminal: Gym's "unmaintained" notice and the DeprecationWarnings
that Gym (which resets the warning filters when imported) and tfmot raise during a dqn run; -v shows them."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# what a dqn run does: the CLI quiets the frameworks, then TF-Agents imports Gym, Gym's env.seed and tfmot warn
SCRIPT = """
import sys, warnings
from edgepipe.pipeline.cli import _quiet_frameworks
_quiet_frameworks(sys.argv[1] == "verbose")
import gym
gym.logger.deprecation("Function `env.seed(seed)` is marked as deprecated")
warnings.warn("distutils Version classes are deprecated. Use packaging.version instead.", DeprecationWarning)
"""


def _stderr(mode: str) -> str:
    result = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_gym_and_deprecation_noise_is_hidden_without_verbose():
    assert _stderr("quiet") == ""


def test_verbose_shows_it():
    shown = _stderr("verbose")
    assert "Gym has been unmaintained" in shown
    assert "env.seed(seed)" in shown and "distutils Version classes are deprecated" in shown
