"""Training data: the loader schedule, sampling orders, loader streams, dataset fingerprints and device placement."""
