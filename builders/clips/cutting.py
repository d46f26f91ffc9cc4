"""Cutting clips out of one source video with PyAV, in one pass over the source.

- `cut_reencode`: decodes the source once and feeds each frame to every window that
  holds it (overlapping windows share the decode), encoding H.264 frame exactly.
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


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def cut_reencode(
    source: str,
    windows: list[Window],
    paths: list[Path],
    crf: int = 23,
    preset: str = "veryfast",
    threads: int = 1,
) -> list[CutClip]:
    """Frame-exact H.264 clips for `windows`, written to `paths`, from one decode pass."""
    import av
    from av.video.frame import PictureType

    with _open_source(source) as inp:
        stream = inp.streams.video[0]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        rate = Fraction(stream.average_rate or stream.guessed_rate)
        tb = stream.time_base
        spans = [(round(w.start * rate), round(w.end * rate)) for w in windows]
        pending = sorted(range(len(windows)), key=lambda i: spans[i][0])
        open_: dict[int, tuple] = {}
        written = [0] * len(windows)
        done: list[CutClip] = []
        first_pts = None
        last_needed = max(end for _, end in spans)
        try:
            for frame in inp.decode(stream):
                if first_pts is None:
                    first_pts = frame.pts or 0
                idx = round((frame.pts - first_pts) * tb * rate)
                if idx >= last_needed:
                    break
                while pending and spans[pending[0]][0] <= idx:
                    i = pending.pop(0)
                    open_[i] = _open_encoder(paths[i], stream, rate, crf, preset, threads)
                if frame.format.name != "yuv420p":
                    frame = frame.reformat(format="yuv420p")
                frame.pict_type = PictureType.NONE  # let x264 place its own keyframes
                for i, (container, out) in list(open_.items()):
                    start, end = spans[i]
                    if idx < start:
                        continue
                    frame.pts = written[i]
                    frame.time_base = 1 / rate
                    container.mux(out.encode(frame))
                    written[i] += 1
                    if idx + 1 >= end:
                        done.append(_close(open_.pop(i), windows[i], paths[i], spans[i], rate))
        except av.error.FFmpegError as e:
            for container, _ in open_.values():
                container.close()
            _raise_machine_errors(e)
            raise CutError(f"decoding failed near frame {written and max(written)}: {e}") from None
        for i, enc in open_.items():  # the source ended before these windows did
            done.append(
                _close(enc, windows[i], paths[i], (spans[i][0], spans[i][0] + written[i]), rate)
            )
    return sorted(done, key=lambda c: c.window.start)


def _open_encoder(path: Path, template, rate: Fraction, crf: int, preset: str, threads: int):
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    container = av.open(str(_tmp_path(path)), "w", format="mp4")
    out = container.add_stream("libx264", rate=rate)
    out.width = template.codec_context.width
    out.height = template.codec_context.height
    out.pix_fmt = "yuv420p"
    out.options = {
        "crf": str(crf),
        "preset": preset,
        "x264-params": ":".join(x264_deterministic_params()),
    }
    out.codec_context.thread_count = threads
    # Frame threads, as the ffmpeg command line uses for x264: PyAV's default (slice
    # threads) splits each frame and was measured ~15% slower at the same settings.
    out.codec_context.thread_type = "FRAME"
    return container, out


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


def _close(enc, window: Window, path: Path, span: tuple[int, int], rate: Fraction) -> CutClip:
    container, out = enc
    container.mux(out.encode(None))
    container.close()
    _tmp_path(path).replace(path)
    start, end = span
    return CutClip(window, path, float(start / rate), float(end / rate), end - start)


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

    def span(self, w: Window) -> Window:
        """The times a stream copy of `w` covers: from the keyframe at or before its
        start to the end of the last frame shown before its end."""
        first, last, base = _plan_copy(self.packets, w, self.tb, self.t0)
        end_pts = (
            max(p.pts for p in self.packets[first : last + 1]) - self.t0 + 1 / self.rate / self.tb
        )
        return Window(
            round(float((base - self.t0) * self.tb), 6), round(float(end_pts * self.tb), 6)
        )

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


def cut_copy(
    source: str, windows: list[Window], paths: list[Path], index: CopyIndex | None = None
) -> list[CutClip]:
    """Stream-copied clips for `windows`; two demux passes (index, then copy), no decode."""
    import av

    index = index or index_copy(source)
    with _open_source(source) as inp:
        stream = inp.streams.video[0]
        tb, t0 = index.tb, index.t0
        plans = [_plan_copy(index.packets, w, tb, t0) for w in windows]
        outputs = {}
        try:
            for i, packet in enumerate(
                p for p in inp.demux(stream) if p.size and p.pts is not None
            ):
                for k, (first, last, base) in enumerate(plans):
                    if first <= i <= last:
                        if k not in outputs:
                            paths[k].parent.mkdir(parents=True, exist_ok=True)
                            out = av.open(str(_tmp_path(paths[k])), "w", format="mp4")
                            outputs[k] = (out, out.add_stream_from_template(stream))
                        out, ostream = outputs[k]
                        copy = av.Packet(bytes(packet))
                        copy.pts = packet.pts - base
                        copy.dts = None if packet.dts is None else packet.dts - base
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
    for k, (first, last, _) in enumerate(plans):
        out, _ = outputs[k]
        out.close()
        _tmp_path(paths[k]).replace(paths[k])
        actual = index.span(windows[k])
        clips.append(CutClip(windows[k], paths[k], actual.start, actual.end, last - first + 1))
    return clips


def _plan_copy(index: list[_PacketInfo], w: Window, tb: Fraction, t0: int) -> tuple[int, int, int]:
    """(first packet, last packet, pts base) in decode order for one window.

    First: the last keyframe whose time is at or before the planned start. Last: the last
    packet in decode order whose frame shows before the planned end; frames decoded
    before it (references of B-frames) come along, so every kept frame decodes.
    """

    def time(p: _PacketInfo) -> float:
        return float((p.pts - t0) * tb)

    keys = [i for i, p in enumerate(index) if p.key and time(p) <= w.start + EPS]
    first = keys[-1] if keys else 0
    last = first
    for i in range(first, len(index)):
        if time(index[i]) < w.end - EPS:
            last = i
    base = min(p.pts for p in index[first : last + 1])
    return first, last, base
