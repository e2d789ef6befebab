"""Measuring the lifecycle: the stack comparison, direct step calls, bare server and load generator.

Used by `python run.py compare` and `benchmarks/`; never shipped with a model."""
