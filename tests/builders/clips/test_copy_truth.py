"""Copy mode tells the truth: each copied clip's start, end, frame count and event
offset in the clip table are those of the frames the file shows when decoded, for
sources with B-frames (H.264), open GOPs whose keyframes are followed by frames that
show before them (HEVC's RASL pictures), and MPEG-4 B-frames in AVI."""

import pytest

from tests.builders.clips.footage import frame_number, make_footage, shown
from tests.conftest import write_jsonl
from vlm_autodrive.builders.clips.stage import run_chunk
from vlm_autodrive.builders.core.sections import ChunkConfig
from vlm_autodrive.builders.core.taxonomy import load_taxonomy
from vlm_autodrive.builders.ingest.stage import run_ingest

TAX = load_taxonomy()
SOURCES = {  # codec: (file, B-frames)
    "libx264": ("h264.mp4", 3),
    "libx265": ("hevc.mp4", 3),  # x265's default open GOP: CRA keyframes with RASL frames
    "mpeg4": ("mpeg4.avi", 2),
}


@pytest.mark.parametrize("codec", sorted(SOURCES))
def test_every_copied_clip_shows_exactly_what_the_table_says(tmp_path, codec):
    name, bframes = SOURCES[codec]
    src = make_footage(tmp_path / name, seconds=8, codec=codec, bframes=bframes, gop=30)
    rows = [{"video_id": "v", "path": str(src), "label": "Collision", "event_time": 5.0}]
    build = tmp_path / "build"
    ing = run_ingest(write_jsonl(tmp_path / "m.jsonl", rows), build, TAX, progress=False)
    assert not ing.rejects, ing.rejects
    cfg = ChunkConfig(window=2, stride=1.5, margin=0.5, mode="copy", event_clips="all")
    res = run_chunk(build, cfg, TAX, progress=False)
    assert not res.rejects and res.clips
    assert {c.cut_mode for c in res.clips} == {"copy"}
    for clip in res.clips:
        numbers = [frame_number(f) for f in shown(build / clip.path)]
        first, end = round(clip.start * 30), round(clip.end * 30)
        assert numbers == list(range(first, end)), clip
        assert len(numbers) == clip.frames
        if clip.event_offset is not None:
            assert numbers[round(clip.event_offset * 30)] == 150  # the event frame, 5.0 s
    assert any(c.event_offset is not None for c in res.clips)
