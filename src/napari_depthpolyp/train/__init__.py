"""Training: losses, the frame cache, checkpoints and the one loop behind train and finetune."""

from .loop import Trainer, TrainConfig

__all__ = ["Trainer", "TrainConfig"]
