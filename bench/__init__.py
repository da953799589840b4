"""Benchmarks (run as scripts: ``python bench/fisher.py``, ``python bench/oneshot.py``)."""
