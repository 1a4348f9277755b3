"""Benchmarks of the hub; each module writes its results under bench/results/."""
