"""Former home of the build recipe, kept for the modules that still import the chunk
settings from here (builders/clips/, benchmarks/bench_chunk.py and their tests).

The recipe itself is builders/recipe.py (it composes the stages' sections, so it cannot
be in `core`, which imports no stage package); the sections shared by every stage are
builders/core/sections.py. Import from those.
"""

from vlm_autodrive.builders.core.sections import ChunkConfig, check_x264_preset, worker_count

__all__ = ["ChunkConfig", "check_x264_preset", "worker_count"]
