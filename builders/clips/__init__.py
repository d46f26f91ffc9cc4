"""Clips stage (`chunk`): sliding-window planning, the labelling rule, cutting with PyAV, the
clip table.
"""
