"""Shared fixtures. Tests that need the real data sets skip with a reason when ../shared/data is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DEPTHPOLYP_SHARED_DATA", ROOT.parent / "shared" / "data"))


def _require(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.is_dir():
        pytest.skip(
            f"real data not found at {path}: clone the project beside ../shared/data "
            "(or set DEPTHPOLYP_SHARED_DATA) to run this test"
        )
    return path


@pytest.fixture(scope="session")
def kvasir_dir() -> Path:
    return _require("kvasir-seg")


@pytest.fixture(scope="session")
def cvc_dir() -> Path:
    return _require("cvc-clinicdb")


@pytest.fixture(scope="session")
def polypgen_negative_dir() -> Path:
    return _require("polypgen-negative")


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Keep the per-user model registry and caches of every test out of the real home."""
    base = tmp_path_factory.getbasetemp() / "user"
    monkeypatch.setenv("DEPTHPOLYP_USER_DIR", str(base / "data"))
    monkeypatch.setenv("DEPTHPOLYP_CACHE_DIR", str(base / "cache"))


@pytest.fixture(scope="session")
def plugin_model(tmp_path_factory):
    """The model the napari plugin tests segment with: the bundled default when one is installed,
    otherwise a test-only model (untrained DepthPolyp weights, fixed seed) written into the isolated
    user registry that ``_isolated_user_dirs`` points at. Tests using it check plumbing (layers,
    statuses, autosave, export, training), never segmentation quality."""
    from napari_depthpolyp.models import ModelCard, NoModelError, resolve_model, write_model

    try:
        return resolve_model()
    except NoModelError:
        pass
    import torch

    from napari_depthpolyp.model import DepthPolyp

    torch.manual_seed(0)
    target = tmp_path_factory.getbasetemp() / "user" / "data" / "models" / "test-model-0"
    if (target / "card.json").is_file():
        return resolve_model(target)
    card = ModelCard(name="test-model", version="0", description="untrained weights, for plugin tests only")
    return write_model(target, DepthPolyp().state_dict(), card)


@pytest.fixture(scope="session")
def format_model(tmp_path_factory):
    """An *untrained* network written as a model directory, for plumbing tests only (shapes, files,
    errors, parity). Nothing about segmentation quality may be asserted with it."""
    import torch

    from napari_depthpolyp.model import DepthPolyp
    from napari_depthpolyp.models import ModelCard, write_model

    torch.manual_seed(0)
    card = ModelCard(name="untrained-plumbing", version="0", default_threshold=0.5,
                     description="untrained: for tests of the plumbing only")
    return write_model(tmp_path_factory.mktemp("models") / "untrained-plumbing-0", DepthPolyp().state_dict(), card)
