"""Cutting clips out of one source video with PyAV, in one pass over the source.

- `cut_reencode` (`reencode.py`): decodes the source once and feeds each frame to every
  window that holds it (overlapping windows share the decode), encoding H.264 frame
  exactly.
- `cut_copy`: stream copy, no decoding. A clip starts at the keyframe at or before its
  planned start (earlier frames cannot be decoded without it) and ends after the last
  frame before the planned end; the actual times are returned. `index_copy` reads the
  packet index first, so the stage knows each window's copy times (`CopyIndex.span`)
  before cutting: how far a keyframe stretches it.

A decode or demux error of the source is a `CutError` (the video is rejected); an error
of the machine (disk full, permissions: an OSError) propagates and fails the run.

Each clip is written under a temporary name and renamed when complete, so a clip file
with its final name is always whole.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from vlm_autodrive.builders.clips.windows import EPS, Window


@dataclass(frozen=True)
class CutClip:
    """A clip that was written: its file and the times it actually covers."""

    window: Window  # as planned
    path: Path
    start: float
    end: float
    frames: int
    width: int = 0  # of the clip's picture (0: the source's)
    height: int = 0
    picture: str = ""  # what re-encoding did to the picture ("" when nothing)
    duplicated: int = 0  # grid slots showing the frame before again (variable rate)
    dropped: int = 0  # source frames inside the clip not shown (variable rate)
    rotation: int = 0  # the display rotation flag the clip file carries


class CutError(Exception):
    """The source failed part-way (decode or demux error); the message says where."""


def _raise_machine_errors(e: Exception) -> None:
    """An OSError (disk full, permissions) is the machine's, not the video's: re-raise."""
    if isinstance(e, OSError):
        raise e


def _open_source(source: str):
    import av

    try:
        return av.open(source)
    except av.error.FFmpegError as e:
        if not isinstance(e, FileNotFoundError):  # a source gone since ingest is its own
            _raise_machine_errors(e)
        raise CutError(f"cannot open the source: {e}") from None


# Decoder threads of a source being re-encoded: decoding then overlaps the single-threaded
# encoder (measured on 2 cores, 2 noisy 720p videos, one encoder thread: 40.8 s wall with
# 2 decoder threads against 45.4 s with 1, the same CPU seconds). Decoded pixels do not
# depend on it, so unlike the encoder's threads it is no input of the clips.
DECODER_THREADS = 2


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@functools.cache
def x264_deterministic_params() -> tuple[str, ...]:
    """x264-params entries without which the same frames and settings can give other bytes.

    With AVX-512, x264 (core 165 as PyAV ships it) builds its macroblock tree from memory
    it never wrote when a frame is not a multiple of 8 macroblocks wide (ceil(width / 16),
    e.g. 320 or 1366 pixels): `mbtree_propagate_list_avx512` handles 8 macroblocks at a
    time and does not mask the end of a row. Per-macroblock quantizers, and so the clip
    bytes, then follow whatever the heap held: they change from one process to the next,
    and between two encoders in one process fed the same frames. Capped at AVX2, x264
    gives the same bytes every time; size and CPU time were within 2% of uncapped.
    """
    return ("asm=AVX2",) if _cpu_has_avx512() else ()


def _cpu_has_avx512() -> bool:
    """Whether the CPU and OS run the AVX-512 subset x264 uses (F, CD, BW, DQ, VL): numpy's
    runtime check, the same CPUID and XGETBV test x264 makes."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy 1.x
        try:
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return False
    return bool(__cpu_features__.get("AVX512_SKX"))


@dataclass
class _PacketInfo:
    pts: int
    dts: int | None
    key: bool


@dataclass(frozen=True)
class CopyIndex:
    """The video packets of a source in decode order, for planning stream copies."""

    packets: list[_PacketInfo]
    tb: Fraction
    rate: Fraction
    t0: int  # the lowest pts: time 0

    def plan(self, w: Window) -> CopyPlan:
        """Which packets a stream copy of `w` takes, and the frames it will show."""
        return _plan_copy(self.packets, w, self.tb, self.t0, self.rate)

    def span(self, w: Window) -> Window:
        """The times a stream copy of `w` covers, as its decoded frames show them: from
        the keyframe at or before its start to the end of its last frame."""
        plan = self.plan(w)
        return Window(plan.start, plan.end)

    def keyframes(self) -> list[float]:
        """Keyframe times in seconds, ascending."""
        return sorted(float((p.pts - self.t0) * self.tb) for p in self.packets if p.key)


def index_copy(source: str) -> CopyIndex:
    """Demux the source once (no decoding) into its `CopyIndex`."""
    import av

    with _open_source(source) as inp:
        stream = inp.streams.video[0]
        try:
            packets = [
                _PacketInfo(p.pts, p.dts, p.is_keyframe)
                for p in inp.demux(stream)
                if p.size and p.pts is not None
            ]
        except av.error.FFmpegError as e:
            _raise_machine_errors(e)
            raise CutError(f"demuxing failed: {e}") from None
        if not packets:
            raise CutError("no frames")
        rate = Fraction(stream.average_rate or stream.guessed_rate)
        return CopyIndex(packets, stream.time_base, rate, min(p.pts for p in packets))


@dataclass(frozen=True)
class CopyPlan:
    """One stream copy: the packets it takes (indices in decode order), the pts that
    becomes 0, and what the clip shows when decoded: its frames' times and count."""

    packets: list[int]
    base: int
    start: float
    end: float

    @property
    def frames(self) -> int:
        return len(self.packets)


def cut_copy(
    source: str,
    windows: list[Window],
    paths: list[Path],
    index: CopyIndex | None = None,
    rotation: int = 0,
) -> list[CutClip]:
    """Stream-copied clips for `windows`; two demux passes (index, then copy), no decode.
    The clips keep the source's display rotation flag (`rotation`, as ingest probed it)."""
    import av

    index = index or index_copy(source)
    with _open_source(source) as inp:
        stream = inp.streams.video[0]
        tb = index.tb
        plans = [index.plan(w) for w in windows]
        wanted = [set(p.packets) for p in plans]
        tick = max(1, round(1 / index.rate / tb))
        outputs = {}
        try:
            for i, packet in enumerate(
                p for p in inp.demux(stream) if p.size and p.pts is not None
            ):
                for k, plan in enumerate(plans):
                    if i not in wanted[k]:
                        continue
                    if k not in outputs:
                        paths[k].parent.mkdir(parents=True, exist_ok=True)
                        out = av.open(str(_tmp_path(paths[k])), "w", format="mp4")
                        outputs[k] = (out, out.add_stream_from_template(stream))
                    out, ostream = outputs[k]
                    copy = av.Packet(bytes(packet))
                    copy.pts = packet.pts - plan.base
                    copy.dts = None if packet.dts is None else packet.dts - plan.base
                    # Without a duration the muxer gives the last frame none, and
                    # players (and PyAV) never show it.
                    copy.duration = packet.duration or tick
                    copy.time_base = tb
                    copy.is_keyframe = packet.is_keyframe
                    copy.stream = ostream
                    out.mux(copy)
        except av.error.FFmpegError as e:
            for out, _ in outputs.values():
                out.close()
            _raise_machine_errors(e)
            raise CutError(f"demuxing failed at packet {i}: {e}") from None
    clips = []
    for k, plan in enumerate(plans):
        out, _ = outputs[k]
        out.close()
        _tmp_path(paths[k]).replace(paths[k])
        clips.append(
            CutClip(windows[k], paths[k], plan.start, plan.end, plan.frames, rotation=rotation)
        )
    return clips


def _plan_copy(
    index: list[_PacketInfo], w: Window, tb: Fraction, t0: int, rate: Fraction
) -> CopyPlan:
    """The stream copy of one window, B-frame aware.

    It starts at the last keyframe whose time is at or before the planned start, and
    leaves out the frames after it in decode order that show before it (the leading
    B-frames of an open GOP, HEVC's RASL pictures, MPEG-4's packed B-frames): they
    reference the GOP before and would not decode. It takes every frame shown before
    the planned end, and the frames decoded before them that they reference (which
    then show too, a frame or two past the end); then every frame shown between those,
    so the clip shows each source frame from its first to its last, none skipped.
    """

    def time(p: _PacketInfo) -> float:
        return float((p.pts - t0) * tb)

    keys = [i for i, p in enumerate(index) if p.key and time(p) <= w.start + EPS]
    first = keys[-1] if keys else 0
    key_pts = index[first].pts
    after = range(first, len(index))
    shown = [i for i in after if index[i].pts >= key_pts]
    last = max((i for i in shown if time(index[i]) < w.end - EPS), default=first)
    while True:  # take every frame shown before the latest frame taken
        top = max(index[i].pts for i in shown if i <= last)
        later = [i for i in shown if i > last and index[i].pts < top]
        if not later:
            break
        last = max(later)
    packets = [i for i in shown if i <= last]
    top = max(index[i].pts for i in packets)
    end = (top - t0) * tb + 1 / rate
    return CopyPlan(packets, key_pts, round(time(index[first]), 6), round(float(end), 6))
