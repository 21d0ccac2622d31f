"""A tiny self-drawn training plot (no matplotlib): loss (left scale, per batch faint, per epoch
bold) and validation Dice (right scale, 0–1) against epochs."""

from __future__ import annotations

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

LOSS, DICE, GRID = QColor("#ff9f43"), QColor("#48dbfb"), QColor(128, 128, 128, 90)


class TrainingPlot(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setMinimumHeight(140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.clear()

    def clear(self) -> None:
        self.batches: list[tuple[float, float]] = []  # (epoch position, loss)
        self.epochs: list[tuple[int, float, float | None]] = []  # (epoch, mean loss, val Dice)
        self.total_epochs = 1
        self.update()

    def add_batch(self, epoch: int, batch: int, batches: int, loss: float) -> None:
        self.batches.append((epoch + batch / max(batches, 1), float(loss)))
        self.update()

    def add_epoch(self, epoch: int, loss: float, dice: float | None) -> None:
        self.epochs.append((int(epoch), float(loss), None if dice is None else float(dice)))
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        box = QRectF(self.rect()).adjusted(34, 8, -34, -22)
        p.setPen(QPen(GRID, 1))
        p.drawRect(box)
        losses = [v for _, v in self.batches] + [v for _, v, _ in self.epochs]
        top = max(losses) * 1.05 if losses else 1.0
        span = max(self.total_epochs, max((e for e, _, _ in self.epochs), default=1), 1)

        def at(x: float, y: float, scale: float) -> QPointF:
            return QPointF(box.left() + box.width() * x / span, box.bottom() - box.height() * y / scale)

        self._line(p, [at(x, y, top) for x, y in self.batches], QColor(LOSS.red(), LOSS.green(), LOSS.blue(), 90), 1)
        self._line(p, [at(e, v, top) for e, v, _ in self.epochs], LOSS, 2, dots=True)
        self._line(p, [at(e, d, 1.0) for e, _, d in self.epochs if d is not None], DICE, 2, dots=True)
        p.setPen(LOSS)
        p.drawText(QRectF(0, box.top() - 6, 32, 14), Qt.AlignmentFlag.AlignRight, f"{top:.2g}")
        p.drawText(QRectF(box.left(), box.bottom() + 4, 120, 16), Qt.AlignmentFlag.AlignLeft, "— loss")
        p.setPen(DICE)
        p.drawText(QRectF(box.right() + 2, box.top() - 6, 32, 14), Qt.AlignmentFlag.AlignLeft, "1.0")
        p.drawText(QRectF(box.left() + 60, box.bottom() + 4, 140, 16), Qt.AlignmentFlag.AlignLeft, "— val Dice")
        p.setPen(QPen(self.palette().text().color(), 1))
        p.drawText(QRectF(box.right() - 90, box.bottom() + 4, 90, 16), Qt.AlignmentFlag.AlignRight, f"epoch {span}")
        p.end()

    @staticmethod
    def _line(p: QPainter, points: list[QPointF], colour: QColor, width: int, dots: bool = False) -> None:
        if not points:
            return
        p.setPen(QPen(colour, width))
        if len(points) > 1:
            p.drawPolyline(QPolygonF(points))
        if dots:
            p.setBrush(colour)
            for pt in points:
                p.drawEllipse(pt, 2.5, 2.5)
