"""Benchmarks run by ``make bench``: each contender side by side in one run, as ratios."""
