"""Decode speed: PyAV's CPU h264 decoder against NVDEC through FFmpeg's `h264_cuvid`, on
the same clips (run by run_gpu_check.py in the check's environment).

    python benchmarks/gpu/decode_check.py CLIP [CLIP ...]

Each decoder decodes every frame of every clip (one clip first, untimed, to warm up),
frames left in the decoder's own pixel format (yuv420p on the CPU, nv12 from cuvid, both
copied to host memory): decoding alone, not the RGB conversion and scaling training
adds. As a check that both decode the same pictures, the luma plane of each clip's
first frame is compared (mean absolute difference; 0 for bit-exact h264 decoders).

A decoder that is not there (no NVIDIA driver, an FFmpeg built without cuvid) is
reported with its error; the others still run. Prints one `GPU_CHECK_RESULT {json}` line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_result


def decode_cpu(path: Path) -> tuple[int, object]:
    """(frames decoded, first frame's luma plane) with the CPU decoder, frame threads on."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return _count(container.decode(stream))


def decode_cuvid(path: Path) -> tuple[int, object]:
    """The same with FFmpeg's NVDEC decoder `h264_cuvid` fed the container's packets."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec = av.CodecContext.create("h264_cuvid", "r")
        codec.extradata = stream.codec_context.extradata
        codec.width, codec.height = stream.codec_context.width, stream.codec_context.height

        def frames():
            for packet in container.demux(stream):  # the last, empty packet flushes
                yield from codec.decode(packet)

        return _count(frames())


def _count(frames) -> tuple[int, object]:
    first, n = None, 0
    for frame in frames:
        if first is None:
            plane = frame.planes[0]
            first = (bytes(plane), plane.line_size, frame.width, frame.height)
        n += 1
    return n, first


def _luma(first) -> object:
    import numpy as np

    data, stride, width, height = first
    return np.frombuffer(data, np.uint8).reshape(-1, stride)[:height, :width].astype(np.int16)


def measure(decoder, clips: list[Path]) -> dict:
    """Frames/s of `decoder` over `clips` after one untimed clip, and the first lumas."""
    decoder(clips[0])
    start = time.perf_counter()
    frames, firsts = 0, []
    for clip in clips:
        n, first = decoder(clip)
        frames, firsts = frames + n, [*firsts, first]
    seconds = time.perf_counter() - start
    return {"frames": frames, "seconds": round(seconds, 3), "fps": round(frames / seconds, 1)}, [
        _luma(f) for f in firsts
    ]


def main(argv: list[str] | None = None) -> int:
    import av

    clips = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    with av.open(str(clips[0])) as container:
        cc = container.streams.video[0].codec_context
        source = {"codec": cc.name, "width": cc.width, "height": cc.height}
    result: dict = {"clips": len(clips), "source": source, "pyav": av.__version__}
    lumas = {}
    for name, decoder in (("cpu", decode_cpu), ("h264_cuvid", decode_cuvid)):
        try:
            result[name], lumas[name] = measure(decoder, clips)
        except Exception as e:
            result[name] = {"error": f"{type(e).__name__}: {e}"}
    if "fps" in result["cpu"] and "fps" in result["h264_cuvid"]:
        result["cuvid_over_cpu"] = round(result["h264_cuvid"]["fps"] / result["cpu"]["fps"], 3)
        result["same_frame_count"] = result["cpu"]["frames"] == result["h264_cuvid"]["frames"]
        diffs = [
            float(abs(a - b).mean()) if a.shape == b.shape else None
            for a, b in zip(lumas["cpu"], lumas["h264_cuvid"])
        ]
        result["first_frame_luma_mad"] = diffs
    print_result(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
