"""`mode: smart`: frame-exact clips at near stream-copy cost.

In: a source, windows on its frame grid, clip paths, the x264 settings, the source's
`CopyIndex`. Out: `[(CutClip, mode)]` and the windows that fell back to `reencode`,
counted by reason.

A window [a, b) (grid frames) becomes one H.264 stream of three parts:
- head: frames a up to the first keyframe k inside the window, re-encoded;
- body: the source's packets from k on, stream-copied, as far as a decode-order prefix
  shows exactly the frames k, k+1, ... e-1 (a B-frame source's last frames before b
  need a reference shown at or after b: they are left to the tail);
- tail: frames e up to b, re-encoded.
The re-encoded parts use their own parameter-set id (x264's `sps-id`, one the source
does not use), and the clip's `avcC` lists the source's parameter sets and theirs, so
each slice finds its own. Every part starts with an IDR frame; the re-encoded parts
have no B-frames, and their decode times are shifted by the source's reorder delay so
decode times rise through the joins. The decoded clip has the frames and timestamps of
a `reencode` cut of the window (tests/builders/clips/test_smart.py checks both).

A window falls back to `reencode` (its `cut_mode` says so; the reason is counted) when
the source is not H.264 in MP4/MOV form (`avcC`), not 8-bit 4:2:0, rotated, of odd size
or variable frame rate; when no keyframe lies inside the window, or the keyframe is not
an IDR frame (open GOP); or when the timestamps would not rise through a join.
"""

from __future__ import annotations

import re
import struct
from collections import Counter
from fractions import Fraction
from pathlib import Path

from vlm_autodrive.builders.clips.cutting import (
    DECODER_THREADS,
    CopyIndex,
    CutClip,
    CutError,
    _open_source,
    _raise_machine_errors,
    _tmp_path,
    x264_deterministic_params,
)
from vlm_autodrive.builders.clips.reencode import cut_reencode
from vlm_autodrive.builders.clips.windows import Window, frame_span

_START_CODE = re.compile(b"\x00\x00\x00\x01|\x00\x00\x01")


class _Fallback(Exception):
    """This window cannot be joined; the message is the counted reason."""


def source_problem(video) -> str | None:
    """Why no window of `video` (its ingest record) can be smart-cut, or None."""
    if video.codec != "h264":
        return f"codec {video.codec} (smart joins H.264)"
    if video.rotation:
        return "rotated source (re-encoded clips are upright)"
    if video.width % 2 or video.height % 2:
        return "odd frame size (re-encoded clips are cropped)"
    if video.missing or video.jitter_ms > 1.0:
        return "variable frame rate"
    return None


def cut_smart(
    video,
    windows: list[Window],
    paths: list[Path],
    index: CopyIndex,
    rate: Fraction,
    crf: int,
    preset: str,
    threads: int,
) -> tuple[list[tuple[CutClip, str]], Counter]:
    """Smart-cut clips of `video` (its ingest record); the windows that cannot be are
    re-encoded. Returns [(clip, "smart" or "reencode")] and the fallback reasons."""
    import av

    reasons: Counter[str] = Counter()
    done: list[tuple[CutClip, str]] = []
    again: list[int] = []
    problem = source_problem(video)
    if problem is None:
        with _open_source(video.path) as inp:
            stream = inp.streams.video[0]
            problem = _stream_problem(stream)
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = DECODER_THREADS
            if problem is None:
                enc = (crf, preset, threads)
                for i, w in enumerate(windows):
                    try:
                        done.append((_cut_one(inp, stream, index, w, paths[i], rate, enc), "smart"))
                    except _Fallback as e:
                        _tmp_path(paths[i]).unlink(missing_ok=True)
                        reasons[str(e)] += 1
                        again.append(i)
                    except av.error.FFmpegError as e:
                        _raise_machine_errors(e)
                        raise CutError(f"smart cut failed: {e}") from None
    if problem is not None:
        reasons[problem] += len(windows)
        again = list(range(len(windows)))
    if again:
        clips = cut_reencode(
            video.path,
            [windows[i] for i in again],
            [paths[i] for i in again],
            crf,
            preset,
            threads,
            rotation=video.rotation,
            rate=rate,
        )
        done += [(c, "reencode") for c in clips]
    return sorted(done, key=lambda x: x[0].window.start), reasons


def _stream_problem(stream) -> str | None:
    ctx = stream.codec_context
    extradata = ctx.extradata or b""
    if not extradata or extradata[0] != 1:
        return "H.264 without an avcC header (Annex B stream)"
    if extradata[4] & 3 != 3:
        return "H.264 with NAL lengths of other than 4 bytes"
    if ctx.pix_fmt not in ("yuv420p", "yuvj420p"):
        return f"pixel format {ctx.pix_fmt} (x264 writes yuv420p)"
    return None


def _cut_one(inp, stream, index: CopyIndex, w: Window, path: Path, rate, enc) -> CutClip:
    """One smart-cut clip; _Fallback with the reason when the window cannot be."""
    import av

    tb = stream.time_base
    packets, t0 = index.packets, index.t0

    def slot(pts: int) -> int:
        return round((pts - t0) * tb * rate)

    a, b = frame_span(w, rate)
    keys = [i for i, p in enumerate(packets) if p.key and a <= slot(p.pts) < b]
    if not keys:
        raise _Fallback("no keyframe inside the window")
    first = keys[0]
    k = slot(packets[first].pts)
    body, e = _body(packets, first, k, b, slot)
    if not body:
        raise _Fallback("no stream-copyable frames inside the window")
    frame_ticks = 1 / rate / tb
    if frame_ticks.denominator != 1:
        raise _Fallback(f"a frame is not a whole number of ticks of the time base {tb}")
    ticks = int(frame_ticks)
    key_pts = packets[first].pts
    delay = key_pts - (packets[first].dts if packets[first].dts is not None else key_pts)

    source_header = bytes(stream.codec_context.extradata)
    sps_ids, pps_ids = _parameter_set_ids(source_header)
    own = min(set(range(32)) - sps_ids - pps_ids)
    head = _encode(inp, stream, index, a, k, rate, enc, own)
    tail = _encode(inp, stream, index, e, b, rate, enc, own)
    own_header = (head or tail)[1] if (head or tail) else None
    if head and tail and head[1] != tail[1]:
        raise _Fallback("the re-encoded parts' parameter sets differ")
    header = _merged_avcc(source_header, own_header) if own_header else source_header
    copied = list(_read_packets(inp, stream, [packets[i].pts for i in body], body))
    if not _is_idr(copied[0][1]):
        raise _Fallback("the keyframe is not an IDR frame (open GOP)")

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(_tmp_path(path)), "w", format="mp4") as out:
        ostream = out.add_stream_from_template(stream)
        ostream.codec_context.extradata = header
        last_dts = None

        def mux(payload: bytes, pts: int, dts: int, key: bool, duration: int) -> None:
            nonlocal last_dts
            if last_dts is not None and dts <= last_dts:
                raise _Fallback("decode times would not rise through a join")
            last_dts = dts
            packet = av.Packet(payload)
            packet.pts, packet.dts, packet.time_base = pts, dts, tb
            packet.is_keyframe, packet.duration, packet.stream = key, duration, ostream
            out.mux(packet)

        for n, (payload, key) in enumerate(head[0] if head else []):
            mux(payload, n * ticks, n * ticks - delay, key, ticks)
        base = (k - a) * ticks
        for i, payload in copied:
            p = packets[i]
            dts = p.dts if p.dts is not None else p.pts
            mux(payload, p.pts - key_pts + base, dts - key_pts + base, p.key, ticks)
        for n, (payload, key) in enumerate(tail[0] if tail else []):
            pts = (e - a + n) * ticks
            mux(payload, pts, pts - delay, key, ticks)
    _tmp_path(path).replace(path)
    return CutClip(w, path, float(a / rate), float(b / rate), b - a)


def _body(packets, first: int, k: int, b: int, slot) -> tuple[list[int], int]:
    """The packets (decode order, from `first`) of the longest decode-order prefix that
    shows exactly the frames k, k+1, ..., e-1 with e <= b; and e. Frames after the
    keyframe that show before it (an open GOP's leading frames) are left out."""
    taken: list[int] = []
    shown: set[int] = set()
    best: tuple[list[int], int] = ([], k)
    for i in range(first, len(packets)):
        s = slot(packets[i].pts)
        if s < k:
            continue
        if s >= b:
            break
        taken.append(i)
        shown.add(s)
        if len(shown) == len(taken) and max(shown) == k + len(shown) - 1:
            best = (list(taken), k + len(shown))
    return best


def _read_packets(inp, stream, pts: list[int], indices: list[int]):
    """(index, bytes) of the source's packets with these `pts` (decode order), read from
    the keyframe the first of them is."""
    where = dict(zip(pts, indices, strict=True))
    inp.seek(pts[0], stream=stream, backward=True, any_frame=False)
    found: dict[int, bytes] = {}
    for p in inp.demux(stream):
        if p.pts in where and p.size:
            found[p.pts] = bytes(p)
            if len(found) == len(where):
                break
    if len(found) != len(where):
        raise _Fallback("the source's packets could not be read back by time")
    for t in pts:
        yield where[t], found[t]


def _encode(inp, stream, index: CopyIndex, a: int, b: int, rate, enc, sps_id: int):
    """Frames a..b-1 of the source re-encoded (no B-frames, IDR first, parameter set id
    `sps_id`): ([(length-prefixed packet, key)], the SPS and PPS), or None if a == b."""
    import av
    from av.codec.context import Flags
    from av.video.frame import PictureType

    if a >= b:
        return None
    crf, preset, threads = enc
    tb = stream.time_base
    keys = [p.pts for p in index.packets if p.key and round((p.pts - index.t0) * tb * rate) <= a]
    inp.seek(max(keys) if keys else index.t0, stream=stream, backward=True, any_frame=False)
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = (
        stream.codec_context.width,
        stream.codec_context.height,
        "yuv420p",
    )
    ctx.time_base, ctx.framerate = 1 / rate, rate
    ctx.flags |= Flags.global_header
    params = [*x264_deterministic_params(), f"sps-id={sps_id}", "bframes=0", "scenecut=0"]
    ctx.options = {"crf": str(crf), "preset": preset, "x264-params": ":".join(params)}
    ctx.thread_count, ctx.thread_type = threads, "FRAME"
    out: list = []
    n = 0
    for frame in inp.decode(stream):
        s = round((frame.pts - index.t0) * tb * rate)
        if s < a:
            continue
        if s >= b:
            break
        frame = frame.reformat(format="yuv420p") if frame.format.name != "yuv420p" else frame
        frame.pts, frame.time_base, frame.pict_type = n, 1 / rate, PictureType.NONE
        out += ctx.encode(frame)
        n += 1
    out += ctx.encode(None)
    if n != b - a:
        raise _Fallback("the source decoded fewer frames than its grid holds")
    packets = [(_length_prefixed(bytes(p)), p.is_keyframe) for p in out]
    return packets, bytes(ctx.extradata)


def _is_idr(sample: bytes) -> bool:
    """Whether an MP4 sample (4-byte NAL lengths) holds an IDR slice (NAL type 5)."""
    i = 0
    while i + 4 < len(sample):
        (n,) = struct.unpack(">I", sample[i : i + 4])
        if sample[i + 4] & 0x1F == 5:
            return True
        i += 4 + n
    return False


def _nals(annexb: bytes) -> list[bytes]:
    parts = _START_CODE.split(annexb)
    return [p for p in parts if p]


def _length_prefixed(annexb: bytes) -> bytes:
    """An x264 packet (Annex B) as MP4 stores it: each NAL unit after its 4-byte length;
    parameter sets left out (they are in the clip's avcC)."""
    return b"".join(
        struct.pack(">I", len(n)) + n for n in _nals(annexb) if n[0] & 0x1F not in (7, 8)
    )


def _parse_avcc(avcc: bytes) -> tuple[bytes, list[bytes], list[bytes], bytes]:
    """(the 5 header bytes, SPS list, PPS list, the rest) of an avcC record."""
    i, sps, pps = 6, [], []
    for _ in range(avcc[5] & 0x1F):
        (n,) = struct.unpack(">H", avcc[i : i + 2])
        sps.append(avcc[i + 2 : i + 2 + n])
        i += 2 + n
    count = avcc[i]
    i += 1
    for _ in range(count):
        (n,) = struct.unpack(">H", avcc[i : i + 2])
        pps.append(avcc[i + 2 : i + 2 + n])
        i += 2 + n
    return avcc[:5], sps, pps, avcc[i:]


def _merged_avcc(source: bytes, x264_annexb: bytes) -> bytes:
    """The source's avcC with x264's SPS and PPS added."""
    head, sps, pps, rest = _parse_avcc(source)
    own = _nals(x264_annexb)
    sps += [n for n in own if n[0] & 0x1F == 7]
    pps += [n for n in own if n[0] & 0x1F == 8]
    out = bytearray(head)
    out.append(0xE0 | len(sps))
    for s in sps:
        out += struct.pack(">H", len(s)) + s
    out.append(len(pps))
    for p in pps:
        out += struct.pack(">H", len(p)) + p
    return bytes(out + rest)


def _parameter_set_ids(avcc: bytes) -> tuple[set[int], set[int]]:
    """The SPS and PPS ids the source's avcC uses."""
    _, sps, pps, _ = _parse_avcc(avcc)
    return {_ue(s[4:]) for s in sps}, {_ue(p[1:]) for p in pps}


def _ue(data: bytes) -> int:
    """The first unsigned Exp-Golomb number of a NAL unit payload."""
    bits = "".join(f"{byte:08b}" for byte in data[:8])
    zeros = len(bits) - len(bits.lstrip("0"))
    return int(bits[zeros : 2 * zeros + 1], 2) - 1
