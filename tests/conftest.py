"""Shared tiny fixtures. Everything is built offline from code; nothing touches a model hub."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# --- toyworld fixtures ---
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def toy_conditions():
    """8 toy-world conditions per task at 64 px from the "eval" split (seed 0): {task: [Condition, ...]}. Read-only."""
    from onereward.tasks import TASK_NAMES
    from onereward.toyworld import make_conditions

    return {task: make_conditions(task, 8, seed=0, size=64, split="eval") for task in TASK_NAMES}


# --- fill model fixtures ---
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_fill_dir(tmp_path_factory):
    """A tiny FLUX.1-Fill-dev pipeline ("test" preset: the real layout, random init) saved in the real layout."""
    from onereward.models.tiny import build_tiny_flux_fill

    return build_tiny_flux_fill(tmp_path_factory.mktemp("tiny_fill") / "flux-fill", preset="test", seed=0)


@pytest.fixture(scope="session")
def tiny_fill(tiny_fill_dir):
    """The tiny fill model loaded by path, as the RL trainer gets it. Read-only: load your own copy to train it."""
    from onereward.models.fill import FillModel

    return FillModel.from_pretrained(tiny_fill_dir)


# --- reward model fixtures ---
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_rm_dir(tmp_path_factory):
    """A tiny Qwen2.5-VL reward model ("test" preset, random init) saved in the 7B folder layout."""
    from onereward.reward.tiny import build_tiny_qwen_vl

    return build_tiny_qwen_vl(tmp_path_factory.mktemp("tiny_rm"), preset="test", seed=0)


@pytest.fixture(scope="session")
def tiny_rm(tiny_rm_dir):
    """The tiny reward model loaded by path, frozen: what the RL trainer gets. Do not mutate it in a test."""
    from onereward.reward.model import RewardModel

    return RewardModel.from_pretrained(tiny_rm_dir)


# --- rl fixtures ---
