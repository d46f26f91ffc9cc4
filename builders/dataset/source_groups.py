"""Source videos that must land on one side of the train/test split.

In: the ingested videos by id (rows of `ingest/videos.parquet` with `sha256` and, when
ingest made it, `perceptual_signature`). Out: `SourceGroups`: each grouped video's group
id (the group's smallest video id) and how many groups of each kind there are.

Two videos are one unit when their files have the same bytes (kept by
`ingest.duplicates: group`) or their perceptual signatures lie within the audit's
threshold (`phash.DEFAULT_THRESHOLD`, `ingest.near_duplicates: group`): a re-encoded or
resized copy under another id, common when datasets are merged. Groups are the connected
components of those pairs (union-find), so a chain of copies is one group. Every pair of
signatures is compared with `phash.near_pairs` (the audit's search, a block of rows
against all at a time): about a second at 10,000 videos.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlm_autodrive.builders.audit.phash import DEFAULT_THRESHOLD, VideoHash, near_pairs


@dataclass
class SourceGroups:
    """`of`: video id -> group id (its smallest video id), for grouped videos only.
    `byte_groups`: groups whose files all have the same bytes; `near_groups`: groups
    joined by a perceptual match (files with other bytes), `near_videos` their videos;
    `signed`/`unsigned`: videos with and without a signature (those without are compared
    by bytes only)."""

    of: dict[str, str] = field(default_factory=dict)
    byte_groups: int = 0
    near_groups: int = 0
    near_videos: int = 0
    signed: int = 0
    unsigned: int = 0

    def counts(self) -> dict[str, int]:
        """What the rule splits' summary records."""
        return {
            "byte_identical_groups": self.byte_groups,
            "near_duplicate_groups": self.near_groups,
            "near_duplicate_videos": self.near_videos,
            "videos_with_signature": self.signed,
            "videos_without_signature": self.unsigned,
        }


def source_groups(
    videos: Mapping[str, Mapping[str, Any]], threshold: float = DEFAULT_THRESHOLD
) -> SourceGroups:
    """The groups of `videos` (see the module); the same videos give the same groups."""
    ids = sorted(videos)
    index = {vid: i for i, vid in enumerate(ids)}
    parent = list(range(len(ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        ri, rj = root(i), root(j)
        parent[max(ri, rj)] = min(ri, rj)  # the smallest id leads: no order dependence

    first_of_sha: dict[str, int] = {}
    signed: list[VideoHash] = []
    for vid in ids:
        v = videos[vid]
        sha = v.get("sha256")
        if sha:
            join(first_of_sha.setdefault(sha, index[vid]), index[vid])
        sig = v.get("perceptual_signature")
        if sig:
            signed.append(VideoHash(vid, "", np.frombuffer(sig, dtype="<f4")))
    for i, j, _ in near_pairs(signed, threshold):
        join(index[signed[i].video_id], index[signed[j].video_id])

    members: dict[int, list[str]] = {}
    for vid in ids:
        members.setdefault(root(index[vid]), []).append(vid)
    out = SourceGroups(signed=len(signed), unsigned=len(ids) - len(signed))
    for group in members.values():
        if len(group) < 2:
            continue
        for vid in group:
            out.of[vid] = group[0]
        files = {videos[vid].get("sha256") or f"no sha256: {vid}" for vid in group}
        if len(files) > 1:
            out.near_groups += 1
            out.near_videos += len(group)
        else:
            out.byte_groups += 1
    return out
