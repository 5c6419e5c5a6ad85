"""The package version, in one place (the checkpoint metadata and ``mtf --version`` read it)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
