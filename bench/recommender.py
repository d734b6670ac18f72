"""Speed: ms per user of the daemon's `Recommender.rank` vs the per-user SVM (arxiv-sanity-lite).

    PYTHONPATH=. .venv/bin/python bench/recommender.py [--data DIR] [--users 300] [--svm-users 30]

Uses CiteULike-a coldstart/ (3,396 candidates); prints one Markdown row per method and the ratio.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import numpy as np
from sklearn.svm import LinearSVC

from recommender import Feedback, Like, Recommender, RecommenderConfig
from recommender.evaluate import asl_vectorizer, load_ids, load_items, load_pairs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/citeulike-a-dev")
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--svm-users", type=int, default=30)
    a = ap.parse_args()
    docs = load_items(f"{a.data}/items.jsonl")
    train = load_pairs(f"{a.data}/coldstart/train.tsv")
    cand_ids = set(load_ids(f"{a.data}/coldstart/candidates.txt"))
    cands = [d for d in docs if d.id in cand_ids]
    libs = [Feedback(u, likes=tuple(Like(i) for i in v)) for u, v in train.items()]
    users = libs[: a.users]

    rec = Recommender(RecommenderConfig())
    t0 = time.perf_counter()
    rec.fit(docs, libs)
    fit_s = time.perf_counter() - t0
    known = {d.id: d for d in docs}
    t0 = time.perf_counter()
    rec.rank(cands, users, k=10, now=datetime.now(UTC), known=known)
    ms_daemon = 1000 * (time.perf_counter() - t0) / len(users)

    index = {d.id: i for i, d in enumerate(docs)}
    texts = [f"{d.title}. {d.abstract} {' '.join(d.authors)}" for d in docs]
    x = asl_vectorizer().fit_transform(texts).tocsr()
    xc = x[[index[d.id] for d in cands]]
    t0 = time.perf_counter()
    for fb in libs[: a.svm_users]:
        y = np.zeros(x.shape[0], dtype=np.int8)
        y[[index[lk.doc_id] for lk in fb.likes]] = 1
        clf = LinearSVC(class_weight="balanced", max_iter=10000, tol=1e-6, C=0.01)
        clf.fit(x, y)
        clf.decision_function(xc)
    ms_svm = 1000 * (time.perf_counter() - t0) / a.svm_users

    print("| method | users timed | ms/user | fit s |")
    print("|---|---|---|---|")
    row = f"| {len(users)} | {ms_daemon:.2f} | {fit_s:.1f} |"
    print("| paperwire (daemon, k=10, with explanations) " + row)
    print(f"| asl-svm (LinearSVC per user) | {a.svm_users} | {ms_svm:.1f} | — |")
    print(f"\nspeed-up: {ms_svm / ms_daemon:.0f}× per user")


if __name__ == "__main__":
    main()
