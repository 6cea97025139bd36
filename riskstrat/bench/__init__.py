"""Benchmarks: commands that measure speed, memory and quality and save their figures.

With the tests, the only code allowed to import the synthetic generator (tests/test_boundaries.py).
"""
