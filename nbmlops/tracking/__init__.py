"""Experiment tracking: runs, experiments, search, autolog."""
