"""Slack incoming-webhook delivery: JSON POSTs, ≤ 1 message per second per webhook."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx

from notifications.transports.base import (
    Outgoing,
    PermanentDeliveryError,
    SlackOut,
    TemporaryDeliveryError,
    redact_url,
)

log = logging.getLogger(__name__)

# Error strings Slack returns in the body of a 4xx answer to a webhook POST.
PERMANENT_SLACK_ERRORS = frozenset(
    {
        "invalid_payload",
        "user_not_found",
        "channel_not_found",
        "channel_is_archived",
        "action_prohibited",
        "posting_to_general_channel_denied",
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "invalid_token",
        "no_text",
        "too_many_attachments",
        "invalid_blocks",
        "invalid_blocks_format",
    }
)


class SlackWebhookTransport:
    """POST :class:`SlackOut` payloads to Slack incoming webhooks.

    * at most one message per ``min_interval`` seconds per webhook URL (Slack's limit is
      about one per second); the transport sleeps as needed — reuse one instance;
    * HTTP 429: sleeps for ``Retry-After`` and retries (at most ``max_429_retries`` times,
      and never sleeps longer than ``max_retry_after``), then raises
      ``TemporaryDeliveryError(retry_after=...)``;
    * HTTP 5xx, 408 and network errors: ``TemporaryDeliveryError``;
    * other 4xx (``invalid_payload``, ``channel_not_found``, ...): ``PermanentDeliveryError``.

    The webhook URL is a secret: errors and logs show only its host.
    The ``httpx.Client`` belongs to the caller (it is not closed here). A message split into
    several payloads is sent in order; a failure stops at the failed payload.
    """

    name: str = "slack"
    max_blocks_per_message: ClassVar[int] = 50
    max_section_chars: ClassVar[int] = 3000
    max_header_chars: ClassVar[int] = 150
    max_429_retries: ClassVar[int] = 3
    max_retry_after: ClassVar[float] = 30.0

    def __init__(
        self,
        http: httpx.Client,
        *,
        min_interval: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.min_interval = min_interval
        self._sleep = sleep
        self._monotonic = monotonic
        self._last_sent: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"SlackWebhookTransport(min_interval={self.min_interval})"

    def __enter__(self) -> SlackWebhookTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def send(self, out: Outgoing) -> None:
        """Post every payload of ``out`` in order; raise Temporary/PermanentDeliveryError."""
        if not isinstance(out, SlackOut):
            raise TypeError(f"{type(self).__name__} sends SlackOut, not {type(out).__name__}")
        where = redact_url(out.webhook_url)
        total = len(out.payloads)
        for index, payload in enumerate(out.payloads, start=1):
            self._post(out.webhook_url, payload, f"Slack webhook {where} (payload {index}/{total})")

    # ------------------------------------------------------------------ internals

    def _wait_turn(self, url: str) -> None:
        last = self._last_sent.get(url)
        if last is None:
            return
        wait = self.min_interval - (self._monotonic() - last)
        if wait > 0:
            self._sleep(wait)

    def _post(self, url: str, payload: dict[str, Any], where: str) -> None:
        attempt = 0
        while True:
            self._wait_turn(url)
            try:
                response = self.http.post(url, json=payload)
            except httpx.TransportError as exc:
                # httpx messages may quote the URL: show the exception type only.
                raise TemporaryDeliveryError(
                    f"{where}: network error ({type(exc).__name__})"
                ) from None
            finally:
                self._last_sent[url] = self._monotonic()
            status = response.status_code
            body = _short(response.text)
            if 200 <= status < 300:
                log.debug("%s: delivered", where)
                return
            if status == 429:
                retry_after = _retry_after(response.headers.get("Retry-After"), self.min_interval)
                if attempt >= self.max_429_retries or retry_after > self.max_retry_after:
                    raise TemporaryDeliveryError(
                        f"{where}: rate limited (HTTP 429), retry after {retry_after:g}s",
                        retry_after=retry_after,
                    )
                attempt += 1
                log.info("%s: HTTP 429, sleeping %.1fs (retry %d)", where, retry_after, attempt)
                self._sleep(retry_after)
                continue
            if status >= 500 or status == 408:
                raise TemporaryDeliveryError(f"{where}: HTTP {status} {body}".rstrip())
            if body not in PERMANENT_SLACK_ERRORS:
                log.warning("%s: unexpected HTTP %d %r, treating as permanent", where, status, body)
            raise PermanentDeliveryError(f"{where}: HTTP {status} {body}".rstrip())


def _short(text: str, limit: int = 100) -> str:
    """Slack answers with a short error code; keep error messages one short line."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _retry_after(value: str | None, default: float) -> float:
    """Parse ``Retry-After``: delta-seconds or an HTTP date; ``default`` if absent/garbled."""
    if value is None:
        return default
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - time.time())
