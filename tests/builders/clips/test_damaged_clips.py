"""A clip that is missing, empty, truncated or altered is cut again by `build` and `chunk`
(issue 22, item 4): each part records its clips' size and sha256, so `build` no longer
says "already done" over a broken clip."""

from __future__ import annotations

import os

from tests.builders.real_builds import autodrive, clip_states, tiny_recipe


def test_truncated_missing_empty_and_altered_clips_are_recut_by_build(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path)
    build = tmp_path / "build"
    assert autodrive(capsys, "build", recipe)[0] == 0
    before = clip_states(build)
    good = {rel: (build / rel).read_bytes() for rel in before}
    by_video: dict[str, list[str]] = {}
    for rel in sorted(before):
        by_video.setdefault(rel.split("/")[1], []).append(rel)
    truncated, missing, empty, altered = (clips[0] for clips in list(by_video.values())[:4])
    (build / truncated).write_bytes(good[truncated][: len(good[truncated]) // 4])
    (build / missing).unlink()
    (build / empty).write_bytes(b"")
    flipped = bytearray(good[altered])
    flipped[len(flipped) // 2] ^= 0xFF  # same size, other bytes, later mtime
    (build / altered).write_bytes(bytes(flipped))
    st = os.stat(build / altered)
    os.utime(build / altered, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))

    code, text = autodrive(capsys, "build", recipe)
    assert code == 0, text
    assert "cut now 4, of them re-cut after a change 4" in text
    for rel in (truncated, missing, empty, altered):
        assert (build / rel).read_bytes() == good[rel], rel  # the same bytes as first cut
    after = clip_states(build)
    untouched = [
        r
        for r in before
        if r.split("/")[1] not in {p.split("/")[1] for p in (truncated, missing, empty, altered)}
    ]
    assert untouched and all(after[r] == before[r] for r in untouched)

    code, text = autodrive(capsys, "chunk", "--build", build, "--recipe", recipe)
    assert code == 0 and "cut now 0" in text  # whole again: nothing to do
