"""Frame-exact re-encoding of windows of one source, from one decode pass.

In: a source path, windows (seconds), clip paths and the encoder settings. Out: one
`CutClip` per window, written as constant-rate H.264 at the source's nominal rate.

- Frames are placed by presentation time on the nominal frame grid, as ffmpeg's `fps`
  filter does: grid slot n shows the last frame whose time rounds to at most n. A slot
  no frame rounds to repeats the frame before (`duplicated`); a frame another frame
  replaces in its slot is not shown (`dropped`). A constant-rate source maps one frame
  to one slot: nothing duplicated or dropped.
- The picture is written upright: a source with a display rotation (phones) is turned
  by its pixels and the clip carries no rotation flag. x264 needs even sides: an odd
  width or height is cropped by its last column or row (`picture` says so).
- `decode`: `cpu`, `cuda` (NVDEC through PyAV's `h264_cuvid`/`hevc_cuvid` for H.264
  and HEVC; the run stops when it does not open) or `auto` (NVDEC when it opens, else
  the CPU). Other codecs decode on the CPU. Both decoders give the same pictures (H.264 and
  HEVC decoding is bit exact), so the clip bytes do not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from vlm_autodrive.builders.clips.cutting import (
    DECODER_THREADS,
    CutClip,
    CutError,
    _open_source,
    _raise_machine_errors,
    _tmp_path,
    x264_deterministic_params,
)
from vlm_autodrive.builders.clips.windows import Window, frame_span

CUVID = {"h264": "h264_cuvid", "hevc": "hevc_cuvid"}


@dataclass
class _Clip:
    """A window being encoded: its slot span and what went into it so far."""

    index: int
    span: tuple[int, int]
    container: object = None
    stream: object = None
    written: int = 0
    duplicated: int = 0
    dropped: int = 0
    last_source: int = -1  # the source frame written last (a repeat is a duplicate)


def picture_edits(width: int, height: int, rotation: int) -> tuple[list, int, int, str]:
    """(filters, clip width, clip height, what was done) to write a `width`x`height`
    picture shown at `rotation` degrees (counter-clockwise) upright with even sides."""
    filters: list[tuple[str, str]] = []
    said = []
    if rotation == 90:
        filters.append(("transpose", "cclock"))
    elif rotation == 270:
        filters.append(("transpose", "clock"))
    elif rotation == 180:
        filters += [("hflip", ""), ("vflip", "")]
    if rotation in (90, 270):
        width, height = height, width
    if rotation:
        said.append(f"rotated {rotation}")
    even_w, even_h = width - width % 2, height - height % 2
    if (even_w, even_h) != (width, height):
        filters.append(("crop", f"{even_w}:{even_h}:0:0"))
        said.append(f"cropped {width}x{height} to {even_w}x{even_h}")
    return filters, even_w, even_h, "; ".join(said)


def cut_reencode(
    source: str,
    windows: list[Window],
    paths: list[Path],
    crf: int = 23,
    preset: str = "veryfast",
    threads: int = 1,
    rotation: int = 0,
    decode: str = "cpu",
    rate: Fraction | None = None,
) -> list[CutClip]:
    """Frame-exact H.264 clips for `windows`, written to `paths`, from one decode pass
    (`rotation`: the source's display rotation, `rate`: its nominal frame rate, as
    ingest probed them; default: the stream's)."""
    import av

    with _open_source(source) as inp:
        stream = inp.streams.video[0]
        rate = rate or Fraction(stream.average_rate or stream.guessed_rate)
        return _cut(inp, stream, rate, windows, paths, (crf, preset, threads), rotation, decode, av)


def _cut(inp, stream, rate, windows, paths, enc, rotation, decode, av) -> list[CutClip]:
    tb = stream.time_base
    width, height = stream.codec_context.width, stream.codec_context.height
    filters, out_w, out_h, edits = picture_edits(width, height, rotation)
    upright = _Upright(filters, stream.time_base, av)
    clips = [_Clip(i, frame_span(w, rate)) for i, w in enumerate(windows)]
    pending = sorted(clips, key=lambda c: c.span[0])
    open_: list[_Clip] = []
    done: list[CutClip] = []
    last_needed = max(c.span[1] for c in clips)
    held = None  # (picture, source frame number, slot): the last frame read
    next_slot = 0  # the next grid slot to fill
    first_pts = None

    def emit(picture, number: int, slot: int) -> None:
        """Write `picture` (source frame `number`) as grid slot `slot`."""
        while pending and pending[0].span[0] <= slot:
            c = pending.pop(0)
            c.container, c.stream = _open_encoder(paths[c.index], out_w, out_h, rate, enc)
            open_.append(c)
        for c in list(open_):
            if slot < c.span[0]:
                continue
            if c.written and number == c.last_source:
                c.duplicated += 1
            picture.pts = c.written
            picture.time_base = 1 / rate
            c.container.mux(c.stream.encode(picture))
            c.written += 1
            c.last_source = number
            if slot + 1 >= c.span[1]:
                open_.remove(c)
                done.append(_close(c, windows, paths, rate, out_w, out_h, edits))

    def drop(slot: int) -> None:
        for c in open_ + pending:
            if c.span[0] <= slot < c.span[1]:
                c.dropped += 1

    try:
        for number, frame in enumerate(_decoded(inp, stream, decode, av)):
            pts = frame.pts if frame.pts is not None else number
            if first_pts is None:
                first_pts = pts
            slot = round((pts - first_pts) * tb * rate)
            if held is not None:  # it shows from next_slot (>= its own slot) up to `slot`
                picture, held_number, _ = held
                if slot <= next_slot:  # the held frame is replaced before it is shown
                    drop(next_slot)
                else:
                    for s in range(next_slot, min(slot, last_needed)):
                        emit(picture, held_number, s)
                    next_slot = slot
            if next_slot >= last_needed:
                held = None
                break
            held = (upright(frame), number, slot)
        if held is not None and next_slot < last_needed:
            emit(held[0], held[1], next_slot)
            next_slot += 1
    except av.error.FFmpegError as e:
        for c in open_:
            c.container.close()
        _raise_machine_errors(e)
        raise CutError(f"decoding failed near grid frame {next_slot}: {e}") from None
    for c in open_:  # the source ended before these windows did
        c.span = (c.span[0], c.span[0] + c.written)
        done.append(_close(c, windows, paths, rate, out_w, out_h, edits))
    if pending:  # windows starting after the source ended: nothing to write
        start = windows[pending[0].index].start
        raise CutError(f"the source ends before the window at {start:g} s")
    return sorted(done, key=lambda c: c.window.start)


class _Upright:
    """Turns decoded frames upright with even sides, as yuv420p (an ffmpeg filter graph,
    made for the first frame: its pixel format is the decoder's)."""

    def __init__(self, filters: list, time_base, av):
        self.filters, self.time_base, self.av, self.graph = filters, time_base, av, None

    def __call__(self, frame):
        from av.video.frame import PictureType

        if self.filters:
            if self.graph is None:
                self.graph = self.av.filter.Graph()
                src = self.graph.add_buffer(
                    width=frame.width,
                    height=frame.height,
                    format=frame.format.name,
                    time_base=self.time_base,
                )
                nodes = [src, *(self.graph.add(n, a) for n, a in self.filters)]
                self.graph.link_nodes(*nodes, self.graph.add("buffersink")).configure()
            self.graph.push(frame)
            frame = self.graph.vpull()
        if frame.format.name != "yuv420p":
            frame = frame.reformat(format="yuv420p")
        frame.pict_type = PictureType.NONE  # let x264 place its own keyframes
        return frame


def _decoded(inp, stream, decode: str, av):
    """The source's frames in presentation order, decoded as `decode` asks."""
    ctx = _cuda_decoder(stream, decode, av) if decode != "cpu" else None
    if ctx is None:
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = DECODER_THREADS
        yield from inp.decode(stream)
        return
    for packet in inp.demux(stream):
        yield from ctx.decode(packet)


class DecoderUnavailable(ValueError):
    """`decode: cuda` on a machine where NVDEC does not open (a setting, not a video,
    is wrong: the run stops with the message instead of rejecting every video)."""


def _cuda_decoder(stream, decode: str, av):
    """An open NVDEC decoder for the stream, or None: the codec has none (VP9, MPEG-4:
    the CPU decodes them in every mode), or `auto` and NVDEC does not open (no GPU).
    DecoderUnavailable for `cuda` when NVDEC does not open."""
    name = CUVID.get(stream.codec_context.name)
    if name is None:
        return None
    try:
        ctx = av.CodecContext.create(name, "r")
        ctx.extradata = stream.codec_context.extradata
        ctx.open()
        return ctx
    except (av.error.FFmpegError, ValueError) as e:
        if isinstance(e, OSError) and not isinstance(e, av.error.FFmpegError):
            raise
        if decode == "cuda":
            raise DecoderUnavailable(
                f"chunk.decode is cuda, but NVDEC ({name}) does not open on this machine "
                f"({e}); use decode: auto or cpu"
            ) from None
        return None


def _open_encoder(path: Path, width: int, height: int, rate: Fraction, enc: tuple):
    import av

    crf, preset, threads = enc
    path.parent.mkdir(parents=True, exist_ok=True)
    container = av.open(str(_tmp_path(path)), "w", format="mp4")
    out = container.add_stream("libx264", rate=rate)
    out.width, out.height, out.pix_fmt = width, height, "yuv420p"
    out.options = {
        "crf": str(crf),
        "preset": preset,
        "x264-params": ":".join(x264_deterministic_params()),
    }
    out.codec_context.thread_count = threads
    # With more than one thread, frame threads, as the ffmpeg command line uses for x264:
    # PyAV's default (slice threads) splits each frame, ~15% slower at the same settings.
    out.codec_context.thread_type = "FRAME"
    return container, out


def _close(c: _Clip, windows, paths, rate, width, height, edits) -> CutClip:
    c.container.mux(c.stream.encode(None))
    c.container.close()
    path = paths[c.index]
    _tmp_path(path).replace(path)
    start, end = c.span
    return CutClip(
        windows[c.index],
        path,
        float(start / rate),
        float(end / rate),
        end - start,
        width=width,
        height=height,
        picture=edits,
        duplicated=c.duplicated,
        dropped=c.dropped,
    )
