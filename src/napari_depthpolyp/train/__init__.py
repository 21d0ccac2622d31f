"""Training: losses, the frame cache, checkpoints and the one loop behind train and finetune."""

from .loop import FINETUNE_DEFAULTS, TrainConfig, Trainer, finetune_config

__all__ = ["FINETUNE_DEFAULTS", "TrainConfig", "Trainer", "finetune_config"]
