"""The evaluation harness on a tiny dataset whose metrics are computed by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import recommender.engine as engine
from recommender.evaluate import _cap_likes, evaluate, format_table, load_pairs, ndcg_at, recall_at
from tests.daemon.in_process import run_paperwire
from tests.recommender.rank_fields import FIELDS_DATA

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


# ----------------------------------------------------------------------------- small libraries
def test_cap_likes_keeps_a_seeded_random_n_of_each_library() -> None:
    train = {f"u{n}": [str(i) for i in range(10 * n, 10 * n + 8)] for n in range(6)}
    train["short"] = ["a", "b"]
    kept = _cap_likes(train, 3, seed=7)
    assert kept["short"] == ["a", "b"]  # three or fewer: unchanged
    for u, items in train.items():
        if u != "short":
            assert len(kept[u]) == 3 and len(set(kept[u])) == 3
            assert kept[u] == [i for i in items if i in kept[u]]  # a subset, in the file's order
    assert _cap_likes(train, 3, seed=7) == kept
    # a library's draw depends on the seed and on itself only, not on the other libraries
    assert _cap_likes({"u3": train["u3"]}, 3, seed=7)["u3"] == kept["u3"]
    assert _cap_likes(train, 3, seed=8) != kept
    with pytest.raises(ValueError):
        _cap_likes(train, 0, seed=7)


def _write(path: Path, pairs: dict[str, list[str]]) -> Path:
    path.write_text("".join(f"{u}\t{i}\n" for u, items in pairs.items() for i in items))
    return path


def _rankings(rep_dir: Path, stem: str) -> dict[str, str]:
    return {p.name.removeprefix(stem): p.read_text() for p in sorted(rep_dir.glob(f"{stem}.*"))}


METHODS = ["tfidf-centroid", "paperwire:min_df=1"]


def test_max_likes_is_the_same_as_a_train_file_with_the_kept_likes(tiny: dict[str, Path]) -> None:
    kept = _cap_likes(load_pairs(tiny["train"]), 1, seed=3)
    assert kept["u1"] in (["1"], ["2"])
    small = _write(tiny["dir"] / "small.tsv", kept)
    capped = evaluate(
        tiny["items"], tiny["train"], tiny["test"], ks=(1, 2), methods=METHODS,
        max_likes=1, seed=3, rankings_out=tiny["dir"] / "a.tsv",
    )  # fmt: skip
    by_hand = evaluate(
        tiny["items"], small, tiny["test"], ks=(1, 2), methods=METHODS,
        rankings_out=tiny["dir"] / "b.tsv",
    )  # fmt: skip
    assert [r.recall for r in capped.results] == [r.recall for r in by_hand.results]
    assert [r.ndcg for r in capped.results] == [r.ndcg for r in by_hand.results]
    assert _rankings(tiny["dir"], "a") == _rankings(tiny["dir"], "b")
    assert capped.data["max_likes"] == "1" and capped.data["seed"] == "3"


def test_newcomers_cut_down_and_score_only_k_users(tiny: dict[str, Path]) -> None:
    train, test = load_pairs(tiny["train"]), load_pairs(tiny["test"])
    train["u1"] += ["5", "6"]  # three likes
    train["u2"] += ["6", "8"]
    full = _write(tiny["dir"] / "full.tsv", train)
    rep = evaluate(
        tiny["items"], full, tiny["test"], ks=(1, 2), methods=METHODS,
        max_likes=1, newcomers=1, seed=0, rankings_out=tiny["dir"] / "a.tsv",
    )  # fmt: skip
    assert rep.n_users == 1 and all(r.n_users == 1 for r in rep.results)
    (newcomer,) = {ln.split("\t")[0] for ln in (tiny["dir"] / "a.tfidf-centroid.tsv").open()}
    # the same as: only the newcomer's library cut (the same draw), only the newcomer tested
    cut = {**train, newcomer: _cap_likes({newcomer: train[newcomer]}, 1, seed=0)[newcomer]}
    assert len(cut[newcomer]) == 1 and cut != train
    by_hand = evaluate(
        tiny["items"], _write(tiny["dir"] / "cut.tsv", cut),
        _write(tiny["dir"] / "t.tsv", {newcomer: test[newcomer]}), ks=(1, 2), methods=METHODS,
        rankings_out=tiny["dir"] / "b.tsv",
    )  # fmt: skip
    assert [r.ndcg for r in rep.results] == [r.ndcg for r in by_hand.results]
    assert _rankings(tiny["dir"], "a") == _rankings(tiny["dir"], "b")
    assert rep.data["newcomers"] == "1"
    with pytest.raises(ValueError, match="max_likes"):
        evaluate(tiny["items"], full, tiny["test"], methods=METHODS, newcomers=1)


def _fields_split(tmp_path: Path) -> dict[str, Path]:
    """The interest-topic sample (480 real CiteULike papers, 983 libraries): each library's last
    like is its test item."""
    train: dict[str, list[str]] = {}
    test: dict[str, list[str]] = {}
    for user, items in load_pairs(FIELDS_DATA / "likes.tsv").items():
        if len(items) > 1:
            train[user], test[user] = items[:-1], items[-1:]
        else:
            train[user] = items
    return {
        "items": FIELDS_DATA / "items.jsonl",
        "train": _write(tmp_path / "train.tsv", train),
        "test": _write(tmp_path / "test.tsv", test),
    }


def test_paperwire_reports_what_its_calibration_chose(tmp_path: Path) -> None:
    data = _fields_split(tmp_path)
    rep = evaluate(data["items"], data["train"], data["test"], ks=(10,), methods=["paperwire"])
    (pw,) = rep.results
    assert pw.calibration is not None and pw.calibration.users > 50
    shown = json.loads(rep.to_json())["results"][0]["calibration"]
    assert shown["profile_prior_likes"] == pw.calibration.profile_prior_likes
    assert shown["text_weight"] == pw.calibration.text_weight
    assert shown["users"] == pw.calibration.users
    assert f"(measured on {pw.calibration.users} libraries)" in format_table(rep)


def test_paperwire_eval_passes_the_small_library_options_on(tmp_path: Path) -> None:
    """`paperwire eval --max-likes N --seed S --newcomers K` (daemon/cli.py) runs the same
    evaluation as `recommender.evaluate.evaluate`."""
    data = _fields_split(tmp_path)
    files = ["--items", str(data["items"]), "--train", str(data["train"]),
             "--test", str(data["test"])]  # fmt: skip
    common = [*files, "--k", "10", "--method", "asl-centroid", "--json"]
    done = run_paperwire("eval", *common, "--max-likes", "2", "--seed", "5", "--newcomers", "40",
                         cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    direct = evaluate(
        data["items"], data["train"], data["test"], ks=(10,), methods=["asl-centroid"],
        max_likes=2, seed=5, newcomers=40,
    )  # fmt: skip
    assert shown["n_users"] == 40 and shown["data"] == direct.data
    assert shown["results"][0]["ndcg"] == json.loads(direct.to_json())["results"][0]["ndcg"]
    young = json.loads(run_paperwire("eval", *common, "--max-likes", "1", cwd=tmp_path).stdout)
    assert young["data"]["max_likes"] == "1" and young["data"]["seed"] == "7"  # the default
    refused = run_paperwire("eval", *common, "--newcomers", "5", cwd=tmp_path)
    assert refused.returncode == 1 and "--max-likes" in refused.stderr
