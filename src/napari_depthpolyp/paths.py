"""Per-user directories (platformdirs), overridable by environment for tests and CI."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "napari-depthpolyp"


def user_dir() -> Path:
    """Where user models and settings live (``DEPTHPOLYP_USER_DIR`` overrides)."""
    return Path(os.environ.get("DEPTHPOLYP_USER_DIR") or platformdirs.user_data_dir(APP))


def cache_dir() -> Path:
    """Where frame caches and training checkpoints live, outside any work tree."""
    return Path(os.environ.get("DEPTHPOLYP_CACHE_DIR") or platformdirs.user_cache_dir(APP))
