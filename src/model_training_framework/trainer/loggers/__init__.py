"""Logging backends: JSONL (always on), console, TensorBoard, Weights & Biases, composite.

Importing this package never imports tensorboard, wandb or matplotlib; each backend imports its
optional package when it is constructed.
"""

from model_training_framework.trainer.loggers.base import BaseLogger, Logger, NullLogger
from model_training_framework.trainer.loggers.composite import CompositeLogger
from model_training_framework.trainer.loggers.console import ConsoleLogger
from model_training_framework.trainer.loggers.factory import build_logger
from model_training_framework.trainer.loggers.jsonl import METRICS_FILENAME, JsonlLogger
from model_training_framework.trainer.loggers.tensorboard import TensorBoardLogger
from model_training_framework.trainer.loggers.wandb import WandbLogger

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
