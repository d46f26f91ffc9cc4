"""Shared core of every stage: the strict config base, the build recipe, the taxonomy, the
Jinja environment, the stage base, file helpers, the seeded ranking and the answer-letter
parser.
"""
