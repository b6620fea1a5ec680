"""The one pipeline every run goes through: plan -> generate -> judge -> store -> analyse.

`plan` turns tasks into sample requests with one seeding scheme; `run` generates what the store
lacks and judges what it has not judged, storing each sample and each judgement the moment it is
known (so any run resumes sample by sample); `summary` reads a run back as pass rates, outcomes
and flags, whatever judged it. `slmlab eval` and every study compose these.
"""
