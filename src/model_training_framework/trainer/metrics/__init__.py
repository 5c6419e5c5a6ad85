"""Metrics: running means, cross-loader aggregation, profiling, progress and early stopping."""
