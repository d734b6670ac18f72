"""The `paperwire` command on a temporary SQLite database: in this process through the entry
point's `main`, and a few runs as a real process (exit status, --help, start-up)."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from daemon.cli import cli
from tests.daemon.cli_helpers import PAPERWIRE, flat, write_config
from tests.daemon.conftest import FEEDS, ROOT
from tests.daemon.in_process import Runner, cli_env

HF_FILE = FEEDS / "hf" / "daily_papers_2026-08-20.json"


# ---- --help for every command ----------------------------------------------------------------


def _all_commands() -> list[tuple[tuple[str, ...], Any]]:
    """Every command and group, walking the click tree (Typer may vendor its own click, so
    groups are recognised by their `commands` mapping, not by class)."""
    found: list[tuple[tuple[str, ...], Any]] = []

    def walk(path: tuple[str, ...], command: Any) -> None:
        found.append((path, command))
        for name, sub in (getattr(command, "commands", None) or {}).items():
            walk((*path, name), sub)

    walk((), typer.main.get_command(cli))
    return found


def _help_problem(path: tuple[str, ...], command: Any, rc: int, stdout: str) -> str | None:
    name = "paperwire " + " ".join(path)
    description = (command.help or "").strip()
    if not description:
        return f"{name}: no description"
    first_paragraph = flat(description.split("\n\n")[0])
    out = flat(stdout)
    if rc != 0 or "Usage:" not in out or first_paragraph not in out:
        return f"{name}: exit {rc}, description {first_paragraph!r} not in {stdout!r}"
    return None


def test_command_tree_is_complete() -> None:
    paths = {" ".join(p) for p, _ in _all_commands()}
    # the walk must reach into the sub-groups, not just the top level
    assert {"users add", "users remove", "feeds add", "config check", "db upgrade", "run"} <= paths
    assert len(paths) >= 20


def test_help_works_for_every_command() -> None:
    """Every command and sub-command answers --help with its description (in-process: the
    same click application the entry point runs, without 20 interpreter start-ups)."""
    runner = CliRunner()
    problems = []
    commands = _all_commands()
    assert len(commands) >= 20
    for path, command in commands:
        result = runner.invoke(cli, [*path, "--help"], prog_name="paperwire", env=cli_env())
        problems.append(_help_problem(path, command, result.exit_code, result.output))
    assert [p for p in problems if p] == []


def test_a_group_lists_each_command_summary_without_the_docstrings_line_breaks() -> None:
    # Typer's rich help kept the docstring's line breaks in the list ("… (the" / "others …")
    runner = CliRunner()
    groups = [(p, c) for p, c in _all_commands() if getattr(c, "commands", None)]
    assert len(groups) >= 5
    for path, group in groups:
        out = runner.invoke(cli, [*path, "--help"], env=cli_env()).output
        panel = [ln[1:-1].rstrip() for ln in out.splitlines() if ln.startswith("│ ")]
        rows: dict[str, list[str]] = {}
        for line in panel:
            if line[1] != " ":
                rows[line.split()[0]] = [line]
            elif rows:
                rows[list(rows)[-1]].append(line)
        for name, command in group.commands.items():
            summary = flat((command.help or "").split("\n\n")[0])
            assert summary in flat(" ".join(rows[name])), (path, name, rows[name])
            # the output is 200 columns wide (piped): a summary that fits is on one line, not
            # cut where the docstring had a line break
            if len(summary) <= 150:
                assert len(rows[name]) == 1, (path, rows[name])


def test_the_help_of_a_command_that_exits_1_says_when() -> None:
    # README and docs/operations.md say when `deliver` and `cycle` exit 1 (a timer or a script
    # relies on it); their --help, and ingest's and digest's, said nothing of it
    runner = CliRunner()
    for path in (
        ("ingest",),
        ("digest",),
        ("deliver",),
        ("cycle",),
        ("status",),
        ("db", "status"),
        ("deliveries", "retry"),
    ):
        out = flat(runner.invoke(cli, [*path, "--help"], env=cli_env()).output)
        assert re.search(r"[Ee]xits? (status )?1 (when|while)", out), (path, out)


def _usage_arguments(path: tuple[str, ...]) -> list[str]:
    """The arguments of `paperwire PATH --help`'s usage line, as shown (`{USER}` → USER)."""
    out = CliRunner().invoke(cli, [*path, "--help"], env=cli_env()).output
    usage = next(line for line in out.splitlines() if "Usage:" in line)
    shown = usage.split("[OPTIONS]", 1)[1].split()
    return [word.strip("{}[]").removesuffix("...").strip("{}[]") for word in shown]


def test_every_option_and_argument_is_described() -> None:
    undescribed = [
        f"paperwire {' '.join(path)} {param.name}"
        for path, command in _all_commands()
        for param in command.params
        if not (getattr(param, "help", None) or "").strip()
    ]
    assert undescribed == []


def test_the_usage_names_each_argument_as_docs_admin_md_does() -> None:
    """A QA pass: docs/admin.md's table (and the commands' own descriptions: "Record that USER
    liked each PAPER") name the arguments USER, NAME, URL, KEY, ID…, but --help's usage line
    showed the Python names: `paperwire like [OPTIONS] {user} {PAPER}...`, `users show {name}`,
    `deliveries retry [ids]...`, `config set {key} [value]`."""
    text = (ROOT / "docs" / "admin.md").read_text(encoding="utf-8")
    commands = {" ".join(p): p for p, c in _all_commands() if not getattr(c, "commands", None)}
    documented: dict[tuple[str, ...], list[str]] = {}
    for row in re.findall(r"^\| (.+?) \|", text, re.MULTILINE):
        for code in re.findall(r"`([^`]+)`", row.replace("\\|", "|")):
            words = code.split()
            cut = next((i for i in (2, 1) if " ".join(words[:i]) in commands), None)
            if cut is None:
                continue
            path = commands[" ".join(words[:cut])]
            placeholders = []
            for word in words[cut:]:
                if word.startswith(("[", "-", "|")):
                    break
                placeholders.append(word.removesuffix("…").removesuffix("|-"))
            documented.setdefault(path, placeholders)  # the first row of a command
    assert len(documented) >= 15 and ("preview",) in documented
    shown = {path: _usage_arguments(path) for path in documented}
    assert shown == documented
    # the commands the table leaves out write their arguments the same way
    for path in commands.values():
        assert all(a == a.upper() or a == "FILE.csv" for a in _usage_arguments(path)), path


def test_help_works_through_the_installed_entry_point(tmp_path: Path) -> None:
    """`paperwire [GROUP] --help` as a real process (the root and two groups; the rest is
    covered in-process above)."""
    groups = [(p, c) for p, c in _all_commands() if p in ((), ("users",), ("db",))]
    assert len(groups) == 3

    def run(path: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PAPERWIRE), *path, "--help"],
            cwd=tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        results = list(pool.map(run, [p for p, _ in groups]))
    problems = [
        _help_problem(path, command, done.returncode, done.stdout)
        for (path, command), done in zip(groups, results, strict=True)
    ]
    assert [p for p in problems if p] == []
    root = flat(results[0].stdout)
    for path, _ in _all_commands():
        if len(path) == 1:
            assert path[0] in root  # every top-level command is listed


# ---- a whole session -------------------------------------------------------------------------


def _count(db: Path, table: str) -> int:
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar_one())
    finally:
        engine.dispose()


def test_a_whole_session(tmp_path: Path) -> None:
    pw = Runner(write_config(tmp_path), tmp_path)
    db = tmp_path / "paperwire.db"
    outbox = tmp_path / "outbox"

    assert "database at revision" in pw("db", "upgrade").stdout
    assert "added feed hf" in pw("feeds", "add", "hf", HF_FILE.as_uri()).stdout
    listed = pw("feeds", "list").stdout
    assert "hf" in listed and "never" in listed

    ingested = pw("ingest").stdout
    assert "1 feed(s) ok" in ingested
    assert "15 new paper(s)" in ingested
    assert _count(db, "paper") == 15

    assert "added user ada" in pw("users", "add", "ada", "--email", "ada@example.org").stdout
    nochannel = pw("users", "add", "bob", expect=1)
    assert "--email" in nochannel.stderr and "--slack-webhook" in nochannel.stderr
    assert "Traceback" not in nochannel.stderr
    users = pw("users", "list").stdout
    assert "ada" in users and "ada@example.org" in users
    assert "bob" not in users

    liked = pw("like", "ada", "2608.16590").stdout
    assert "ada likes arxiv:2608.16590" in liked
    assert _count(db, "feedback") == 1
    unknown = pw("like", "ada", "9999.99999", expect=1)
    assert "9999.99999" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    assert _count(db, "feedback") == 1
    assert "ada follows: diffusion" in pw("follow", "ada", "--keyword", "diffusion").stdout
    assert _count(db, "follow") == 1
    # forgetting what was never followed is a typo, said so (it printed "ada forgot: …")
    typo = pw("follow", "ada", "--keyword", "difusion", "--remove", expect=1)
    assert "ada follows or mutes no keyword 'difusion'" in typo.stderr
    assert "nothing to change for ada:" in pw("users", "set", "ADA", expect=1).stderr
    assert "no user named 'adaa'" in pw("users", "set", "adaa", expect=1).stderr
    assert _count(db, "follow") == 1

    dry = pw("digest", "--dry-run").stdout
    assert re.search(r"ada \(email, \d{4}-\d{2}-\d{2}\)", dry), dry
    picks = re.findall(r"^\s+\d+\. \S.*$", dry, re.M)
    assert picks, dry
    assert _count(db, "digest") == 0
    assert not outbox.exists() or not list(outbox.glob("*.eml"))

    real = pw("digest").stdout
    assert "1 digest(s) created" in real
    assert "delivery: 1 sent" in real
    emls = list(outbox.glob("*.eml"))
    assert len(emls) == 1
    message = message_from_bytes(emls[0].read_bytes(), policy=policy.default)
    assert [a.addr_spec for a in message["To"].addresses] == ["ada@example.org"]
    assert _count(db, "digest") == 1

    assert "removed user ada" in pw("users", "remove", "ada").stdout
    assert "ada" not in pw("users", "list").stdout
    assert _count(db, "feedback") == 0  # likes go with the user
    assert _count(db, "follow") == 0
    assert _count(db, "digest") == 0

    assert "removed feed hf" in pw("feeds", "remove", "hf").stdout
    assert "hf" not in pw("feeds", "list").stdout.replace("paperwire", "")
    assert _count(db, "paper") == 15  # its papers stay


def test_a_relative_database_path_missing_names_the_directory_it_was_read_from(
    tmp_path: Path,
) -> None:
    """A relative database.url (the default's `var/paperwire.db`) is read from the directory
    paperwire is started in. Started elsewhere (`--config /srv/…/paperwire.toml` from the home
    directory), it said "no database at var/paperwire.db: run `paperwire db upgrade` to create
    it", and doing so made a second, empty database there. Now it names the directory and
    says to start it where the database is first."""
    home, elsewhere = tmp_path / "srv", tmp_path / "home"
    home.mkdir()
    elsewhere.mkdir()
    config = write_config(home)
    config.write_text(config.read_text().replace(f"sqlite:///{home}/", "sqlite:///var/"))
    Runner(config, home)("db", "upgrade")
    assert (home / "var" / "paperwire.db").exists()
    pw = Runner(config, elsewhere)
    said = " ".join(pw("users", "list", expect=1).stderr.split())
    assert f"no database at {elsewhere / 'var' / 'paperwire.db'}" in said
    assert f"relative to the directory paperwire is started in, {elsewhere}" in said
    assert said.index("start paperwire in the directory") < said.index("paperwire db upgrade")
    status = " ".join(pw("db", "status", expect=1).stdout.split())
    assert f"relative to the directory paperwire is started in, {elsewhere}" in status
    assert not (elsewhere / "var" / "paperwire.db").exists()
    Runner(config, home)("users", "list")  # where it is, it is found


def test_a_relative_database_missing_with_a_relative_key_file_leaves_no_empty_database(
    tmp_path: Path,
) -> None:
    """The default configuration: database and link-signing key both relative (var/…), no
    server.secret_key. Started in another directory, paperwire makes a new key there, and the
    check for a key made for a database that has sent digests connected to the database
    first: SQLite made an empty file, and the command then said "schema is at revision none
    (empty database) … run `paperwire db upgrade`" instead of naming the directory. Now the
    database missing is said as when the key is set, and no file is made."""
    home, elsewhere = tmp_path / "srv", tmp_path / "home"
    home.mkdir()
    elsewhere.mkdir()
    config = write_config(home)
    text = config.read_text().replace(f"sqlite:///{home}/", "sqlite:///var/")
    text = text.replace('secret_key = "cli-test-secret-0123"\n', "")
    config.write_text(text.replace(str(home / "secret.key"), "var/secret.key"))
    Runner(config, home)("db", "upgrade")
    pw = Runner(config, elsewhere)
    for _ in range(2):  # the key made by the first run is there for the second
        said = " ".join(pw("users", "list", expect=1).stderr.split())
        assert f"no database at {elsewhere / 'var' / 'paperwire.db'}" in said
        assert not (elsewhere / "var" / "paperwire.db").exists()


def test_a_command_refused_in_the_wrong_directory_leaves_nothing_behind(tmp_path: Path) -> None:
    """The default's relative `var/paperwire.db` and `var/secret.key`, a command run elsewhere:
    before refusing, it made `var/` (the engine's folder), a new link-signing key in it, and
    an empty database file (looking for digests sent with another key); the refusal then
    read "schema at revision none (empty database)", not "no database at". Now nothing is
    made until the database is found usable; `db upgrade` still makes all three."""
    home, elsewhere = tmp_path / "srv", tmp_path / "home"
    home.mkdir()
    elsewhere.mkdir()
    config = write_config(home)
    text = config.read_text().replace(f"sqlite:///{home}/", "sqlite:///var/")
    text = text.replace('secret_key = "cli-test-secret-0123"\n', "")
    text = text.replace(f'secret_key_file = "{home / "secret.key"}"', "")
    config.write_text(text)
    pw = Runner(config, elsewhere)
    said = " ".join(pw("users", "list", expect=1).stderr.split())
    assert f"no database at {elsewhere / 'var' / 'paperwire.db'}" in said
    pw("db", "status", expect=1)
    assert list(elsewhere.iterdir()) == []
    config.write_text(text.replace("sqlite:///var/paperwire.db", "postgresql://x@127.0.0.1:1/pw"))
    pw("users", "list", expect=1)  # unreachable: no key made either
    assert list(elsewhere.iterdir()) == []
    config.write_text(text)
    Runner(config, home)("db", "upgrade")
    assert {p.name for p in (home / "var").iterdir()} >= {"paperwire.db", "secret.key"}
    Runner(config, home)("users", "list")


def test_command_on_an_unupgraded_database_says_to_upgrade(tmp_path: Path) -> None:
    pw = Runner(write_config(tmp_path), tmp_path)
    for args in (("users", "list"), ("ingest",)):
        done = pw(*args, expect=1)
        assert "paperwire db upgrade" in done.stderr, args
        assert f"no database at {tmp_path / 'paperwire.db'}" in " ".join(done.stderr.split())
        assert "Traceback" not in done.stderr
    # nothing left behind: a mistyped path got an empty database file before
    assert not (tmp_path / "paperwire.db").exists()
    status = pw("db", "status", expect=1).stdout
    assert f"no database at {tmp_path / 'paperwire.db'}" in " ".join(status.split())
    assert not (tmp_path / "paperwire.db").exists()  # `db status` only looks
    from daemon.db import make_engine
    from daemon.db.engine import upgrade

    upgrade(make_engine(f"sqlite:///{tmp_path / 'paperwire.db'}"), "0007")
    behind = pw("db", "status", expect=1).stdout  # a check that can fail (operations QA)
    assert "database revision: 0007" in behind and "paperwire db upgrade" in behind
    pw("db", "upgrade")
    status = pw("db", "status").stdout
    assert "database revision: " in status and "none" not in status


def test_users_list_shows_a_page_at_a_time_and_searches(tmp_path: Path) -> None:
    pw = Runner(write_config(tmp_path), tmp_path)
    pw("db", "upgrade")
    for name in ("cy", "ada", "bob"):
        pw("users", "add", name, "--email", f"{name}@lab.example")

    def names(*args: str) -> tuple[list[str], str]:
        shown = pw("users", "list", *args).stdout
        return re.findall(r"^│ (\w+) ", shown, re.MULTILINE), flat(shown)

    assert names()[0] == ["ada", "bob", "cy"]
    first, said = names("--limit", "2")
    assert first == ["ada", "bob"] and "users 1–2 of 3: --page 2 for the next" in said
    last, said = names("--limit", "2", "--page", "2")
    assert last == ["cy"] and "users 3–3 of 3: --limit 0 for all" in said
    assert names("--search", "BOB@LAB")[0] == ["bob"]
    assert names("--search", "nobody")[0] == []
    assert "--page" in pw("users", "list", "--help").stdout


def test_an_empty_list_says_so_in_one_line_and_how_to_add_one(tmp_path: Path) -> None:
    # a QA pass: `users list` and `feeds list` on a new install printed an empty table (a
    # header and nothing under it), as did `users list --search` matching nobody
    pw = Runner(write_config(tmp_path), tmp_path)
    pw("db", "upgrade")

    def said(*args: str) -> str:
        shown = pw(*args).stdout
        assert len(shown.splitlines()) == 1 and not re.search(r"[┏│└]", shown), shown
        return shown.strip()

    assert said("users", "list") == (
        "no subscribers yet: add one with `paperwire users add NAME --email ADDRESS` "
        "(many: `paperwire users import FILE.csv`)"
    )
    assert said("feeds", "list") == "no feeds yet: add one with `paperwire feeds add NAME URL`"
    assert said("deliveries", "list") == (
        "no digests yet: the daemon makes them at each subscriber's digest hour "
        "(`paperwire digest` makes and sends today's now)"
    )
    assert said("admin", "list") == (
        "no admins yet: add one with `paperwire admin set-password NAME`; the console is "
        "closed until then"
    )
    pw("users", "add", "ada", "--email", "ada@lab.example")
    assert said("users", "list", "--search", "nobody") == "no subscriber matches 'nobody'"
    assert said("users", "list", "--page", "3") == (
        "page 3 is past the last: 1 user(s), 1 page(s) of 100"
    )
    assert "ada@lab.example" in pw("users", "list").stdout


def test_admin_edits_users_and_feeds(tmp_path: Path) -> None:
    pw = Runner(write_config(tmp_path), tmp_path)
    pw("db", "upgrade")
    pw("users", "add", "ada", "--email", "ada@lab.example")
    pw(
        "users", "set", "ada", "--timezone", "Asia/Tokyo", "--digest-hour", "6",
        "--slack-webhook", "https://hooks.slack.com/services/T0/B0/secret", "--unsubscribe",
    )  # fmt: skip
    listed = pw("users", "list").stdout
    assert "Asia/Tokyo" in listed and "hooks.slack.com" in listed and "secret" not in listed
    assert re.search(r"ada .* no", flat(listed))
    # a channel its subscriber stopped (a digest's unsubscribe link) says so, as in `users show`
    from datetime import UTC, datetime

    from daemon.db import Store, make_engine

    store = Store(make_engine(f"sqlite:///{tmp_path / 'paperwire.db'}"))
    ada = store.people.get("ada")
    email = next(c for c in store.people.channels_of(ada.id) if c.kind == "email")
    store.people.set_channel_active(ada.id, email.id, True, datetime.now(UTC))  # subscribed
    listed = flat(pw("users", "list").stdout)  # to that address: Slack stays quiet, as it was
    assert "ada@lab.example (stopped)" not in listed and "(stopped)" in listed
    store.people.set_channel_active(ada.id, email.id, False, datetime.now(UTC))
    listed = flat(pw("users", "list").stdout)
    assert "ada@lab.example (stopped)" in listed
    pw("users", "set", "ada", "--email", "", "--subscribe")
    listed = flat(pw("users", "list").stdout)
    assert "ada@lab.example" not in listed and re.search(r"ada .* yes", listed)
    bad = pw("users", "set", "ada", "--timezone", "Mars/Base", expect=1)
    assert "Mars/Base" in bad.stderr and "IANA" in bad.stderr
    typo = pw("digest", "--user", "adaa", expect=1)
    assert "adaa" in typo.stderr
    pw("feeds", "add", "hf", HF_FILE.as_uri())
    pw("feeds", "disable", "hf")
    assert "0 feed(s) ok" in pw("ingest").stdout
    pw("feeds", "enable", "hf")
    assert "1 feed(s) ok" in pw("ingest").stdout


def test_eval_prints_figures_and_writes_rankings(tmp_path: Path) -> None:
    """`paperwire eval` on real CiteULike libraries (a small sample): every user's last like
    is the test item, the rest are training likes."""
    small = ROOT / "tests" / "data" / "citeulike-small"
    by_user: dict[str, list[str]] = {}
    for line in (small / "likes.tsv").read_text().splitlines():
        user, item = line.split("\t")
        by_user.setdefault(user, []).append(item)
    train, test = tmp_path / "train.tsv", tmp_path / "test.tsv"
    with train.open("w") as tr, test.open("w") as te:
        for user, items in by_user.items():
            for item in items[:-1]:
                tr.write(f"{user}\t{item}\n")
            if len(items) > 1:
                te.write(f"{user}\t{items[-1]}\n")
    rankings = tmp_path / "rankings.tsv"
    pw = Runner(write_config(tmp_path), tmp_path)
    done = pw(
        "eval", "--items", str(small / "items.jsonl"), "--train", str(train), "--test", str(test),
        "--k", "5,10", "--method", "tfidf-centroid,paperwire", "--json",
        "--rankings-out", str(rankings),
    )  # fmt: skip
    report = json.loads(done.stdout)
    assert report["ks"] == [5, 10] and report["n_users"] > 20
    assert [r["method"] for r in report["results"]] == ["tfidf-centroid", "paperwire"]
    for r in report["results"]:
        assert 0.0 <= r["recall"]["5"] <= r["recall"]["10"] <= 1.0
        assert 0.0 <= r["ndcg"]["10"] <= 1.0 and r["ms_per_user"] > 0
    written = sorted(tmp_path.glob("rankings*.tsv"))
    assert len(written) == 2, written  # one file per method
    rows = [line.split("\t") for line in written[0].read_text().splitlines()]
    assert rows and all(len(r) == 3 and r[2].isdigit() and 1 <= int(r[2]) <= 10 for r in rows)
    table = pw(
        "eval", "--items", str(small / "items.jsonl"), "--train", str(train), "--test", str(test),
        "--k", "5,10", "--method", "tfidf-centroid",
    ).stdout  # fmt: skip
    assert "recall@10" in table and "nDCG@10" in table and "ms/user" in table
    missing = pw("eval", "--items", str(tmp_path / "nope.jsonl"), "--train", str(train),
                 "--test", str(test), expect=1)  # fmt: skip
    assert "nope.jsonl" in missing.stderr
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "1", "title": "a"}\n{"title": "no id"}\n')
    bad = pw("eval", "--items", str(broken), "--train", str(train), "--test", str(test),
             expect=1)  # fmt: skip
    assert f"{broken}:2: no 'id'" in bad.stderr and "Traceback" not in bad.stderr
    bogus = pw("eval", "--items", str(small / "items.jsonl"), "--train", str(train),
               "--test", str(test), "--method", "bogus", expect=1)  # fmt: skip
    assert "unknown method 'bogus': the methods are" in " ".join(bogus.stderr.split())


def test_brackets_in_names_and_feed_text_are_printed_not_taken_for_markup(tmp_path: Path) -> None:
    """Rich would read "[/]" in a paper title, a user name or an error as markup and crash
    with a traceback (MarkupError) after the change was already stored."""
    pw = Runner(write_config(tmp_path), tmp_path)
    pw("db", "upgrade")
    refused = pw("users", "add", "a[/]b", "--email", "a@lab.example", expect=1)
    assert "'a[/]b' is not a valid user name" in refused.stderr
    assert "Traceback" not in refused.stderr
    pw("users", "add", "ab", "--email", "a@lab.example", "--display-name", "A [/]b [bold]")
    missing = pw("like", "no[/]one", "2401.00001", expect=1)
    assert "no user named 'no[/]one'" in missing.stderr and "Traceback" not in missing.stderr
    assert "A [/]b [bold]" in pw("users", "show", "ab").stdout
    feed = tmp_path / "feed.xml"
    feed.write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
        "<title>Closing [/] tags [bold]everywhere</title><link>https://example.org/p1</link>"
        "<guid>https://example.org/p1</guid></item></channel></rss>"
    )
    pw("feeds", "add", "local", feed.as_uri())
    pw("ingest")
    liked = pw("like", "ab", "guid:https://example.org/p1")
    assert "Closing [/] tags [bold]everywhere" in liked.stdout


def test_an_unreachable_database_is_a_clear_message_not_a_traceback(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    text = config.read_text().replace(
        f"sqlite:///{tmp_path / 'paperwire.db'}", "postgresql://lab:hunter2-secret@127.0.0.1:1/pw"
    )
    config.write_text(text)
    pw = Runner(config, tmp_path)
    for args in (("users", "list"), ("db", "status")):
        done = pw(*args, expect=1)
        assert "cannot use the database" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "hunter2-secret" not in done.stderr


def test_a_database_url_with_a_bad_parameter_is_a_clear_message_not_a_traceback(
    tmp_path: Path,
) -> None:
    # operations.md: any libpq parameter may be given in the URL; a wrong one was psycopg's
    # ProgrammingError, raised as a 150-line traceback by every command
    config = write_config(tmp_path)
    url = "postgresql://lab:hunter2-secret@127.0.0.1:1/pw?connect_timeout=soon"
    config.write_text(config.read_text().replace(f"sqlite:///{tmp_path / 'paperwire.db'}", url))
    pw = Runner(config, tmp_path)
    for args in (("users", "list"), ("status",)):
        done = pw(*args, expect=1)
        assert "cannot use the database: bad value for connect_timeout: 'soon'" in done.stderr
        assert "check database.url" in done.stderr
        assert "Traceback" not in done.stderr and "hunter2-secret" not in done.stderr


# ---- real processes: exit status and start-up ------------------------------------------------


def test_a_real_process_exits_1_with_a_message_and_no_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(PAPERWIRE), "--config", str(write_config(tmp_path)), "users", "list"],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "paperwire db upgrade" in done.stderr and "Traceback" not in done.stderr


def _imported(code: str, cwd: Path) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=cwd,
        env={**cli_env(), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [x for x in done.stderr.splitlines() if x.startswith("import time:")]
    assert lines, done.stderr
    return {x.rsplit("|", 1)[-1].strip() for x in lines}


def _loaded(modules: set[str], package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in modules)


def test_the_cli_starts_without_its_heavy_libraries(tmp_path: Path) -> None:
    """`paperwire --help` loads nothing heavy, and a command that reads the database loads
    SQLAlchemy but neither scikit-learn nor Alembic (those cost seconds at every start)."""
    bare = _imported("import daemon.cli", tmp_path)
    assert "daemon.cli" in bare
    for heavy in ("sklearn", "scipy", "alembic", "sqlalchemy", "pydantic", "fastapi", "httpx"):
        assert not _loaded(bare, heavy), heavy
    for library in ("bibtexparser", "pyparsing", "pyzotero", "pylatexenc", "rispy"):
        assert not _loaded(bare, library), library  # only `paperwire import` loads them
    config = write_config(tmp_path)
    Runner(config, tmp_path)("db", "upgrade")
    listing = _imported(
        f"from daemon.cli import main; main(['--config', {str(config)!r}, 'users', 'list'])",
        tmp_path,
    )
    assert _loaded(listing, "sqlalchemy")  # it did reach the database
    for heavy in ("sklearn", "scipy", "alembic", "fastapi", "feedparser"):
        assert not _loaded(listing, heavy), heavy


def test_every_options_help_is_a_sentence() -> None:
    """Every option's and argument's help is a sentence: a capital first, unless it starts
    with a literal (`arXiv`, a file's or a key's name, a list of values), and a full stop
    last, as the rest of `--help` is written (`eval`'s were lower case and unended)."""
    odd = []
    for path, command in _all_commands():
        for param in command.params:
            text = (getattr(param, "help", None) or "").strip()
            if not text or param.name == "help":
                continue
            first = text.split()[0]
            literal = first.startswith("arXiv") or "." in first or first.endswith(",")
            if not (first[0].isupper() or literal) or not text.endswith((".", ".)")):
                odd.append((" ".join(path), param.name, text))
    assert odd == []


# ---- a SQLite file the command cannot use (operations QA) ------------------------------------


def _sqlite_database(tmp_path: Path) -> tuple[Runner, Path]:
    pw = Runner(write_config(tmp_path), tmp_path)
    pw("db", "upgrade")
    return pw, tmp_path / "paperwire.db"


def test_a_sqlite_file_locked_by_another_process_is_named_with_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a backup or another paperwire command holding the write lock past the busy timeout:
    # "cannot use the database: database is locked; check database.url", where the URL was right
    import sqlite3

    from daemon.db import engine

    pw, db = _sqlite_database(tmp_path)
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_MS", 50)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        done = pw("users", "add", "ada", "--email", "ada@example.org", expect=1)
    finally:
        other.execute("ROLLBACK")
        other.close()
    message = " ".join(done.stderr.split())
    assert f"{db} is locked: another process" in message, message
    assert "try again when it is done" in message and "check database.url" not in message
    pw("users", "add", "ada", "--email", "ada@example.org")  # the lock gone, it works


@pytest.mark.parametrize(
    ("pragma", "said", "fix"),
    [
        ("query_only = 1", "attempt to write a readonly database", "write access"),
        ("max_page_count = {pages}", "database or disk is full", "free space"),
    ],
)
def test_a_sqlite_file_that_cannot_be_written_is_named_with_what_to_do(
    tmp_path: Path, pragma: str, said: str, fix: str
) -> None:
    # a file made read-only (chmod, a read-only mount) or a full disk: "…; check database.url"
    pw, db = _sqlite_database(tmp_path)
    people = tmp_path / "people.csv"  # more than the pages the file has room in
    people.write_text("name,email\n" + "".join(f"u{i},u{i}@example.org\n" for i in range(500)))

    def cannot_write(dbapi_conn: Any, _record: Any) -> None:
        pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
        dbapi_conn.execute(f"PRAGMA {pragma.format(pages=pages)}")

    sa.event.listen(sa.engine.Engine, "connect", cannot_write)
    try:
        done = pw("users", "import", str(people), expect=1)
    finally:
        sa.event.remove(sa.engine.Engine, "connect", cannot_write)
    message = " ".join(done.stderr.split())
    assert f"{db} cannot be written ({said})" in message, message
    assert fix in message and "check database.url" not in message


@pytest.mark.parametrize("kind", ["pool", "connection-lost"])
def test_any_trouble_of_the_database_is_a_clear_message_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # only OperationalError was the database's: a pool with every connection taken (its
    # TimeoutError) or a connection lost that the driver called an InterfaceError was a
    # traceback, where the pages and the jobs count both the database's (`database_trouble`)
    from contextlib import ExitStack

    import daemon.db
    from tests.daemon.conftest import pool_exhausted

    pw, _ = _sqlite_database(tmp_path)
    check = daemon.db.check_schema
    held = ExitStack()

    def lost(*_: Any) -> None:
        raise sa.exc.InterfaceError("SELECT", {}, RuntimeError("connection already closed"),
                                    connection_invalidated=True)  # fmt: skip

    def checked_then_trouble(engine: sa.Engine) -> None:
        check(engine)
        if kind == "pool":
            held.enter_context(pool_exhausted(engine))
        else:
            sa.event.listen(engine, "before_cursor_execute", lost)

    monkeypatch.setattr(daemon.db, "check_schema", checked_then_trouble)
    with held:
        done = pw("users", "list", expect=1)
    message = " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr and "cannot use the database: " in message, message
    said = "QueuePool limit" if kind == "pool" else "connection already closed"
    assert said in message and "try again" in message, message


# ---- an ingest stopped midway ----------------------------------------------------------------


def _four_feeds(tmp_path: Path) -> Runner:
    pw = Runner(write_config(tmp_path), tmp_path)
    pw("db", "upgrade")
    files = ("generic/plain_rss2_constructed.xml", "arxiv-rss/rss2_math.OC_constructed.xml",
             "arxiv-rss/rss1_rdf_constructed.xml", "hf/daily_papers_2026-08-20.json")  # fmt: skip
    for name, file in zip("abcd", files, strict=True):
        pw("feeds", "add", name, (FEEDS / file).as_uri())
    return pw


def test_an_ingest_stopped_by_ctrl_c_says_how_many_feeds_it_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the summary counted the feeds done only: "ingest: 1 feed(s) ok, 0 unchanged, 0 failed"
    # for a run of four, with nothing said of the three the next run fetches
    import os
    import signal

    ingest = importlib.import_module("daemon.jobs.ingest")  # `daemon.jobs.ingest`: the function
    pw = _four_feeds(tmp_path)
    ingest_one = ingest._ingest_one

    def then_ctrl_c(*args: Any) -> None:
        ingest_one(*args)
        os.kill(os.getpid(), signal.SIGINT)  # once the first feed is stored

    monkeypatch.setattr(ingest, "_ingest_one", then_ctrl_c)
    done = pw("ingest", expect=128 + signal.SIGINT)
    assert "ingest: 1 feed(s) ok" in done.stdout
    assert "3 feed(s) left for the next run" in done.stdout, done.stdout


def test_an_ingest_the_database_stopped_says_how_many_feeds_it_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a second database error stops the run: the command printed the error only, not what it
    # had stored nor that the feeds from the first error on are left for the next run
    import sqlite3

    from daemon.db import engine

    ingest = importlib.import_module("daemon.jobs.ingest")
    pw = _four_feeds(tmp_path)
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_MS", 50)
    other = sqlite3.connect(tmp_path / "paperwire.db", isolation_level=None)
    ingest_one = ingest._ingest_one
    calls: list[object] = []

    def locked_after_the_first(*args: Any) -> None:
        if len(calls) == 1:  # the next feeds cannot be stored: another process writes
            other.execute("BEGIN IMMEDIATE")
        calls.append(args)
        ingest_one(*args)

    monkeypatch.setattr(ingest, "_ingest_one", locked_after_the_first)
    try:
        done = pw("ingest", expect=1)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert len(calls) == 3  # the second error stops the run: the fourth feed is not fetched
    assert "ingest: 1 feed(s) ok" in done.stdout, done.stdout + done.stderr
    assert "3 feed(s) left for the next run" in done.stdout, done.stdout
    assert "is locked: another process" in " ".join(done.stderr.split())
