"""Offline evaluation on CiteULike-style data: items.jsonl + train.tsv/test.tsv (+ candidates).

`evaluate(...)` ranks, for every user with both train and test items, either the given
candidates or every item outside the user's training set, and reports recall@k and nDCG@k
(binary gains) per method, plus wall time per user. Training items are never ranked.

Methods (side by side in one run; `name:key=value:key=value` overrides settings):

* ``tfidf-centroid`` — sklearn TfidfVectorizer defaults + English stop words; cosine to the mean
  of the user's liked vectors.
* ``asl-centroid`` — the arxiv-sanity-lite vectorizer, same centroid scoring.
* ``asl-svm`` — arxiv-sanity-lite: that vectorizer + LinearSVC(C=0.01, class_weight="balanced")
  per user, liked vs every other item. Slow: ``asl-svm:max_users=200`` evaluates a subsample.
* ``zotero`` — zotero-arxiv-daily's scorer with TF-IDF (asl vectorizer) in place of the sentence
  encoder: similarity to each liked paper weighted by 1/(1+log10(rank+1)), newest like first.
  CiteULike has no timestamps, so the order of the user's lines in train.tsv is used as time
  (last line = newest like).
* ``paperwire`` — the daemon's own `Recommender.fit` + `Recommender.rank`, the same code path
  (overrides map onto `RecommenderConfig` fields, e.g. ``paperwire:cf_rank=256``). ms/user is
  the time spent in `rank` (calls of `RANK_CALL_USERS` users, ``explain=False``) per user;
  the fit is reported separately.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

from recommender.engine import ASL_TOKEN_PATTERN, Recommender, RecommenderConfig
from recommender.types import Calibration, Doc, Feedback, Like

DEFAULT_METHODS = ("tfidf-centroid", "asl-centroid", "asl-svm", "zotero", "paperwire")
ANCHORS = ("tfidf-centroid", "asl-centroid", "asl-svm", "zotero")
Progress = Callable[[str, int, int], None]  # (method, users done, users total)
# `paperwire` is timed on calls of `Recommender.rank` with this many users each (the daemon makes
# one call for all due users; per-call work such as vectorising the candidates is shared).
RANK_CALL_USERS = 1000
DEFAULT_SEED = 7  # draws of `max_likes` / `newcomers`


@dataclass
class MethodResult:
    method: str
    n_users: int
    recall: dict[int, float]
    ndcg: dict[int, float]
    ms_per_user: float
    fit_seconds: float
    calibration: Calibration | None = None  # paperwire: what its fit chose from held-out likes

    def to_dict(self) -> dict[str, Any]:
        out = {
            "method": self.method,
            "n_users": self.n_users,
            "recall": {str(k): v for k, v in self.recall.items()},
            "ndcg": {str(k): v for k, v in self.ndcg.items()},
            "ms_per_user": self.ms_per_user,
            "fit_seconds": self.fit_seconds,
        }
        if self.calibration is not None:
            c = self.calibration
            out["calibration"] = {
                "profile_prior_likes": c.profile_prior_likes,
                "text_weight": c.text_weight,
                "users": c.users,
                "objective": None if math.isnan(c.objective) else c.objective,
            }
        return out


@dataclass
class EvalReport:
    ks: tuple[int, ...]
    n_users: int
    n_candidates: int | None  # None: every item outside the user's training set
    results: list[MethodResult] = field(default_factory=list)
    data: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ks": list(self.ks),
            "n_users": self.n_users,
            "n_candidates": self.n_candidates,
            "data": self.data,
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


# ----------------------------------------------------------------------------- loading
class DataError(ValueError):
    """An eval input that cannot be read (the message names the file and line), or a method
    that does not exist."""


def check_methods(methods: Sequence[str]) -> None:
    """DataError for a method spec naming no ranker (before any data is read or ranked)."""
    for spec in methods:
        name, _ = parse_method(spec)
        if name not in (*ANCHORS, "paperwire"):
            raise DataError(
                f"unknown method {name!r}: the methods are {', '.join(DEFAULT_METHODS)}"
            )


def load_items(path: str | Path) -> list[Doc]:
    docs = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                o = json.loads(line)
                item_id = str(o["id"])
            except (ValueError, KeyError, TypeError) as e:
                what = "no 'id'" if isinstance(e, KeyError | TypeError) else f"not JSON ({e})"
                raise DataError(
                    f"{path}:{n}: {what}; each line is {{id, title, abstract, authors}}"
                ) from None
            docs.append(
                Doc(
                    id=item_id,
                    title=o.get("title") or "",
                    abstract=o.get("abstract") or "",
                    authors=tuple(o.get("authors") or ()),
                )
            )
    return docs


def load_pairs(path: str | Path) -> dict[str, list[str]]:
    """user → items in file order (duplicates dropped)."""
    out: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2:
                lst = out.setdefault(parts[0], [])
                if parts[1] not in lst:
                    lst.append(parts[1])
    return out


def load_ids(path: str | Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [ln.strip() for ln in fh if ln.strip()]


# ----------------------------------------------------------------------------- metrics
def recall_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    if not relevant:
        return 0.0
    return sum(1 for i in ranked[:k] if i in relevant) / len(relevant)


def ndcg_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(r + 2) for r, i in enumerate(ranked[:k]) if i in relevant)
    ideal = sum(1.0 / math.log2(r + 2) for r in range(min(len(relevant), k)))
    return dcg / ideal


# ----------------------------------------------------------------------------- methods
def parse_method(spec: str) -> tuple[str, dict[str, str]]:
    """ "paperwire:coliked_weight=0.5:max_interests=2" → ("paperwire", {...})."""
    name, _, rest = spec.partition(":")
    opts: dict[str, str] = {}
    for part in rest.split(":") if rest else []:
        key, _, value = part.partition("=")
        opts[key.strip()] = value.strip()
    return name.strip(), opts


def _coerce(value: str, current: Any) -> Any:
    if value.lower() in ("none", "null"):
        return None
    if isinstance(current, bool):
        return value.lower() in ("1", "true", "yes")
    if isinstance(current, tuple):
        return tuple(int(v) for v in value.replace("-", " ").split())  # ngram_range=1-2
    if isinstance(current, int) and not isinstance(current, bool):
        return float(value) if "." in value else int(value)
    if isinstance(current, float):
        return float(value)
    for number in (int, float):  # a field whose default is None: 3, 0.5, inf
        try:
            return number(value)
        except ValueError:
            pass
    return value


def config_from(
    opts: Mapping[str, str], base: RecommenderConfig | None = None
) -> RecommenderConfig:
    base = base or RecommenderConfig()
    known = {f.name for f in dataclasses.fields(base)}
    changes = {}
    for key, value in opts.items():
        if key == "max_users":
            continue
        if key not in known:
            raise ValueError(f"unknown RecommenderConfig field: {key}")
        changes[key] = _coerce(value, getattr(base, key))
    return dataclasses.replace(base, **changes)


def _doc_text(d: Doc, authors: bool) -> str:
    text = f"{d.title}. {d.abstract}" if d.abstract else d.title
    if authors and d.authors:
        text += " " + " ".join(d.authors)
    return text


def asl_vectorizer() -> TfidfVectorizer:
    return TfidfVectorizer(
        max_features=20000,
        min_df=5,
        max_df=0.1,
        ngram_range=(1, 2),
        sublinear_tf=True,
        stop_words="english",
        token_pattern=ASL_TOKEN_PATTERN,
        strip_accents="unicode",
        dtype=np.float32,
    )


def _top(scores: np.ndarray, banned: Iterable[int], k: int) -> list[int]:
    s = scores.astype(np.float64, copy=True)
    ban = list(banned)
    if ban:
        s[ban] = -np.inf
    k = min(k, int(np.isfinite(s).sum()))
    if k <= 0:
        return []
    top = np.argpartition(-s, k - 1)[:k]
    return [int(i) for i in top[np.argsort(-s[top], kind="stable")]]


@dataclass
class _Task:
    docs: list[Doc]
    index: dict[str, int]
    train: dict[str, list[str]]
    users: list[str]
    cand_rows: np.ndarray  # rows of docs that may be ranked
    kmax: int


def _rank_profiles(
    name: str,
    task: _Task,
    x: sp.csr_matrix,
    weights: Callable[[list[str]], np.ndarray],
    users: list[str],
    progress: Progress | None,
    batch: int = 256,
) -> dict[str, list[str]]:
    """Centroid-style scoring: profile = Σ w_i x_i; score = cosine to the candidates."""
    xc_t = x[task.cand_rows].T.tocsr()
    pos = {int(r): p for p, r in enumerate(task.cand_rows)}
    out: dict[str, list[str]] = {}
    for start in range(0, len(users), batch):
        us = users[start : start + batch]
        rows, cols, vals = [], [], []
        for b, u in enumerate(us):
            liked = [i for i in task.train[u] if i in task.index]
            w = weights(liked)
            for i, wi in zip(liked, w, strict=True):
                rows.append(b)
                cols.append(task.index[i])
                vals.append(float(wi))
        r = sp.csr_matrix((vals, (rows, cols)), shape=(len(us), x.shape[0]), dtype=np.float32)
        prof = normalize(r @ x)
        scores = np.asarray((prof @ xc_t).todense())
        for b, u in enumerate(us):
            banned = [pos[task.index[i]] for i in task.train[u] if task.index.get(i, -1) in pos]
            top = _top(scores[b], banned, task.kmax)
            out[u] = [task.docs[int(task.cand_rows[j])].id for j in top]
        if progress:
            progress(name, min(start + batch, len(users)), len(users))
    return out


def _uniform(liked: list[str]) -> np.ndarray:
    return np.ones(len(liked))


def _zotero_weights(liked: list[str]) -> np.ndarray:
    # liked is oldest → newest (train.tsv order); zotero ranks newest first
    n = len(liked)
    r = np.arange(n)[::-1]  # newest gets rank 0
    w = 1.0 / (1.0 + np.log10(r + 1.0))
    weights: np.ndarray = w / w.sum()
    return weights


def _run_svm(
    name: str, task: _Task, x: sp.csr_matrix, users: list[str], progress: Progress | None
) -> dict[str, list[str]]:
    xc = x[task.cand_rows]
    pos = {int(r): p for p, r in enumerate(task.cand_rows)}
    out: dict[str, list[str]] = {}
    for n, u in enumerate(users):
        y = np.zeros(x.shape[0], dtype=np.int8)
        liked_rows = [task.index[i] for i in task.train[u] if i in task.index]
        y[liked_rows] = 1
        clf = LinearSVC(class_weight="balanced", verbose=0, max_iter=10000, tol=1e-6, C=0.01)
        clf.fit(x, y)
        s = clf.decision_function(xc)
        banned = [pos[r] for r in liked_rows if r in pos]
        out[u] = [task.docs[int(task.cand_rows[j])].id for j in _top(s, banned, task.kmax)]
        if progress and (n + 1) % 10 == 0:
            progress(name, n + 1, len(users))
    return out


def _run_paperwire(
    name: str,
    opts: Mapping[str, str],
    task: _Task,
    users: list[str],
    progress: Progress | None,
) -> tuple[dict[str, list[str]], float, float, Calibration | None]:
    cfg = config_from(opts)
    libraries = [
        Feedback(user_id=u, likes=tuple(Like(i) for i in items)) for u, items in task.train.items()
    ]
    rec = Recommender(cfg)
    t0 = time.perf_counter()
    rec.fit(task.docs, libraries)
    fit_s = time.perf_counter() - t0
    known = {d.id: d for d in task.docs}
    cands = [task.docs[int(r)] for r in task.cand_rows]
    now = datetime.now(UTC)
    out: dict[str, list[str]] = {}
    elapsed = 0.0
    step = RANK_CALL_USERS
    # What the harness holds (every library, the data, other methods' matrices) lives until the
    # end: frozen, it stays out of the garbage collector's full sweeps, so `rank` is timed on
    # its own allocations and not on what this process happened to load before it.
    gc.collect()
    gc.freeze()
    try:
        for start in range(0, len(users), step):
            us = users[start : start + step]
            fbs = [Feedback(user_id=u, likes=tuple(Like(i) for i in task.train[u])) for u in us]
            t0 = time.perf_counter()  # only `rank` is timed (fit and Feedback building are not)
            ranked = rec.rank(cands, fbs, k=task.kmax, now=now, known=known, explain=False)
            elapsed += time.perf_counter() - t0
            for u in us:
                out[u] = [r.doc_id for r in ranked[u]]
            if progress:
                progress(name, min(start + step, len(users)), len(users))
    finally:
        gc.unfreeze()
    return out, elapsed, fit_s, rec.calibration


# ----------------------------------------------------------------------------- main
def evaluate(
    items_path: str | Path,
    train_path: str | Path,
    test_path: str | Path,
    *,
    candidates_path: str | Path | None = None,
    ks: Sequence[int] = (10, 50, 100),
    methods: Sequence[str] = DEFAULT_METHODS,
    max_users: int | None = None,
    max_likes: int | None = None,
    seed: int = DEFAULT_SEED,
    newcomers: int | None = None,
    rankings_out: str | Path | None = None,
    progress: Progress | None = None,
) -> EvalReport:
    """Rank for every user with train and test items; report recall@k / nDCG@k per method.

    `max_users` evaluates a deterministic subsample (every n-th user) for all methods; a
    method spec may also carry its own ``max_users=`` (used for the slow ``asl-svm``).
    `max_likes` keeps a seeded random `max_likes` of each user's training likes (a young
    install: everyone liked only a few papers so far); with `newcomers` = K, only K random
    evaluated users are cut down so (newcomers in a mature install, whose libraries the others
    keep whole) and only they are scored. Test likes are never changed; `seed` drives both.
    `rankings_out` writes user<TAB>item<TAB>rank (1-based) for the top max(ks); with several
    methods, one file per method (``name.METHOD.tsv``)."""
    ks = tuple(sorted(set(int(k) for k in ks)))
    check_methods(methods)
    docs = load_items(items_path)
    index = {d.id: i for i, d in enumerate(docs)}
    train = load_pairs(train_path)
    test = {u: set(v) for u, v in load_pairs(test_path).items()}
    if candidates_path is not None:
        cand_ids = [c for c in load_ids(candidates_path) if c in index]
        cand_rows = np.array(sorted({index[c] for c in cand_ids}), dtype=np.int64)
    else:
        cand_rows = np.arange(len(docs), dtype=np.int64)
    users = _subsample(sorted(u for u in train if test.get(u)), max_users)
    train, users = _small_libraries(train, users, max_likes, newcomers, seed)
    task = _Task(docs, index, train, users, cand_rows, max(ks))
    report = EvalReport(
        ks=ks,
        n_users=len(users),
        n_candidates=len(cand_rows) if candidates_path is not None else None,
        data={
            "items": str(items_path),
            "train": str(train_path),
            "test": str(test_path),
            "candidates": str(candidates_path) if candidates_path else "",
            "max_likes": "" if max_likes is None else str(max_likes),
            "newcomers": "" if newcomers is None else str(newcomers),
            "seed": str(seed) if max_likes is not None else "",
        },
    )
    matrices: dict[str, sp.csr_matrix] = {}
    for spec in methods:
        name, opts = parse_method(spec)
        m_users = _subsample(users, int(opts["max_users"])) if "max_users" in opts else users
        calib = None
        if name in ANCHORS:
            x, fit_s = _anchor_matrix(name, docs, matrices)
            t1 = time.perf_counter()
            if name == "asl-svm":
                ranked = _run_svm(spec, task, x, m_users, progress)
            else:
                w = _zotero_weights if name == "zotero" else _uniform
                ranked = _rank_profiles(spec, task, x, w, m_users, progress)
            elapsed = time.perf_counter() - t1
        elif name == "paperwire":
            ranked, elapsed, fit_s, calib = _run_paperwire(spec, opts, task, m_users, progress)
        else:  # check_methods refused it already
            raise DataError(f"unknown method {name!r}")
        result = _score(spec, ranked, m_users, test, ks, elapsed, fit_s)
        result.calibration = calib
        report.results.append(result)
        if rankings_out is not None:
            path = Path(rankings_out)
            if len(methods) > 1:
                safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in spec)
                path = path.with_name(f"{path.stem}.{safe}{path.suffix or '.tsv'}")
            write_rankings(path, ranked, m_users, max(ks))
    return report


def _anchor_matrix(
    name: str, docs: list[Doc], cache: dict[str, sp.csr_matrix]
) -> tuple[sp.csr_matrix, float]:
    """The TF-IDF rows an anchor method scores with (sklearn defaults for ``tfidf-centroid``,
    arxiv-sanity-lite's vectorizer for the others; made once per run) and the seconds it took
    now (0 when made for an earlier method)."""
    key = "tfidf" if name == "tfidf-centroid" else "asl"
    t0 = time.perf_counter()
    if key not in cache:
        vec = (
            TfidfVectorizer(stop_words="english", dtype=np.float32)
            if key == "tfidf"
            else asl_vectorizer()
        )
        texts = [_doc_text(d, key == "asl") for d in docs]
        try:
            cache[key] = vec.fit_transform(texts).tocsr()
        except ValueError:  # tiny data: min_df/max_df prune everything
            vec.set_params(min_df=1, max_df=1.0)
            cache[key] = vec.fit_transform(texts).tocsr()
    return cache[key], time.perf_counter() - t0


def _small_libraries(
    train: dict[str, list[str]],
    users: list[str],
    max_likes: int | None,
    newcomers: int | None,
    seed: int,
) -> tuple[dict[str, list[str]], list[str]]:
    """(training likes, users to score) after `max_likes` / `newcomers` (see `evaluate`)."""
    if newcomers is not None:
        if max_likes is None:
            raise ValueError("newcomers: give max_likes too (the likes each newcomer keeps)")
        users = _draw_users(users, newcomers, seed)
        return {**train, **_cap_likes({u: train[u] for u in users}, max_likes, seed)}, users
    if max_likes is not None:
        return _cap_likes(train, max_likes, seed), users
    return train, users


def _cap_likes(train: Mapping[str, list[str]], n: int, seed: int) -> dict[str, list[str]]:
    """A seeded random `n` of every user's likes, in their original order. A user's draw
    depends only on (seed, user id, their likes): not on the other users or their order."""
    if n < 1:
        raise ValueError(f"max_likes must be ≥ 1, not {n}")
    out = {}
    for u, items in train.items():
        if len(items) > n:
            rng = np.random.default_rng([seed, zlib.crc32(u.encode("utf-8"))])
            items = [items[i] for i in sorted(rng.choice(len(items), n, replace=False))]
        out[u] = list(items)
    return out


def _draw_users(users: list[str], k: int, seed: int) -> list[str]:
    """A seeded random `k` of `users` (sorted ids), in id order."""
    if k < 1:
        raise ValueError(f"newcomers must be ≥ 1, not {k}")
    if k >= len(users):
        return list(users)
    chosen = np.random.default_rng(seed).choice(len(users), k, replace=False)
    return [users[i] for i in sorted(chosen)]


def _subsample(users: list[str], n: int | None) -> list[str]:
    if n is None or n >= len(users):
        return users
    step = len(users) / n
    return [users[int(i * step)] for i in range(n)]


def _score(
    method: str,
    ranked: Mapping[str, list[str]],
    users: list[str],
    test: Mapping[str, set[str]],
    ks: tuple[int, ...],
    elapsed: float,
    fit_s: float,
) -> MethodResult:
    n = max(1, len(users))
    recall = {k: sum(recall_at(ranked.get(u, []), test[u], k) for u in users) / n for k in ks}
    ndcg = {k: sum(ndcg_at(ranked.get(u, []), test[u], k) for u in users) / n for k in ks}
    return MethodResult(method, len(users), recall, ndcg, 1000.0 * elapsed / n, fit_s)


def write_rankings(
    path: str | Path, ranked: Mapping[str, list[str]], users: Sequence[str], k: int
) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for u in users:
            for r, item in enumerate(ranked.get(u, [])[:k], start=1):
                fh.write(f"{u}\t{item}\t{r}\n")


def format_table(report: EvalReport) -> str:
    """Plain-text table (also valid Markdown)."""
    head = ["method", "users"]
    head += [f"recall@{k}" for k in report.ks] + [f"nDCG@{k}" for k in report.ks]
    head += ["ms/user", "fit s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in report.results:
        cells = [r.method, str(r.n_users)]
        cells += [f"{r.recall[k]:.4f}" for k in report.ks]
        cells += [f"{r.ndcg[k]:.4f}" for k in report.ks]
        cells += [f"{r.ms_per_user:.2f}", f"{r.fit_seconds:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    for r in report.results:
        c = r.calibration
        if c is not None:
            how = f"measured on {c.users} libraries" if c.users else "not measured"
            lines.append(
                f"\n{r.method}: profile_prior_likes={c.profile_prior_likes:g}, "
                f"text_weight={c.text_weight:g} ({how})"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m recommender.evaluate` — same options as `paperwire eval`."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m recommender.evaluate")
    ap.add_argument("--items", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--candidates")
    ap.add_argument("--k", default="10,50,100")
    ap.add_argument("--method", help="comma-separated; e.g. asl-svm:max_users=200,paperwire")
    ap.add_argument("--max-users", type=int)
    ap.add_argument("--max-likes", type=int, help="keep a seeded random N of each user's likes")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help="for --max-likes/--newcomers")
    ap.add_argument("--newcomers", type=int, help="cut down (and score) only K random users")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rankings-out")
    a = ap.parse_args(argv)
    methods = a.method.split(",") if a.method else list(DEFAULT_METHODS)

    def prog(m: str, done: int, total: int) -> None:
        print(f"\r{m}: {done}/{total}", end="", file=sys.stderr, flush=True)

    rep = evaluate(
        a.items,
        a.train,
        a.test,
        candidates_path=a.candidates,
        ks=[int(k) for k in a.k.split(",")],
        methods=methods,
        max_users=a.max_users,
        max_likes=a.max_likes,
        seed=a.seed,
        newcomers=a.newcomers,
        rankings_out=a.rankings_out,
        progress=prog,
    )
    print(file=sys.stderr)
    print(rep.to_json() if a.json else format_table(rep))


if __name__ == "__main__":
    main()
