"""Speed and size of the daemon's recommender vs the per-user SVM (arxiv-sanity-lite).

    .venv/bin/python -m bench.ranking [--data DIR] [--users 2702] [--svm-users 300]

Uses CiteULike-a coldstart/ (16,980 papers, 3,396 candidates). Fits the default `Recommender`
(interest shares on) on every paper and every library (as the daemon does), then times
`rank` on all users in one call — the daemon's path (k=10, explanations) and the eval's path
(k=100, no explanations) — and a LinearSVC(C=0.01, balanced) per user on the
arxiv-sanity-lite features (fit + score, which is that method's per-user cost). Prints a
Markdown table, the speed ratio, the fit time, the state size (`len(dumps())`) and the peak
RSS of the process.
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import UTC, datetime

import numpy as np
from sklearn.svm import LinearSVC

from bench.daily import DATA
from recommender import Feedback, Like, Recommender, RecommenderConfig
from recommender.evaluate import asl_vectorizer, load_ids, load_items, load_pairs


def _best_of(runs: int, fn: object) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--data", default=str(DATA), help="the CiteULike-a folder (../shared/data)")
    ap.add_argument("--users", type=int, default=0, help="0 = every user with a library")
    ap.add_argument("--svm-users", type=int, default=300, help="users ranked by asl's per-user SVM")
    ap.add_argument("--runs", type=int, default=3, help="rank timings: best of this many")
    a = ap.parse_args()
    docs = load_items(f"{a.data}/items.jsonl")
    train = load_pairs(f"{a.data}/coldstart/train.tsv")
    cand_ids = set(load_ids(f"{a.data}/coldstart/candidates.txt"))
    cands = [d for d in docs if d.id in cand_ids]
    libs = [Feedback(u, likes=tuple(Like(i) for i in v)) for u, v in train.items()]
    users = libs[: a.users] if a.users else libs

    rec = Recommender(RecommenderConfig())
    t0 = time.perf_counter()
    rec.fit(docs, libs)
    fit_s = time.perf_counter() - t0
    state = rec.dumps()
    t0 = time.perf_counter()
    rec = Recommender.loads(state)
    load_s = time.perf_counter() - t0
    known = {d.id: d for d in docs}
    now = datetime.now(UTC)

    def daemon() -> None:
        rec.rank(cands, users, k=10, now=now, known=known)

    def eval_path() -> None:
        rec.rank(cands, users, k=100, now=now, known=known, explain=False)

    ms_daemon = 1000 * _best_of(a.runs, daemon) / len(users)
    ms_eval = 1000 * _best_of(a.runs, eval_path) / len(users)

    index = {d.id: i for i, d in enumerate(docs)}
    texts = [f"{d.title}. {d.abstract} {' '.join(d.authors)}" for d in docs]
    x = asl_vectorizer().fit_transform(texts).tocsr()
    xc = x[[index[d.id] for d in cands]]
    step = max(1, len(libs) // a.svm_users)
    svm_users = libs[::step][: a.svm_users]
    t0 = time.perf_counter()
    for fb in svm_users:
        y = np.zeros(x.shape[0], dtype=np.int8)
        y[[index[lk.doc_id] for lk in fb.likes]] = 1
        clf = LinearSVC(class_weight="balanced", max_iter=10000, tol=1e-6, C=0.01)
        clf.fit(x, y)
        clf.decision_function(xc)
    ms_svm = 1000 * (time.perf_counter() - t0) / len(svm_users)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print("| method | users timed | ms/user | speed-up vs asl-svm |")
    print("|---|---|---|---|")
    print(
        f"| paperwire, daemon path (k=10, explanations) | {len(users)} | {ms_daemon:.3f} "
        f"| {ms_svm / ms_daemon:.0f}× |"
    )
    print(
        f"| paperwire, eval path (k=100, explain=False) | {len(users)} | {ms_eval:.3f} "
        f"| {ms_svm / ms_eval:.0f}× |"
    )
    print(f"| asl-svm (LinearSVC per user, fit + score) | {len(svm_users)} | {ms_svm:.1f} | 1× |")
    print()
    print(f"fit: {fit_s:.1f} s on {len(docs)} papers and {len(libs)} libraries")
    print(f"state: {len(state) / 1e6:.1f} MB (len(dumps())), loads() {load_s:.2f} s")
    print(f"peak RSS of this process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
