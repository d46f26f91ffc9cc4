"""Synthetic inputs for demos, tests and benchmarks: sampled dashcam videos, tables, configs,
tiny models.
"""
