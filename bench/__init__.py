"""Benchmarks run by hand, each against a baseline measured in the same run."""
