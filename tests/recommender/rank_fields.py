"""Fit and rank the interest-topic sample, print every recommendation as JSON lines.

`python -m tests.recommender.rank_fields` — the determinism test runs it under different BLAS
thread counts and compares the output byte for byte. It walks the whole ranking path: fitting
(TF-IDF, SVD, ridge map, interest topics), profiles with likes, dislikes, follows and mutes,
one and several interests, the text fallback, selection and explanations; the calibration at
fit time (held-out likes of whole and of cut-down libraries) and profiles that lean on the
factors predicted from the text, with TF-IDF blended into the scores.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import UTC, datetime

from recommender import Doc, Feedback, Like, Recommender, RecommenderConfig
from tests.recommender.conftest import DATA

FIELDS_DATA = DATA / "fields"
NOW = datetime(2024, 5, 1, tzinfo=UTC)


def _corpus() -> dict[str, Doc]:
    out = {}
    for line in (FIELDS_DATA / "items.jsonl").read_text(encoding="utf-8").splitlines():
        o = json.loads(line)
        out[o["id"]] = Doc(o["id"], o["title"], o.get("abstract") or "", tuple(o["authors"]))
    return out


def _libraries() -> list[Feedback]:
    by_user: dict[str, list[str]] = {}
    for line in (FIELDS_DATA / "likes.tsv").read_text(encoding="utf-8").splitlines():
        u, i = line.split()
        by_user.setdefault(u, []).append(i)
    return [Feedback(u, likes=tuple(Like(i) for i in items)) for u, items in by_user.items()]


def readers(corpus: dict[str, Doc], libraries: list[Feedback]) -> list[Feedback]:
    """Every library as a reader, plus mixed readers with dislikes, follows and mutes."""
    ids = sorted(corpus)
    mixed = [
        Feedback(
            f"mixed-{n}",
            likes=tuple(Like(i) for i in ids[n : n + 40 : 4]),
            dislikes=tuple(ids[n + 41 : n + 45]),
            keywords=("network",) if n % 2 else (),
            authors=(corpus[ids[n]].authors[:1] if corpus[ids[n]].authors else ()),
            muted_keywords=("protein",) if n % 3 == 0 else (),
        )
        for n in range(0, 400, 37)
    ]
    return [*libraries, *mixed, Feedback("newcomer"), Feedback("follower", keywords=("gene",))]


# a young install: every library cut to its first likes (the calibration then measures other
# variants than on the whole libraries)
YOUNG_LIKES = 3


def main() -> None:
    corpus, libraries = _corpus(), _libraries()
    young = [dataclasses.replace(fb, likes=fb.likes[:YOUNG_LIKES]) for fb in libraries]
    users = readers(corpus, libraries)
    cands = list(corpus.values())
    for name, cfg, libs in [
        ("cf-map", RecommenderConfig(), libraries),  # calibrated: learned + predicted factors
        ("young", RecommenderConfig(), young),
        # profiles of predicted factors only, TF-IDF blended into the scores
        ("blend", RecommenderConfig(profile_prior_likes=math.inf, text_weight=0.3), libraries),
        ("text", RecommenderConfig(method="tfidf-centroid", max_interests=3), libraries),
    ]:
        rec = Recommender(cfg)
        rec.fit(cands, libs)
        print(json.dumps([name, "calibration", rec.calibration]))
        ranked = rec.rank(cands, users, k=10, now=NOW, known=corpus)
        for u in users:
            for r in ranked[u.user_id]:
                row = [name, u.user_id, r.doc_id, r.score, r.kind, r.reason, r.closest_liked_id]
                print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main()
