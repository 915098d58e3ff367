"""Comparing runs: regression checks and statistics, baselines, machine calibration, pytest-benchmark export."""
