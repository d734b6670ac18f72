"""Papers by arXiv id from the arXiv API (`id_list` queries), for ids named by a person.

Up to 100 ids a request, one request every `interval` seconds (arXiv's terms: one every 3 s;
the fetcher's own throttle counts the same requests when the host is arXiv's), the response
read by the feed parser (`parse.parse_feed`: the API answers in Atom). What the API does not
return (no such paper) or could not be asked (network down, an error) is reported per id, so
the caller can fall back on what it already knows. Touches no database.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from daemon.errors import FeedError
from daemon.ingest.fetch import Fetcher
from daemon.ingest.identity import ID_PATTERN
from daemon.ingest.parse import PaperIn, parse_feed

ARXIV_API_URL = "https://export.arxiv.org/api/query"
_VALID = re.compile(ID_PATTERN, re.I)
BATCH = 100  # ids per request (arXiv's API pages by 100 comfortably; larger lists are split)


@dataclass
class ArxivLookup:
    """What the API said: papers by canonical id, and why the others are missing."""

    found: dict[str, PaperIn] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # id → reason
    requests: int = 0
    error: str | None = None  # the first fetch or API error; later batches were not asked


def query_url(api_url: str, ids: Sequence[str]) -> str:
    """The `id_list` query of `ids` (canonical ids: no version) on the API at `api_url`."""
    query = urlencode({"id_list": ",".join(ids), "max_results": str(len(ids))}, safe=",/")
    return f"{api_url}{'&' if '?' in api_url else '?'}{query}"


def fetch_by_ids(
    fetcher: Fetcher,
    ids: Sequence[str],
    *,
    api_url: str = ARXIV_API_URL,
    interval: float = 3.0,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> ArxivLookup:
    """Ask the arXiv API for `ids` (canonical), `BATCH` at a time, `interval` seconds apart.

    The first failed request (network, HTTP error, an error the API reports) stops the lookup:
    the ids not yet found are missing with that reason (offline, every batch would wait for its
    own timeout)."""
    result = ArxivLookup()
    wanted = list(dict.fromkeys(ids))
    for bad in (i for i in wanted if not _VALID.fullmatch(i)):
        result.missing[bad] = "not an arXiv id"
    wanted = [i for i in wanted if _VALID.fullmatch(i)]
    last: float | None = None
    for start in range(0, len(wanted), BATCH):
        batch = wanted[start : start + BATCH]
        if result.error is not None:
            result.missing.update(dict.fromkeys(batch, result.error))
            continue
        if last is not None and (delay := interval - (monotonic() - last)) > 0:
            sleep(delay)
        last = monotonic()
        url = query_url(api_url, batch)
        result.requests += 1
        try:
            fetched = fetcher.fetch(url)
            parsed = parse_feed(fetched.content or b"", url=url)
        except FeedError as e:
            result.error = f"arXiv could not be asked ({e})"
            result.missing.update(dict.fromkeys(batch, result.error))
            continue
        by_id = {p.arxiv_id: p for p in parsed.papers if p.arxiv_id}
        for arxiv_id in batch:
            if arxiv_id in by_id:
                result.found[arxiv_id] = by_id[arxiv_id]
            else:
                result.missing[arxiv_id] = "arXiv has no paper with this id"
    return result
