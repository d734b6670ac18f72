"""Time and memory of parsing hostile inputs, and parse speed of a real feed (not a test).

    PYTHONPATH=. python -m tests.daemon.ingest.measure              # this tree
    git archive e24fd44 daemon | tar -x -C /tmp/before
    PYTHONPATH=. python -m tests.daemon.ingest.measure --code /tmp/before   # an older tree

Each case runs `parse_feed` of the given tree in a fresh process (so its peak memory is its
own) and prints CPU seconds, peak RSS above the process' start, and the outcome. CPU time, not
wall time: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from tests.daemon.ingest.helpers import billion_laughs

ROOT = Path(__file__).resolve().parents[3]
API = ROOT / "tests/data/feeds/arxiv-api/2026_recorded_q_testing_s0_m100_cfe7536492ca.status200.xml"
MANUAL = ROOT / "tests/data/not-feeds/arxiv_api_user-manual.md"
RSS1 = ROOT / "tests/data/feeds/arxiv-rss/rss1_hep-ex_collaboration_constructed.xml"


def html_feed(copies: int = 100) -> bytes:
    """The RSS 1.0 listing (HTML descriptions and authors) with its items `copies` times."""
    text = RSS1.read_text(encoding="utf-8")
    head, rest = text.split("<item ", 1)
    items = "<item " + rest.rsplit("</item>", 1)[0] + "</item>"
    return (head + items * copies + "</rdf:RDF>").encode()


_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from daemon.ingest.parse import parse_feed
content = open(sys.argv[2], "rb").read()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.process_time()
try:
    feed = parse_feed(content, url="https://measure.test/feed")
    outcome = f"{len(feed.papers)} papers"
except Exception as e:
    outcome = f"{type(e).__name__}: {str(e)[:90]}"
seconds = time.process_time() - start
peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, "outcome": outcome}))
"""

_SPEED = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from daemon.ingest.parse import parse_feed
content = open(sys.argv[2], "rb").read()
n = len(parse_feed(content, url="x").papers)
times = []
for _ in range(int(sys.argv[3])):
    start = time.process_time()
    parse_feed(content, url="x")
    times.append(time.process_time() - start)
print(json.dumps({"entries": n, "median": statistics.median(times), "best": min(times)}))
"""


def _cases(tmp: Path) -> list[tuple[str, Path]]:
    cases = {
        "billion laughs, one line, 0.5 MB": billion_laughs(500_000),
        "billion laughs, one line, 2 MB": billion_laughs(2_000_000),
        "[ * 200000 + ] * 200000": b"[" * 200_000 + b"]" * 200_000,
        "200,000 nested elements": b'<rss version="2.0"><channel><item>'
        + b"<x>" * 200_000
        + b"</x>" * 200_000
        + b"</item></channel></rss>",
        "arXiv API manual (markdown)": MANUAL.read_bytes(),
    }
    paths = []
    for i, (name, content) in enumerate(cases.items()):
        path = tmp / f"case{i}"
        path.write_bytes(content)
        paths.append((name, path))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--code", default=str(ROOT), help="the tree whose daemon/ is measured")
    parser.add_argument("--runs", type=int, default=30, help="parses of the API feed")
    args = parser.parse_args()
    tmp = Path(subprocess.check_output(["mktemp", "-d"], text=True).strip())
    print(f"code: {args.code}")
    for name, path in _cases(tmp):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, args.code, str(path)],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if out.returncode != 0:
            print(f"{name:40} crashed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout)
        print(f"{name:40} {r['seconds']:7.3f} s CPU {r['peak_mb']:8.0f} MB  {r['outcome']}")
    html = tmp / "html.xml"
    html.write_bytes(html_feed())
    for name, path in (("arXiv API response", API), ("RSS 1.0 listing, HTML fields", html)):
        out = subprocess.run(
            [sys.executable, "-c", _SPEED, args.code, str(path), str(args.runs)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout)
        print(
            f"{name}, {r['entries']} entries: median {r['median'] * 1000:.0f} ms "
            f"({r['entries'] / r['median']:.0f} entries/s), best {r['best'] * 1000:.0f} ms "
            f"({r['entries'] / r['best']:.0f} entries/s)"
        )


if __name__ == "__main__":
    main()
