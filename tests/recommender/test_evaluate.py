"""The evaluation harness on a tiny dataset whose metrics are computed by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import recommender.engine as engine
from recommender.evaluate import evaluate, format_table, ndcg_at, recall_at

ITEMS = {
    "1": "apple fruit",
    "2": "apple tart",
    "3": "apple pie",
    "4": "fresh fruit salad",
    "5": "car car engine",
    "6": "car wheel",
    "7": "engine oil",
    "8": "zebra stripes",
}
TRAIN = "u1\t1\nu1\t2\nu2\t5\nu4\t8\n"  # u4 has no test items → not evaluated
TEST = "u1\t3\nu1\t4\nu2\t7\nu3\t1\n"  # u3 has no train items → not evaluated


@pytest.fixture
def tiny(tmp_path: Path) -> dict[str, Path]:
    items = tmp_path / "items.jsonl"
    items.write_text(
        "".join(
            json.dumps({"id": i, "title": t, "abstract": "", "authors": []}) + "\n"
            for i, t in ITEMS.items()
        ),
        encoding="utf-8",
    )
    (tmp_path / "train.tsv").write_text(TRAIN, encoding="utf-8")
    (tmp_path / "test.tsv").write_text(TEST, encoding="utf-8")
    (tmp_path / "candidates.txt").write_text("3\n6\n7\n8\n", encoding="utf-8")
    return {
        "items": items,
        "train": tmp_path / "train.tsv",
        "test": tmp_path / "test.tsv",
        "candidates": tmp_path / "candidates.txt",
        "dir": tmp_path,
    }


def test_metric_functions_by_hand() -> None:
    assert recall_at(["a", "x", "b"], {"a", "b"}, 2) == 0.5
    assert ndcg_at(["x", "a"], {"a"}, 2) == pytest.approx(1 / math.log2(3))
    assert ndcg_at(["a", "b"], {"a", "b", "c"}, 2) == 1.0


def test_tfidf_centroid_on_tiny_data(tiny: dict[str, Path]) -> None:
    # Hand check (sklearn smooth idf over the 8 items, L2 rows, centroid of liked rows):
    # u1 liked "apple fruit", "apple tart": "apple pie" scores 0.36 > "fresh fruit salad" 0.20,
    #   everything else 0 → u1's test items {3, 4} sit at ranks 1 and 2.
    # u2 liked "car car engine" (tf 2 for car; car and engine have equal idf): "car wheel"
    #   ranks 1, "engine oil" (the test item) ranks 2.
    out = tiny["dir"] / "rank.tsv"
    rep = evaluate(
        tiny["items"],
        tiny["train"],
        tiny["test"],
        ks=(1, 2),
        methods=["tfidf-centroid"],
        rankings_out=out,
    )
    assert rep.n_users == 2
    (res,) = rep.results
    # u1: recall@1 1/2, @2 2/2; nDCG@1 1, @2 1.  u2: recall@1 0, @2 1; nDCG@1 0, @2 1/log2(3)
    assert res.recall[1] == pytest.approx((0.5 + 0) / 2)
    assert res.recall[2] == pytest.approx((1 + 1) / 2)
    assert res.ndcg[1] == pytest.approx((1 + 0) / 2)
    assert res.ndcg[2] == pytest.approx((1 + 1 / math.log2(3)) / 2)
    assert out.read_text().splitlines() == ["u1\t3\t1", "u1\t4\t2", "u2\t6\t1", "u2\t7\t2"]
    assert "tfidf-centroid" in format_table(rep)
    assert json.loads(rep.to_json())["results"][0]["recall"]["2"] == pytest.approx(1.0)


def test_candidates_restrict_what_is_ranked(tiny: dict[str, Path]) -> None:
    # only 3, 6, 7, 8 are rankable: u1's test item 4 can never be hit.
    rep = evaluate(
        tiny["items"],
        tiny["train"],
        tiny["test"],
        candidates_path=tiny["candidates"],
        ks=(1, 2),
        methods=["tfidf-centroid"],
    )
    (res,) = rep.results
    assert res.recall[2] == pytest.approx((0.5 + 1) / 2)
    # u1: item 3 at rank 1, ideal has two relevant → 1 / (1 + 1/log2 3)
    assert res.ndcg[2] == pytest.approx((1 / (1 + 1 / math.log2(3)) + 1 / math.log2(3)) / 2)


def test_every_method_runs_and_daemon_method_uses_rank(
    tiny: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = engine.Recommender.rank

    def spy(self: engine.Recommender, *args: object, **kwargs: object) -> object:
        calls.append(1)
        return original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine.Recommender, "rank", spy)
    methods = ["tfidf-centroid", "asl-centroid", "asl-svm", "zotero", "paperwire:min_df=1"]
    rep = evaluate(tiny["items"], tiny["train"], tiny["test"], ks=(1, 2), methods=methods)
    assert [r.method for r in rep.results] == methods
    assert calls  # the daemon's own code path, not a copy
    pw = rep.results[-1]
    assert pw.recall[2] == pytest.approx(1.0)  # same ranking as the text centroid here


def test_training_items_never_ranked(tiny: dict[str, Path]) -> None:
    out = tiny["dir"] / "r.tsv"
    evaluate(
        tiny["items"],
        tiny["train"],
        tiny["test"],
        ks=(10,),
        methods=["zotero", "paperwire:min_df=1"],
        rankings_out=out,
    )
    for path in tiny["dir"].glob("r.*.tsv"):
        rows = [ln.split("\t") for ln in path.read_text().splitlines()]
        assert rows
        assert not [r for r in rows if (r[0], r[1]) in {("u1", "1"), ("u1", "2"), ("u2", "5")}]
