"""Faults injected into Ray's worker processes, for the Ray engine's failure tests.

`install` is a Ray `worker_process_setup_hook`: every worker runs it at start, so the
chunk tasks there call `chunk_video` through `faulty`. The faults are read at call time
from the folder `AUTODRIVE_RAY_FAULTS` names (a file per video id):

- `VIDEO.raise`: the task raises a RuntimeError every time (a bug, or a video that
  breaks the code): after Ray's retries the video must become a reject with the reason;
- `VIDEO.die-once`: the worker process dies (os._exit) the first time it cuts that video,
  as a killed or preempted node would; the file is renamed so the retry succeeds.
"""

from __future__ import annotations

import os
from pathlib import Path

VAR = "AUTODRIVE_RAY_FAULTS"


def install() -> None:
    from vlm_autodrive.builders.clips import stage

    real = stage.chunk_video

    def faulty(video, *args, **kwargs):
        folder = Path(os.environ.get(VAR, "/nonexistent"))
        if (folder / f"{video.video_id}.raise").exists():
            raise RuntimeError(f"scripted failure cutting {video.video_id}")
        once = folder / f"{video.video_id}.die-once"
        if once.exists():
            once.rename(folder / f"{video.video_id}.died")
            os._exit(1)
        return real(video, *args, **kwargs)

    stage.chunk_video = faulty
