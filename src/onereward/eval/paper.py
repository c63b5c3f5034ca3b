"""The paper's own numbers (arXiv 2508.21066, as summarised in PAPER.md sections 2 and 4).

They were measured with Qwen2.5-VL-7B and Seedream 3.0 Fill on the paper's own, unreleased benchmark and human labels.
They are printed beside ours for orientation only: a toy run is a different benchmark, model and judge.
"""

from __future__ import annotations

PAPER_LABEL = "paper, on its benchmark"

# Table 1: held-out pairwise accuracy (%) of the OneReward reward model, rows = task family, columns = dimension.
PAPER_TABLE1: dict[str, dict[str, float]] = {
    "fill": {"text_alignment": 83.77, "consistency": 74.23, "structure": 74.63, "aesthetics": 72.10},
    "extend": {"text_alignment": 80.36, "consistency": 72.50, "structure": 74.29, "aesthetics": 71.10},
    "removal": {"removal_quality": 84.93},
}

# Usability rate (%) of Seedream 3.0 Fill with OneReward, per task row of onereward.tasks. The paper reports no
# separate number for text rendering, so "text" is absent.
PAPER_USABILITY: dict[str, float] = {
    "fill": 69.04,
    "extend": 64.72,
    "extend_noprompt": 87.54,
    "removal": 82.22,
}
