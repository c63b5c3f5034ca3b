"""The fill model: tiny FLUX.1-Fill-dev builders (offline) and the FillModel wrapper.

Names are imported lazily, so `onereward --help` does not pay for torch and diffusers.
"""

from importlib import import_module

_EXPORTS = {
    "FillModel": "onereward.models.fill",
    "PromptEmbeds": "onereward.models.fill",
    "build_tiny_flux_fill": "onereward.models.tiny",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'onereward.models' has no attribute {name!r}")
