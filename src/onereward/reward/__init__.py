"""The reward model: query templates, tiny Qwen2.5-VL builder (offline), differentiable inputs, RewardModel.p_yes.

Names are imported lazily, so `onereward --help` does not pay for torch and transformers.
"""

from importlib import import_module

_EXPORTS = {
    "RewardModel": "onereward.reward.model",
    "ImageOnlyQwen2_5_VLProcessor": "onereward.reward.processor",
    "build_tiny_qwen_vl": "onereward.reward.tiny",
    "query_text": "onereward.reward.templates",
    "query_messages": "onereward.reward.templates",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'onereward.reward' has no attribute {name!r}")
