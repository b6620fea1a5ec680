"""The Judge seam: what decides a generated sample's verdict. Each judge writes one typed
`slmlab.judgement.Judgement` per sample; a task names its judge (`Benchmark.judge`).

Judges: `sandbox` (run the code against the task's tests), `math` (the final answer against the
task's), `syntax` (the language's real checker), `collapse` (seeds 003/004's quality class),
`similarity` (sentence BLEU against the task's reference). Adding a judge is one file here that
registers itself, plus its module's name in `slmlab.judge.base.JUDGE_MODULES` (judges are
imported when one is first made, so a config check does not pay for the sandbox or the metrics).
"""

from slmlab.judge.base import JUDGES, Candidate, Judge, JudgeSettings, make_judge, register_judge

__all__ = ["JUDGES", "Candidate", "Judge", "JudgeSettings", "make_judge", "register_judge"]
