"""`decode: auto | cpu | cuda`: the decoder never changes the clip bytes. Without a GPU,
`auto` decodes on the CPU and `cuda` stops with a message naming the setting; on a GPU
machine `cuda` runs NVDEC and gives the CPU's bytes."""

import pytest

from tests.builders.clips.footage import make_footage
from vlm_autodrive.builders.clips.reencode import DecoderUnavailable, cut_reencode
from vlm_autodrive.builders.clips.windows import Window


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_every_decoder_gives_the_cpus_bytes(tmp_path, codec):
    src = make_footage(tmp_path / "src.mp4", seconds=3, codec=codec, bframes=2, gop=30)
    clips = {}
    for decode in ("cpu", "auto", "cuda"):
        out = tmp_path / f"{decode}.mp4"
        try:
            (clip,) = cut_reencode(str(src), [Window(0.5, 2.5)], [out], decode=decode)
        except DecoderUnavailable as e:  # no GPU here
            assert decode == "cuda" and "chunk.decode is cuda, but NVDEC" in str(e)
            assert "use decode: auto or cpu" in str(e)
            continue
        assert clip.frames == 60
        clips[decode] = out.read_bytes()
    assert clips["auto"] == clips["cpu"]
    assert clips.get("cuda", clips["cpu"]) == clips["cpu"]
