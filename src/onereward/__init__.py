"""onereward: an open implementation of OneReward (arXiv 2508.21066).

One mask-guided fill model (FLUX.1-Fill-dev layout) fine-tuned for image fill, text rendering, image extend and
object removal with multi-task reinforcement learning driven by one VLM pairwise reward model (Qwen2.5-VL).
"""

__version__ = "0.1.0"
