"""Linear probes on captured activations against outcomes, with the controls that keep them honest.

What the seed reported ("passed and failed generations separate linearly along dims 810 and 457")
is checked here the way a reviewer would:
- probes are cross-validated with folds grouped by task, so samples of one task never sit on both
  sides of a split (otherwise a probe can recognise the task instead of the outcome);
- every score has a bootstrap interval over tasks, and is set against the same probe on shuffled
  labels (a permutation test): in a few hundred samples of 900 dimensions a linear boundary can be
  found for almost anything, so separability alone is not a finding;
- the "top two dimensions" are chosen inside each training fold before the held-out fold is scored
  (choosing them on all the data and then scoring them is optimistic; that number is shown too, labelled),
  and compared with random dimension pairs;
- margins are distances to the two-dimensional boundary in activation units (the seed's "4.5 units").

scikit-learn gives the models and the folds; the controls and the grouping are the part written here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import rankdata
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

MIN_PER_CLASS = 8  # fewer samples of either class than this: no probe is fitted, and the report says so
PROBE_C = 0.1  # L2 strength on standardised activations: more dimensions than samples needs it
# Classes are weighted to balance: with 80% passed, an unweighted boundary hugs the failures.
# liblinear: on a few hundred samples it fits in milliseconds where lbfgs takes tens (measured);
# it shuffles internally, hence a fixed random_state: the same data gives the same numbers.


def auc(scores: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U), ties counted half."""
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def balanced_accuracy(scores: np.ndarray, y: np.ndarray) -> float:
    predicted = scores > 0
    return float((predicted[y == 1].mean() + (~predicted[y == 0]).mean()) / 2)


def _probe_model(C: float = PROBE_C):
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(C=C, solver="liblinear", class_weight="balanced", max_iter=5000, random_state=0),
    )


def grouped_folds(
    y: np.ndarray, groups: np.ndarray, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    n_groups = len(set(groups.tolist()))
    splitter = StratifiedGroupKFold(n_splits=max(2, min(folds, n_groups)), shuffle=True, random_state=seed)
    return [(train, test) for train, test in splitter.split(np.zeros(len(y)), y, groups)
            if 0 < y[train].sum() < len(train)]  # fmt: skip


def out_of_fold_scores(X: np.ndarray, y: np.ndarray, splits, select=None) -> np.ndarray:
    """Decision scores of each sample from a probe that never saw its task.

    `select(X_train, y_train) -> columns`: chooses features on the training fold only."""
    scores = np.full(len(y), np.nan)
    for train, test in splits:
        columns = select(X[train], y[train]) if select is not None else slice(None)
        model = _probe_model().fit(X[train][:, columns], y[train])
        scores[test] = model.decision_function(X[test][:, columns])
    return scores


def _bootstrap_by_group(scores, y, groups, n_boot: int, seed: int) -> tuple[tuple, tuple]:
    """95% intervals of balanced accuracy and AUC, resampling tasks (the unit that was sampled)."""
    rng = np.random.default_rng(seed)
    names = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in names]
    bas, aucs = [], []
    for _ in range(n_boot):
        rows = np.concatenate([members[i] for i in rng.integers(0, len(names), len(names))])
        if 0 < y[rows].sum() < len(rows):
            bas.append(balanced_accuracy(scores[rows], y[rows]))
            aucs.append(auc(scores[rows], y[rows]))
    if not bas:
        return (float("nan"),) * 2, (float("nan"),) * 2
    return tuple(np.quantile(bas, [0.025, 0.975]).tolist()), tuple(np.quantile(aucs, [0.025, 0.975]).tolist())


@dataclass
class ProbeScore:
    """A cross-validated probe and its shuffled-label control."""

    n: int
    n_positive: int
    folds: int
    balanced_accuracy: float
    balanced_accuracy_ci: tuple[float, float]
    auc: float
    auc_ci: tuple[float, float]
    shuffled_auc_mean: float
    shuffled_auc_p95: float
    shuffled_balanced_accuracy_mean: float
    p_value: float  # share of label shuffles whose AUC reached the real one (permutation test)
    null_aucs: list[float] = field(
        default_factory=list, repr=False
    )  # one per shuffle, same shuffles every layer

    @property
    def beats_control(self) -> bool:
        return self.p_value <= 0.05  # permutation p = (hits + 1) / (shuffles + 1): 19 shuffles can reach 0.05

    def describe(self) -> str:
        verdict = "above" if self.beats_control else "NOT above"
        return (f"balanced accuracy {self.balanced_accuracy:.3f} [{self.balanced_accuracy_ci[0]:.3f}, "
                f"{self.balanced_accuracy_ci[1]:.3f}], AUC {self.auc:.3f} [{self.auc_ci[0]:.3f}, {self.auc_ci[1]:.3f}]; "
                f"shuffled labels: AUC {self.shuffled_auc_mean:.3f} (95th pct {self.shuffled_auc_p95:.3f}), "
                f"p = {self.p_value:.3f}: {verdict} chance")  # fmt: skip


def enough(y: np.ndarray) -> bool:
    return min(int(y.sum()), len(y) - int(y.sum())) >= MIN_PER_CLASS


def probe(X, y, groups, folds: int = 5, shuffles: int = 20, seed: int = 0, select=None,
          n_boot: int = 500) -> ProbeScore | None:  # fmt: skip
    """Cross-validated probe of y (1 = passed) from X, or None when a class has too few samples."""
    y = np.asarray(y, dtype=int)
    groups = np.asarray(groups)
    if not enough(y):
        return None
    splits = grouped_folds(y, groups, folds, seed)
    scores = out_of_fold_scores(X, y, splits, select)
    ba_ci, auc_ci = _bootstrap_by_group(scores, y, groups, n_boot, seed)
    real_auc = auc(scores, y)
    rng = np.random.default_rng(seed + 1)  # the same shuffles at every layer, for the family-wise test
    null_auc, null_ba = [], []
    for _ in range(shuffles):
        shuffled = permute_by_task(y, groups, rng)
        null_splits = grouped_folds(shuffled, groups, folds, seed)
        null_scores = out_of_fold_scores(X, shuffled, null_splits, select)
        null_auc.append(auc(null_scores, shuffled))
        null_ba.append(balanced_accuracy(null_scores, shuffled))
    null_auc = np.array(null_auc) if null_auc else np.array([0.5])
    return ProbeScore(
        n=len(y), n_positive=int(y.sum()), folds=len(splits),
        balanced_accuracy=balanced_accuracy(scores, y), balanced_accuracy_ci=ba_ci, auc=real_auc, auc_ci=auc_ci,
        shuffled_auc_mean=float(null_auc.mean()), shuffled_auc_p95=float(np.quantile(null_auc, 0.95)),
        shuffled_balanced_accuracy_mean=float(np.mean(null_ba)) if null_ba else 0.5,
        p_value=float((np.sum(null_auc >= real_auc) + 1) / (len(null_auc) + 1)), null_aucs=null_auc.tolist(),
    )  # fmt: skip


def permute_by_task(y: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shuffled labels that keep each task's samples together: whole tasks' label blocks are swapped
    between tasks with as many samples. Samples of one task share their outcome more often than
    chance; shuffling single samples would break that and give a null too narrow (too many "findings")."""
    shuffled = y.copy()
    blocks: dict[int, list[np.ndarray]] = {}
    for name in np.unique(groups):
        members = np.flatnonzero(groups == name)
        blocks.setdefault(len(members), []).append(members)
    for same_size in blocks.values():
        for target, source in zip(same_size, rng.permutation(len(same_size)), strict=True):
            shuffled[target] = y[same_size[source]]
    return shuffled


def best_layer_p_value(sweep: list) -> tuple[int, float] | None:
    """(best layer, family-wise p): the best AUC of all layers against the best AUC of all layers
    under each shuffle (a max-statistic permutation test), so picking the best of many layers is paid for."""
    scored = [(layer, s) for layer, s in sweep if s is not None and s.null_aucs]
    if not scored:
        return None
    layer, best = max(scored, key=lambda item: (item[1].auc, -item[0]))
    shuffles = min(len(s.null_aucs) for _, s in scored)
    null_max = np.max([s.null_aucs[:shuffles] for _, s in scored], axis=0)
    return layer, float((np.sum(null_max >= best.auc) + 1) / (shuffles + 1))


# ---- separating dimensions ------------------------------------------------------------------
def effect_sizes(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cohen's d of every dimension, passed minus failed, in pooled standard deviations."""
    a, b = X[y == 1], X[y == 0]
    pooled = np.sqrt(
        ((len(a) - 1) * a.var(0, ddof=1) + (len(b) - 1) * b.var(0, ddof=1)) / max(1, len(a) + len(b) - 2)
    )
    return (a.mean(0) - b.mean(0)) / np.where(pooled > 0, pooled, np.inf)


def top_by_effect(X: np.ndarray, y: np.ndarray, count: int = 2) -> np.ndarray:
    return np.argsort(-np.abs(effect_sizes(X, y)), kind="stable")[:count]


def top_by_sparse_probe(X: np.ndarray, y: np.ndarray, count: int = 10) -> list[tuple[int, float]]:
    """Dimensions an L1 probe keeps, by the size of their (standardised) weight."""
    model = make_pipeline(
        StandardScaler(),
        LogisticRegression(l1_ratio=1.0, solver="liblinear", C=0.05, class_weight="balanced", random_state=0),
    )
    weights = model.fit(X, y)[-1].coef_[0]
    order = [int(i) for i in np.argsort(-np.abs(weights), kind="stable")[:count] if weights[i] != 0]
    return [(i, float(weights[i])) for i in order]


@dataclass
class Margins:
    """The two-dimensional boundary in raw activation units and every sample's signed distance to it
    (positive: the passed side)."""

    dims: tuple[int, int]
    weights: tuple[float, float]
    bias: float
    distances: np.ndarray

    def median_distance(self, y: np.ndarray, passed: bool) -> float:
        chosen = self.distances[y == (1 if passed else 0)]
        return float(np.median(chosen)) if len(chosen) else float("nan")


def margins(X: np.ndarray, y: np.ndarray, dims) -> Margins:
    pair = X[:, list(dims)]
    model = LogisticRegression(
        C=1e4, solver="liblinear", class_weight="balanced", max_iter=5000, random_state=0
    ).fit(pair, y)  # nearly unregularised: raw units
    w, b = model.coef_[0], float(model.intercept_[0])
    norm = float(np.linalg.norm(w)) or 1.0
    return Margins(tuple(int(d) for d in dims), tuple(float(v) for v in w), b, (pair @ w + b) / norm)


def probe_direction(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The full probe's normal in raw activation units (unit length, pointing to the passed side)."""
    model = _probe_model().fit(X, y)
    scaler, logistic = model[0], model[-1]
    raw = logistic.coef_[0] / np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    return raw / (np.linalg.norm(raw) or 1.0)


@dataclass
class PairControl:
    """How the top pair does against random pairs of dimensions, each cross-validated the same way."""

    pair_auc: float
    random_auc_mean: float
    random_auc_p95: float
    share_beaten: float  # share of random pairs with a lower AUC than the top pair


def random_pairs(
    X, y, groups, pair_auc: float, count: int = 30, folds: int = 5, seed: int = 0
) -> PairControl:
    rng = np.random.default_rng(seed)
    splits = grouped_folds(y, groups, folds, seed)
    aucs = []
    for _ in range(count):
        pair = rng.choice(X.shape[1], size=2, replace=False)
        aucs.append(auc(out_of_fold_scores(X[:, pair], y, splits), y))
    aucs = np.array(aucs)
    return PairControl(
        pair_auc, float(aucs.mean()), float(np.quantile(aucs, 0.95)), float(np.mean(aucs < pair_auc))
    )


@dataclass
class LayerAnalysis:
    """Everything found at one layer: the full probe, the top dimensions and their controls."""

    layer: int
    kind: str
    full: ProbeScore
    top_dims: list[tuple[int, float]]  # (dim, Cohen's d), largest |d| first, on all samples
    sparse_dims: list[tuple[int, float]]
    pair: tuple[int, int]
    pair_honest: ProbeScore | None  # the two dims chosen inside each training fold
    pair_fixed_auc: float  # the pair chosen on all data, then cross-validated: optimistic
    pair_control: PairControl
    margins: Margins
    pca: np.ndarray  # [n, 2]
    pca_explained: tuple[float, float]
    direction: np.ndarray  # unit probe normal in activation units, for interventions
    by_failure: dict[str, ProbeScore | None] = field(default_factory=dict)

    def headline(self) -> str:
        a, b = self.pair
        honest = self.pair_honest.auc if self.pair_honest else float("nan")
        return (f"layer {self.layer} ({self.kind}): dims {a} and {b} separate passed from failed with "
                f"cross-validated AUC {honest:.3f} (chosen inside each fold; {self.pair_fixed_auc:.3f} if chosen "
                f"on all data), above {self.pair_control.share_beaten:.0%} of random pairs "
                f"(mean {self.pair_control.random_auc_mean:.3f}); full probe: {self.full.describe()}")  # fmt: skip


def analyse_layer(X, y, groups, layer: int, kind: str, statuses=None, folds: int = 5, shuffles: int = 20,
                  pairs: int = 30, seed: int = 0) -> LayerAnalysis | None:  # fmt: skip
    """The full analysis of one layer; None when a class has too few samples to probe."""
    y = np.asarray(y, dtype=int)
    groups = np.asarray(groups)
    full = probe(X, y, groups, folds, shuffles, seed)
    if full is None:
        return None
    d = effect_sizes(X, y)
    order = np.argsort(-np.abs(d), kind="stable")
    pair = (int(order[0]), int(order[1]))
    honest = probe(X, y, groups, folds, shuffles, seed, select=lambda Xt, yt: top_by_effect(Xt, yt, 2))
    splits = grouped_folds(y, groups, folds, seed)
    fixed_auc = auc(out_of_fold_scores(X[:, list(pair)], y, splits), y)
    projected = PCA(n_components=2, random_state=seed).fit(X)
    analysis = LayerAnalysis(
        layer=layer, kind=kind, full=full, top_dims=[(int(i), float(d[i])) for i in order[:10]],
        sparse_dims=top_by_sparse_probe(X, y), pair=pair, pair_honest=honest, pair_fixed_auc=fixed_auc,
        pair_control=random_pairs(X, y, groups, honest.auc if honest else fixed_auc, pairs, folds, seed),
        margins=margins(X, y, pair), pca=projected.transform(X),
        pca_explained=tuple(float(v) for v in projected.explained_variance_ratio_[:2]),
        direction=probe_direction(X, y),
    )  # fmt: skip
    if statuses is not None:
        statuses = np.asarray(statuses)
        for status in sorted(set(statuses.tolist()) - {"passed"}):
            keep = (statuses == "passed") | (statuses == status)
            analysis.by_failure[status] = probe(X[keep], y[keep], groups[keep], folds, shuffles, seed)
    return analysis


def layer_sweep(load, layers: list[int], y, groups, folds: int = 5, shuffles: int = 5, seed: int = 0):
    """The full probe at every layer (`load(layer)` gives its activations): [(layer, ProbeScore | None)]."""
    return [(layer, probe(load(layer), y, groups, folds, shuffles, seed)) for layer in layers]
