"""napari-depthpolyp: DepthPolyp polyp segmentation for colonoscopy frames and videos."""

__version__ = "0.1.0"
