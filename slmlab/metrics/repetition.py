"""Generation-level quality flags: empty, truncated, repetitive, mode collapse.

Measured on the text, independent of any tokenizer, so flags compare across models:
- `repetition_ratio`: share of repeated word-level 4-grams, 1 - distinct / total (0 for varied
  text; a loop of one line drives it towards 1). Words and punctuation are split by a regex.
- `period` / `periodic_share`: the shortest unit (1..40 characters) whose back-to-back repeats form
  the end of the text, at least 4 times, and the share of the text those repeats cover (the
  `):):):` and `:::::` tails of seeds 003 and 004).

- `whitespace_tail`: the run of spaces and tabs the text ends with. Periodic tails skip whitespace
  (indentation repeats by nature), but a model that emits only spaces until its budget runs out is
  stuck on one token: the whitespace loops of the small from-scratch models in `slmlab study
  collapse`. A run of at least 32 counts as a periodic tail of its own length.

Thresholds, chosen so that ordinary code, which repeats `self.` or `tri[i][j]` a lot, is not
flagged: no reference solution of HumanEval (164) or MBPP (974) is; the most index-heavy reach a
repetition ratio of 0.60.
- repetitive: repetition_ratio >= 0.65 over at least 8 four-grams, or a periodic tail covering
  >= 25% of the text;
- mode_collapse: the degenerate case: a periodic tail covering >= 50% of the text, or at most 3
  distinct words over at least 20 words.
"""

from __future__ import annotations

import re

NGRAM = 4
MIN_NGRAMS = 8
REPETITIVE_RATIO = 0.65
REPETITIVE_PERIODIC_SHARE = 0.25
COLLAPSE_PERIODIC_SHARE = 0.5
COLLAPSE_MAX_DISTINCT_WORDS = 3
COLLAPSE_MIN_WORDS = 20
MAX_PERIOD = 40
MIN_REPEATS = 4
MIN_WHITESPACE_LOOP = 32  # spaces/tabs in a row: deeper than any real indentation

_WORDS = re.compile(r"\w+|[^\w\s]")


def repetition_ratio(text: str, n: int = NGRAM) -> float:
    words = _WORDS.findall(text)
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def periodic_tail(
    text: str, max_period: int = MAX_PERIOD, min_repeats: int = MIN_REPEATS
) -> tuple[int | None, int]:
    """(period, length of the periodic tail) for the shortest period repeated >= min_repeats times
    at the end of `text` (trailing whitespace ignored); (None, 0) if there is none."""
    body = text.rstrip()
    for period in range(1, min(max_period, len(body) // min_repeats) + 1):
        unit = body[-period:]
        if unit.isspace():
            continue
        end = len(body)
        while end >= period and body[end - period : end] == unit:
            end -= period
        length = len(body) - end
        if length >= period * min_repeats:
            return period, length
    return None, 0


def whitespace_tail(text: str) -> int:
    """Length of the run of spaces and tabs at the end of `text` (0 below MIN_WHITESPACE_LOOP)."""
    run = len(text) - len(text.rstrip(" \t"))
    return run if run >= MIN_WHITESPACE_LOOP else 0


def quality_flags(text: str, finish_reason: str) -> dict:
    """The flags stored with every completion."""
    ratio = repetition_ratio(text)
    n_grams = max(0, len(_WORDS.findall(text)) - NGRAM + 1)
    period, tail = periodic_tail(text)
    share = tail / len(text.rstrip()) if tail else 0.0
    if blank := whitespace_tail(text):
        period, share = 1, max(share, blank / len(text))
    words = _WORDS.findall(text)
    collapse = share >= COLLAPSE_PERIODIC_SHARE or (
        len(words) >= COLLAPSE_MIN_WORDS and len(set(words)) <= COLLAPSE_MAX_DISTINCT_WORDS
    )
    repetitive = (
        collapse
        or share >= REPETITIVE_PERIODIC_SHARE
        or (n_grams >= MIN_NGRAMS and ratio >= REPETITIVE_RATIO)
    )
    return {
        "empty": not text.strip(),
        "truncated": finish_reason == "length",
        "repetitive": repetitive,
        "mode_collapse": collapse,
        "repetition_ratio": round(ratio, 4),
        "period": period,
        "periodic_share": round(share, 4),
    }
