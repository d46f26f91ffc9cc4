"""Synthetic dashcam sample: labelled H.264 videos plus a manifest, for tests, demos, benchmarks.

`generate_sample(out_dir, videos, seed)` writes `out_dir/videos/<video_id>.mp4` and
`out_dir/manifest.jsonl` (one `ManifestEntry` per line, `source: "synthetic"`). Every video is
drawn with numpy from a seeded plan (`plan_sample`), so the same arguments give byte-identical
files. The drawing follows the plan's labels and metadata: a Collision actor grows until it
covers the bottom centre of the frame at `event_time` (flash and shake), a Near-Collision actor
comes close and veers away while the ego brakes or swerves, night frames are dark, rain, snow
and fog show.

Over 400 lines on purpose: the plan (labels, metadata, actor paths) is one seeded
walk; split across modules its random draws would be easy to reorder by accident.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from vlm_autodrive.builders.clips.cutting import x264_deterministic_params
from vlm_autodrive.builders.core.taxonomy import Taxonomy, load_taxonomy
from vlm_autodrive.builders.ingest.records import Actor, ManifestEntry, VideoMetadata
from vlm_autodrive.builders.synthetic.cause import synthetic_cause
from vlm_autodrive.builders.synthetic.limits import check_sample_settings
from vlm_autodrive.builders.synthetic.scene import Scene

# Part of every video's stamp: bump it when planning or drawing changes, so that a re-run
# redraws videos made by an older generator instead of skipping them.
GENERATOR = "autodrive-synthetic-1"
COLLISION, NEAR_COLLISION = "Collision", "Near-Collision"
VEHICLES = ("car", "truck", "bus", "motorcycle")
X264_OPTIONS = {"preset": "veryfast", "crf": "23"}


@dataclasses.dataclass
class Track:
    """One drawn road user: its type, colour and a keyframed path.

    `xs` is metres right of the ego camera, `zs` metres ahead of it, both at `times`
    (seconds, increasing; linear in between, held outside). With `world` true the
    actor stands still on the road and `zs` are distances along it, so it comes closer
    as the ego drives.
    """

    type: str
    color: tuple[int, int, int]
    times: list[float]
    xs: list[float]
    zs: list[float]
    world: bool = False


@dataclasses.dataclass
class SamplePlan:
    """Everything one synthetic video is drawn from: its manifest entry and the motion.

    `speed_*` keyframe the ego speed in m/s, `yaw_*` a sideways image shift (share of the
    frame width, positive moves the scene right: the ego swerves left), `impact` is the
    contact time of a Collision (flash and shake), `draw_seed` seeds rain and snow.
    """

    entry: ManifestEntry
    duration: float
    fps: float
    tracks: list[Track]
    speed_times: list[float]
    speed_values: list[float]
    yaw_times: list[float]
    yaw_values: list[float]
    impact: float | None
    draw_seed: tuple[int, int]


def _pick(rng: np.random.Generator, values: list[str], weights: dict[str, float]) -> str:
    """One of `values` (a taxonomy vocab list), known ones by weight, unknown ones rarely."""
    w = np.array([weights.get(v, 0.0) for v in values], dtype=float)
    if w.sum() == 0:
        w = np.ones(len(values))
    return str(values[int(rng.choice(len(values), p=w / w.sum()))])


def _keys(points: list[tuple[float, float]], duration: float) -> tuple[list[float], list[float]]:
    """Keyframes clamped into [0, duration] with strictly increasing times (np.interp needs it)."""
    out: list[tuple[float, float]] = []
    for t, v in sorted(points, key=lambda p: p[0]):
        t = min(max(t, 0.0), duration)
        if out and t <= out[-1][0] + 1e-6:
            out[-1] = (out[-1][0], v)
        else:
            out.append((t, v))
    return [p[0] for p in out], [p[1] for p in out]


def assign_labels(videos: int, seed: int, taxonomy: Taxonomy) -> list[str]:
    """Labels of `videos` videos: a seeded shuffle of Collision, Near-Collision, Normal repeated.

    Every class appears once `videos >= 3`; the mix stays even however many are asked for.
    """
    names = taxonomy.names
    for need in (COLLISION, NEAR_COLLISION):
        if need not in names:
            raise ValueError(
                f"the taxonomy has no {need!r} class; the sample draws only the base 3"
            )
    cycle = [COLLISION, NEAR_COLLISION, taxonomy.normal]
    labels = [cycle[i % 3] for i in range(videos)]
    np.random.default_rng([seed, 7919]).shuffle(labels)
    return labels


def _color(rng: np.random.Generator, kind: str) -> tuple[int, int, int]:
    """A plausible paint (vehicles) or clothing (people) colour."""
    paints = [(200, 30, 30), (230, 230, 235), (40, 40, 45), (30, 70, 160), (150, 150, 155)]
    paints += [(220, 180, 40), (40, 120, 60), (120, 40, 30)]
    if kind in ("pedestrian", "bicycle"):
        paints = [(60, 60, 140), (180, 60, 40), (40, 90, 50), (200, 200, 60), (90, 60, 40)]
    base = np.array(paints[int(rng.integers(len(paints)))], dtype=float)
    return tuple(int(c) for c in np.clip(base * rng.uniform(0.85, 1.1), 0, 255))


def plan_video(
    index: int,
    video_id: str,
    label: str,
    seed: int,
    duration: float,
    fps: float,
    taxonomy: Taxonomy,
) -> SamplePlan:
    """The plan of video number `index` (manifest entry, motion), from the seed and index only.

    Its file is `videos/<video_id>.mp4`, relative to the manifest's folder.
    """
    rng = np.random.default_rng([seed, index, 1])
    vocab = taxonomy.vocab
    frames = round(duration * fps)

    def snap(t: float) -> float:
        return round(round(t * fps) / fps, 6)

    scene = _pick(rng, vocab["scene"], {"urban": 4, "suburban": 3, "rural": 2, "highway": 3})
    road_weights = {
        "urban": {"urban street": 5, "intersection": 3, "roundabout": 1, "parking lot": 1},
        "suburban": {"urban street": 5, "intersection": 3, "roundabout": 2},
        "rural": {"rural road": 1},
        "highway": {"highway": 1},
    }.get(scene, {"urban street": 1})
    road = _pick(rng, vocab["road"], road_weights)
    weather = _pick(
        rng, vocab["weather"], {"clear": 9, "cloudy": 4, "rain": 3, "snow": 2, "fog": 2}
    )
    light = _pick(rng, vocab["light"], {"daylight": 10, "dawn": 2, "dusk": 3, "night": 5})
    v0 = {"highway": 26.0, "rural road": 18.0, "parking lot": 4.0}.get(road, 11.0)
    v0 *= rng.uniform(0.8, 1.15)
    speed = [(0.0, v0), (duration, v0 * rng.uniform(0.9, 1.1))]
    yaw: list[tuple[float, float]] = [(0.0, 0.0), (duration, 0.0)]
    tracks: list[Track] = []
    meta = dict(weather=weather, light=light, road=road, scene=scene)
    ego = Actor(role="ego", type="car", motion="going straight")
    event: dict[str, float] = {}
    impact = None
    if label in (COLLISION, NEAR_COLLISION):
        hit = label == COLLISION
        et = snap(rng.uniform(0.35, 0.75) * duration)
        event = dict(
            event_start=snap(max(0.0, et - 1.0)),
            event_time=et,
            event_end=snap(min((frames - 1) / fps, et + 0.5)),
        )
        es = event["event_start"]
        other_weights = {"car": 10, "truck": 2, "bus": 1, "motorcycle": 2, "bicycle": 1}
        other_type = _pick(rng, vocab["actor_type"], {**other_weights, "pedestrian": 1})
        if other_type in VEHICLES:
            kind = str(rng.choice(["rear_end", "cut_in", "cut_in", "across"]))
        else:
            kind = "across"
        side = float(rng.choice([-1.0, 1.0]))  # where the actor comes from: -1 left, +1 right
        half = {"truck": 1.25, "bus": 1.3, "motorcycle": 0.4, "bicycle": 0.3}.get(other_type, 0.9)
        near_x = side * (1.35 + half)  # a near pass keeps this lateral gap from the ego axis
        if kind == "rear_end":
            z_at = 1.6 if hit else rng.uniform(5.0, 6.0)
            xs = [(0, 0.0), (et, 0.0), (et + 1.5, 0.0 if hit else near_x * 1.4)]
            zs = [(0, rng.uniform(20, 30)), (es, rng.uniform(10, 13)), (et, z_at)]
            zs.append((et + 0.3, 1.8) if hit else (et + 2.5, 12.0))
            motion, sides = "braking", ("front", "rear")
            blame_w = {"ego": 7, "shared": 2, "unclear": 1}
            evasive = {"braking": 7, "swerving left": 2, "swerving right": 2}
        elif kind == "cut_in":
            x_at = side * 0.5 * half if hit else near_x  # a hit overlaps the ego's axis
            xs = [
                (0, side * 3.5),
                (es, side * 3.5),
                (et, x_at),
                (et + 1.5, x_at if hit else side * 3.5),
            ]
            z_at = 2.0 if hit else rng.uniform(4.5, 5.5)
            zs = [(0, rng.uniform(8, 14)), (es, 6.0), (et, z_at), (et + 1.5, 2.2 if hit else 9.0)]
            motion = _pick(rng, vocab["motion"], {"changing lanes": 2, "merging": 1})
            ego_side = "left" if side < 0 else "right"
            sides = (ego_side, "right" if side < 0 else "left")
            blame_w = {"other": 7, "shared": 2, "unclear": 1}
            away = "swerving right" if side < 0 else "swerving left"
            evasive = {"braking": 1, away: 1}
        else:  # crossing the ego's path from one side to the other
            x_at = 0.0 if hit else side * 0.3
            xs = [
                (0, side * 9.0),
                (es, side * 7.0),
                (et, x_at),
                (et + 1.5, x_at if hit else -side * 8),
            ]
            z_at = 1.8 if hit else rng.uniform(6.5, 8.0)
            zs = [(0, rng.uniform(25, 35)), (es, 9.0), (et, z_at), (et + 1.5, 2.0 if hit else z_at)]
            if other_type in VEHICLES:
                motion = "turning left" if side > 0 else "turning right"
            else:
                motion = "crossing"
            # Facing across the road, a road user's right side faces the ego when it goes right.
            sides = ("front", "right" if side < 0 else "left")
            blame_w = {"other": 4, "ego": 3, "unclear": 3}
            evasive = {"braking": 8, "swerving left": 1, "swerving right": 1}
        tx, vx = _keys(xs, duration)
        tz, vz = _keys(zs, duration)
        if tx != tz:  # one time grid for both coordinates
            grid = sorted(set(tx) | set(tz))
            vx, vz, tx = list(np.interp(grid, tx, vx)), list(np.interp(grid, tz, vz)), grid
        tracks.append(Track(other_type, _color(rng, other_type), tx, vx, vz))
        if hit:
            action = _pick(rng, vocab["evasive_action"], {"none": 6, "braking": 4})
            blame = _pick(rng, vocab["blame"], blame_w)
            impact = et
        else:
            action = _pick(rng, vocab["evasive_action"], evasive)
            blame = _pick(rng, vocab["blame"], blame_w) if rng.random() < 0.7 else None
        if action == "braking":
            ego.motion = "braking"
            speed = [(0.0, v0), (et - 0.7, v0), (et + 0.8, v0 * 0.35), (et + 3.5, v0 * 0.8)]
        elif action.startswith("swerving"):
            shift = 0.06 if action == "swerving left" else -0.06
            yaw += [(et - 0.6, 0.0), (et, shift), (et + 1.4, 0.0)]
        if hit:  # contact stops the ego within half a second
            slow = v0 * 0.55 if action == "braking" else v0
            speed = [(0.0, v0), (et - 0.7, v0), (et, slow), (et + 0.4, 0.0), (duration, 0.0)]
            ego.impact_side = sides[0]
        other = Actor(role="other", type=other_type, motion=motion)
        other.impact_side = sides[1] if hit else None
        meta.update(blame=blame, evasive_action=action, actors=[ego, other])
        meta["cause"] = synthetic_cause(video_id, label, kind, other_type, blame, seed)
    else:
        if rng.random() < 0.2:
            t = rng.uniform(0.2, 0.7) * duration
            speed += [(t, v0), (t + 1.5, v0 * 0.5), (t + 4.0, v0)]
            ego.motion = "braking"
        actors = [ego]
        for _ in range(int(rng.choice(3, p=[0.25, 0.45, 0.3]))):
            kind = _pick(
                rng, vocab["actor_type"], {"car": 8, "truck": 2, "bus": 1, "motorcycle": 1}
            )
            motion = _pick(
                rng, vocab["motion"], {"going straight": 5, "changing lanes": 2, "stopped": 2}
            )
            times = [float(t) for t in np.arange(0.0, duration + 1.0, 1.0)]
            lane = float(rng.choice([-3.5, 0.0, 3.5]))
            if motion == "stopped":  # parked at the kerb; the ego passes it mid-video
                passed = rng.uniform(0.3, 0.9) * duration
                z_road = 3.0 + v0 * passed
                track = Track(kind, _color(rng, kind), [0.0], [6.8], [z_road], world=True)
            else:
                z0, amp = rng.uniform(18, 35), rng.uniform(2, 8)
                phase, period = rng.uniform(0, 6.3), rng.uniform(8, 20)
                zs = [z0 + amp * np.sin(phase + 6.28 * t / period) for t in times]
                xs = [lane] * len(times)
                if motion == "changing lanes":
                    to = 3.5 if lane < 0 else -3.5 if lane > 0 else float(rng.choice([-3.5, 3.5]))
                    start = int(rng.integers(0, max(1, len(times) - 3)))
                    xs = [lane if i <= start else to for i in range(len(times))]
                    xs[min(start + 1, len(xs) - 1)] = (lane + to) / 2
                track = Track(kind, _color(rng, kind), times, xs, [float(z) for z in zs])
            tracks.append(track)
            actors.append(Actor(role="other", type=kind, motion=motion))
        meta["actors"] = actors
    entry = ManifestEntry(
        video_id=video_id,
        path=f"videos/{video_id}.mp4",
        label=label,
        source="synthetic",
        metadata=VideoMetadata(**meta),
        **event,
    )
    st, sv = _keys(speed, duration)
    yt, yv = _keys(yaw, duration)
    return SamplePlan(entry, duration, fps, tracks, st, sv, yt, yv, impact, (seed, index))


def plan_sample(
    videos: int,
    seed: int = 0,
    duration: float = 20.0,
    fps: float = 30.0,
    taxonomy: Taxonomy | None = None,
) -> list[SamplePlan]:
    """Plans of all videos of a sample: ids `v0000`, `v0001`, ... and paths `videos/<id>.mp4`."""
    if videos < 0 or seed < 0:
        raise ValueError("videos and seed must be >= 0")
    if duration * fps < 2 or duration < 2.0:
        raise ValueError("duration must be at least 2 s (an event needs room before and after)")
    tax = taxonomy or load_taxonomy()
    digits = max(4, len(str(max(videos - 1, 0))))
    plans = []
    for i, label in enumerate(assign_labels(videos, seed, tax)):
        plans.append(plan_video(i, f"v{i:0{digits}d}", label, seed, duration, fps, tax))
    return plans


def _stamp(plan: SamplePlan, width: int, height: int, gop: int) -> str:
    """What a video was drawn from, hashed; stored in the file so a re-run can skip it."""
    key = {
        "generator": GENERATOR,
        "entry": plan.entry.model_dump(mode="json"),
        "seed": list(plan.draw_seed),
        "size": [width, height],
        "fps": plan.fps,
        "duration": plan.duration,
        "gop": gop,
    }
    blob = json.dumps(key, sort_keys=True).encode()
    return f"{GENERATOR} {hashlib.sha256(blob).hexdigest()[:32]}"


def _existing_stamp(path: Path) -> str | None:
    """The stamp a finished video carries, or None (missing, unreadable, not ours)."""
    import av

    if not path.exists():
        return None
    try:
        with av.open(str(path)) as container:
            return container.metadata.get("comment")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError):
        return None


def encode_video(plan: SamplePlan, path: Path, width: int, height: int, gop: int) -> None:
    """Draw and encode one video to `path` (atomically: a hidden temporary name, then rename).

    H.264 (libx264, yuv420p, CRF 23), constant frame rate, a keyframe exactly every `gop`
    frames and none elsewhere, no B-frames, one thread, and x264's AVX-512 code off (see
    `x264_deterministic_params`): the bytes depend on the plan only.
    """
    import av

    rate = Fraction(plan.fps).limit_denominator(1001)
    tmp = path.with_name(f".{path.name}.part")
    try:
        with av.open(str(tmp), "w", format="mp4") as container:
            container.metadata["comment"] = _stamp(plan, width, height, gop)
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.thread_count = 1
            stream.codec_context.gop_size = gop
            # scenecut=0: the collision flash must not add keyframes off the fixed grid.
            params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:threads=1"
            params = ":".join([params, *x264_deterministic_params()])
            stream.options = {**X264_OPTIONS, "x264-params": params}
            for i, rgb in enumerate(Scene(plan, width, height).frames()):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = i
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def generate_sample(
    out_dir: Path,
    videos: int,
    seed: int = 0,
    duration: float = 20.0,
    width: int = 320,
    height: int = 180,
    fps: float = 30.0,
    gop: int = 30,
    progress: bool = False,
) -> Path:
    """Write a synthetic labelled sample to `out_dir` and return the manifest's path.

    In: the folder, how many videos, the seed, seconds per video, frame size (even
    numbers, for yuv420p), frames per second, keyframe interval in frames, whether to
    show a tqdm bar. Out: `out_dir/videos/<video_id>.mp4` and `out_dir/manifest.jsonl`
    (`ManifestEntry` rows, paths relative to `out_dir`). Labels cycle through Collision,
    Near-Collision and Normal Driving in a seeded order, so 3 or more videos hold every
    class. Same arguments, same bytes; a video already written with the same arguments
    is kept as it is, so a killed run resumes.
    """
    from tqdm import tqdm

    check_sample_settings(
        videos=videos, seed=seed, duration=duration, width=width, height=height, fps=fps, gop=gop
    )
    out_dir = Path(out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    plans = plan_sample(videos, seed, duration, fps)
    for plan in tqdm(plans, desc="sample videos", unit="video", disable=not progress):
        path = out_dir / plan.entry.path
        if _existing_stamp(path) != _stamp(plan, width, height, gop):
            encode_video(plan, path, width, height, gop)
    manifest = out_dir / "manifest.jsonl"
    tmp = manifest.with_name(f".{manifest.name}.part")
    rows = [json.dumps(p.entry.model_dump(mode="json", exclude_none=True)) for p in plans]
    tmp.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, manifest)
    return manifest
