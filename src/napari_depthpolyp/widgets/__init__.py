"""The napari widgets (Qt lives only here): one small file per panel over the headless core.

    _segment.py   Segment   propose masks and depth (worker, per-batch results, cancel)
    _review.py    Review    statuses, uncertainty-ranked table, navigation, keys
    _export.py    Export    reviewed frames -> dataset folder (DatasetWriter)
    _finetune.py  Fine-tune train on exports, live plot, base-vs-new Dice, "use this model"
    _context.py   per-viewer shared state: review controllers (session + layers + autosave)
    _layers.py    layers created once and updated in place; frame helpers
    _keys.py      every keyboard shortcut
    _plot.py      the self-drawn training plot
"""

from ._export import ExportWidget
from ._finetune import FinetuneWidget
from ._review import ReviewWidget
from ._segment import SegmentWidget

__all__ = ["ExportWidget", "FinetuneWidget", "ReviewWidget", "SegmentWidget"]
