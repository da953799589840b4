"""The compression pipeline the worker runs: data, models, training, pruning, packaging."""
