"""The near-duplicate threshold measured on synthetic videos.

In: a folder of videos (the synthetic sample of `autodrive sample`). Out: a
`Calibration`: every pair of different videos' perceptual distance (none at or below
the threshold may match: the false-positive rate) and each video's distance to a copy
re-encoded at another size, quality and keyframe interval (every one must match: the
true-positive rate). The threshold is then read between the two distributions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from vlm_autodrive.builders.audit.phash import (
    DEFAULT_THRESHOLD,
    distance,
    hash_video,
    pair_distances,
)


@dataclass
class Calibration:
    """The threshold's error rates on `videos` videos: `false_positive_rate` over the
    `different_pairs` pairs of different videos, `true_positive_rate` over the
    re-encoded copies; the closest different pair and the farthest copy."""

    videos: int
    threshold: float
    different_pairs: int
    false_positives: int
    false_positive_rate: float
    min_different_distance: float
    copies: int
    copies_found: int
    true_positive_rate: float
    max_copy_distance: float
    copy_settings: str

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        return (
            f"threshold {self.threshold:.2f} on {self.videos} synthetic videos: false positives "
            f"{self.false_positives}/{self.different_pairs} pairs of different videos "
            f"(closest {self.min_different_distance:.3f}); copies found "
            f"{self.copies_found}/{self.copies} ({self.copy_settings}; farthest "
            f"{self.max_copy_distance:.3f})"
        )


def reencode_copy(
    src: Path, dst: Path, width: int, height: int, crf: int = 30, gop: int = 48
) -> Path:
    """Write `src` re-encoded to `dst` at `width` x `height` (H.264, another quality and
    keyframe interval): what a merged dataset's copy of a video looks like."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        ins = inp.streams.video[0]
        rate = Fraction(ins.average_rate or 30).limit_denominator(1001)
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"crf": str(crf), "preset": "veryfast", "g": str(gop)}
        for i, frame in enumerate(inp.decode(ins)):
            rgb = frame.to_ndarray(width=width, height=height, format="rgb24")
            small = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            small.pts = i
            out.mux(stream.encode(small))
        out.mux(stream.encode(None))
    return dst


def calibrate(
    videos: list[Path], work: Path, threshold: float = DEFAULT_THRESHOLD, scale: float = 0.5
) -> Calibration:
    """Measure `threshold` on `videos` (see the module); copies are written to `work`
    at `scale` times each video's size (even dimensions), CRF 30, keyframes every 48."""
    import av

    work.mkdir(parents=True, exist_ok=True)
    hashes = [hash_video(p, p.stem) for p in videos]
    bad = [h for h in hashes if h.error]
    if bad:
        raise ValueError(f"{bad[0].path}: cannot be hashed: {bad[0].error}")
    copy_distances = []
    settings = ""
    for p, h in zip(videos, hashes, strict=True):
        with av.open(str(p)) as c:
            s = c.streams.video[0]
            w, hgt = (
                max(16, int(s.width * scale) // 2 * 2),
                max(16, int(s.height * scale) // 2 * 2),
            )
            settings = f"re-encoded at {w}x{hgt} from {s.width}x{s.height}, CRF 30, GOP 48"
        copy = reencode_copy(p, work / f"{p.stem}.copy.mp4", w, hgt)
        copy_distances.append(distance(h, hash_video(copy, p.stem)))
    different = pair_distances(hashes)
    fp = int((different <= threshold).sum())
    found = sum(d <= threshold for d in copy_distances)
    return Calibration(
        videos=len(videos),
        threshold=threshold,
        different_pairs=len(different),
        false_positives=fp,
        false_positive_rate=fp / len(different) if len(different) else 0.0,
        min_different_distance=float(different.min()) if len(different) else 1.0,
        copies=len(copy_distances),
        copies_found=found,
        true_positive_rate=found / len(copy_distances) if copy_distances else 0.0,
        max_copy_distance=max(copy_distances, default=0.0),
        copy_settings=settings,
    )
