"""The DepthPolyp network (torch only: no Qt, no napari)."""

from .network import INPUT_SIZE, DepthPolyp, ProbabilityWrapper, count_macs, count_parameters

__all__ = ["INPUT_SIZE", "DepthPolyp", "ProbabilityWrapper", "count_macs", "count_parameters"]
