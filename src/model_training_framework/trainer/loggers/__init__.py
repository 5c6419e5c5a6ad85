"""Logging backends: JSONL (always on), console, TensorBoard, Weights & Biases, composite.

Importing this package never imports tensorboard, wandb or matplotlib; each backend imports its
optional package when it is constructed.
"""

from .base import BaseLogger, Logger, NullLogger
from .composite import CompositeLogger
from .console import ConsoleLogger
from .factory import build_logger
from .jsonl import METRICS_FILENAME, JsonlLogger
from .tensorboard import TensorBoardLogger
from .wandb import WandbLogger

__all__ = [
    "METRICS_FILENAME",
    "BaseLogger",
    "CompositeLogger",
    "ConsoleLogger",
    "JsonlLogger",
    "Logger",
    "NullLogger",
    "TensorBoardLogger",
    "WandbLogger",
    "build_logger",
]
