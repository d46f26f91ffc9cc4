"""Chunking on Ray Data (`engine: ray`): one task per video, the same cutting code.

In: the jobs `run_chunk` would give the local pool (a video, the chunk settings, the
Normal class, the build folder, x264's thread count) and the `RaySettings`. Out: one
`VideoOutcome` per job, yielded as its task finishes, so the driver writes that video's
completion marker (`chunk/parts/VIDEO.json`) at once and a killed job resumes as the
local engine does.

The ingested videos become a Ray dataset with one video per block; each task runs
`chunk_video` (the very function of the local pool) and writes the clips straight into
the build folder, which must be a path every node sees (NFS or the like). The driver
gets back only the part record and writes the clip table from the parts. Ray re-runs a
task that raised or whose worker died, `max_retries` times; a video whose task still
fails is a reject with its reason (the last exception, which the task leaves in
`chunk/ray_errors/VIDEO.json`, or "the worker died" when it could not), never a lost
video. An error of the machine (an OSError such as a full disk) after the retries stops
the run instead, as it does on the local engine.
"""

from __future__ import annotations

import json
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from vlm_autodrive.builders.core.files import read_json, write_json
from vlm_autodrive.builders.core.ray_cluster import RaySettings, connect
from vlm_autodrive.builders.ingest.records import VideoRecord

ERRORS = Path("chunk") / "ray_errors"


def run_on_ray(jobs: list[tuple], settings: RaySettings, workers: int, build_dir: Path) -> Iterator:
    """Cut every job's video in a Ray task; yield each `VideoOutcome` as it returns.

    `workers` caps the tasks running at once (0: as many as the cluster's CPUs allow,
    `settings.num_cpus` each).
    """
    from vlm_autodrive.builders.clips.stage import VideoOutcome

    if not jobs:
        return
    connect(settings)
    import ray.data

    errors = build_dir / ERRORS
    errors.mkdir(parents=True, exist_ok=True)
    for video, *_ in jobs:  # notes of an earlier run's failures are stale now
        (errors / f"{video.video_id}.json").unlink(missing_ok=True)
    _, config, normal, root = jobs[0]
    items = [{"video_id": v.video_id, "video": v.model_dump_json()} for v, *_ in jobs]
    ctx = ray.data.DataContext.get_current()
    # A block that still fails after Ray's retries is dropped instead of failing the job;
    # with one video per block the driver knows which video it was and rejects it.
    ctx.max_errored_blocks = -1
    ctx.enable_progress_bars = False
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    with warnings.catch_warnings():
        # Ray 2.60 takes a task's retries only as "remote args", which it already marks
        # deprecated (removed in 2.64): the extra pins 2.60.
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ds.map(
            _CutOne(config, normal, root, str(errors)),
            num_cpus=settings.num_cpus,
            memory=settings.memory,
            concurrency=workers or None,
            max_retries=settings.max_retries,  # re-runs of a task that raised or died
            retry_exceptions=True,
        )
    done: set[str] = set()
    for row in ds.iter_rows():
        done.add(row["video_id"])
        yield VideoOutcome(**_outcome_fields(json.loads(row["outcome"])))
    machine_errors = []
    for video, *_ in jobs:
        if video.video_id in done:
            continue
        reason, os_error = _failure_reason(errors / f"{video.video_id}.json", settings)
        if os_error:
            machine_errors.append(f"{video.video_id}: {reason}")
            continue
        yield VideoOutcome(video.video_id, has_event=video.has_event, reject=reason)
    if machine_errors:
        raise OSError(
            "chunking on Ray stopped by an error of the machine (the other videos are done; "
            "run the same command to resume): " + "; ".join(machine_errors[:5])
        )


class _CutOne:
    """The task body: one dataset row (a video) -> its part record, as JSON text.

    A plain callable object, so Ray runs it as a task (not an actor) and pickles only
    the chunk settings with it.
    """

    def __init__(self, config, normal: str, build_dir: str, errors: str):
        self.config, self.normal, self.build_dir = config, normal, build_dir
        self.errors = errors

    def __call__(self, row: dict) -> dict:
        from vlm_autodrive.builders.clips.stage import chunk_video

        video = VideoRecord.model_validate_json(row["video"])
        try:
            outcome = chunk_video(video, self.config, self.normal, self.build_dir)
        except Exception as e:
            # Ray keeps the exception in its logs only: leave the reason where the driver
            # reads it if this was the last try, then let Ray retry.
            write_json(
                Path(self.errors) / f"{video.video_id}.json",
                {
                    "error": f"{type(e).__name__}: {e}",
                    "os_error": isinstance(e, OSError),
                    "traceback": traceback.format_exc(limit=5),
                },
            )
            raise
        (Path(self.errors) / f"{video.video_id}.json").unlink(missing_ok=True)
        return {"video_id": video.video_id, "outcome": json.dumps(asdict(outcome))}


def _outcome_fields(record: dict) -> dict:
    from vlm_autodrive.builders.clips.records import ClipRecord

    record["clips"] = [ClipRecord(**c) for c in record["clips"]]
    return record


def _failure_reason(note: Path, settings: RaySettings) -> tuple[str, bool]:
    tries = settings.max_retries + 1
    if note.exists():
        info = read_json(note)
        return f"the Ray task failed on all {tries} tries: {info['error']}", info["os_error"]
    return (
        f"the Ray task failed on all {tries} tries: its worker died (killed, or out of "
        "memory: raise ray.memory); see the Ray logs",
        False,
    )
