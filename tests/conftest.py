"""Shared tiny fixtures. Everything is built offline from code; nothing touches a model hub."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# --- toyworld fixtures ---

# --- fill model fixtures ---

# --- reward model fixtures ---

# --- rl fixtures ---
