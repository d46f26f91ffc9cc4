"""Record types of the audit: one dataclass per table of `BUILD/audit/report.json`.

Field names are the keys each table's rows have in report.json (`asdict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BaselineScore:
    """One blind baseline's accuracy on one config (and class, or `all`), against chance.

    `accuracy` is the mean credit per row (a tie among k options, the answer among them,
    scores 1/k: the baseline's expected accuracy with ties broken at random); `chance`
    the mean of 1/options; `low`/`high` the 95% interval (the wider of Wilson's and a
    bootstrap over source videos, whose clips and questions are correlated); `flagged`
    when accuracy >= chance + 5 points and the interval's low end lies above chance at
    95% over all baselines of the config (Bonferroni: 98.75% each for 4 baselines, so a
    clean config tried 4 ways is flagged by noise at most 5% of the time); only the
    `all` row is flagged (a baseline always picking one class is right on every row of
    that class). `scored_on` names the side.
    """

    config: str
    baseline: str
    label: str
    scored_on: str
    rows: int
    accuracy: float
    chance: float
    low: float
    high: float
    flagged: bool
    note: str = ""


@dataclass
class LeakFlag:
    """A flagged (config, baseline): the rows of either side the baseline answers alone
    (no tie), which a model can answer without the video. `ids` holds every one; the
    markdown report shows the first few."""

    config: str
    baseline: str
    accuracy: float
    chance: float
    leaking_rows: int
    total_rows: int
    ids: list[str] = field(default_factory=list)


@dataclass
class LetterBalance:
    """One config's side (train or test): are its answer letters spread as a uniform
    draw among each row's options would spread them? `letter` is the most
    over-represented letter (the flagged one when any is), `count` its rows, `share`
    count / rows, `uniform` its share under a uniform draw (the mean over rows of 1/k
    when the letter is one of the row's k options), `low`/`high` the 95% Wilson interval
    of `share`; `flagged` when share >= uniform + 5 points and the interval at 95% over
    the side's letters (Bonferroni) lies above uniform (builders/audit/letters.py).
    `letters` counts every letter's rows. On train the flag means a model can learn the
    letter rather than the video."""

    config: str
    side: str
    rows: int
    letter: str
    count: int
    share: float
    uniform: float
    low: float
    high: float
    flagged: bool
    letters: dict[str, int] = field(default_factory=dict)


@dataclass
class DuplicateGroup:
    """Files that are the same video: `kind` `source_bytes` or `clip_bytes` (identical
    sha256) or `source_near` (perceptual distance <= the threshold). `members` are video
    ids (sources) or clip ids; `sides` their train/test/held_out sides (`mixed` in
    `crosses_sides` when a group has both train and test); `distance` the largest
    pairwise distance (0 for identical bytes)."""

    kind: str
    members: list[str]
    paths: list[str]
    sides: list[str]
    crosses_sides: bool
    distance: float = 0.0


@dataclass
class QuestionDuplicates:
    """Generated questions repeated within one config and side: `rows`, `distinct`
    (question + options texts), `duplicate_rows` = rows - distinct, and the most
    repeated question with its count."""

    config: str
    side: str
    rows: int
    distinct: int
    duplicate_rows: int
    top_question: str = ""
    top_count: int = 0


@dataclass
class ConfigStats:
    """Per config, side and class (`all` too): rows, token lengths of question and answer
    (reasoning included when the config has it), answer-letter counts, distinct-1/2
    (distinct word uni-/bigrams over all words of the answers, reasoning included, on a
    seeded sample of at most 1,000 rows per group, so that groups of any size compare)."""

    config: str
    side: str
    label: str
    rows: int
    question_tokens_mean: float
    answer_tokens_mean: float
    answer_tokens_p50: float
    answer_tokens_p95: float
    letters: dict[str, int]
    distinct_1: float
    distinct_2: float


@dataclass
class YieldRow:
    """A model split's generation per class (from the model-splits stage's report and the
    `failures` config): samples = kept + failed, and the failures by reason kind and by
    their most common reasons."""

    config: str
    label: str
    samples: int
    kept: int
    yield_: float
    failures_by_kind: dict[str, int]
    top_reasons: dict[str, int]


@dataclass
class VideoStats:
    """Per side (train, test, held_out, `all`) and class: source videos, clips, hours of
    source video and of clips, clips per source (mean and max)."""

    side: str
    label: str
    videos: int
    clips: int
    source_hours: float
    clip_hours: float
    clips_per_source: float
    max_clips_per_source: int
