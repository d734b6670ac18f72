"""Slack incoming-webhook delivery: JSON POSTs, ≤ 1 message per second per webhook, every
answer classified, bounded in time, and never showing the webhook's secret path."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from notifications.addresses import HEADER_UNSAFE
from notifications.transports.base import (
    DeliveryError,
    MessageRefused,
    Outgoing,
    PermanentDeliveryError,
    ServiceUnreachable,
    SlackOut,
    TemporaryDeliveryError,
    Waited,
    redact_url,
    scrub,
    url_secrets,
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
# those of them that refuse the message as paperwire made it, not the webhook (which works)
MESSAGE_REFUSED_ERRORS = frozenset(
    {
        "invalid_payload",
        "invalid_blocks",
        "invalid_blocks_format",
        "no_text",
        "too_many_attachments",
    }
)
# those of them that say the webhook itself is gone (removed, its channel archived or
# deleted): its subscriber must make a new one; nothing in paperwire's settings mends it
WEBHOOK_GONE_ERRORS = frozenset(
    {
        "channel_not_found",
        "channel_is_archived",
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "invalid_token",
    }
)

_GONE = (
    "the webhook was removed in Slack, or its channel deleted: its subscriber must make a new one"
)
# what the admin is told of a refusal of the webhook: who can mend it
WHAT_TO_DO = {
    **dict.fromkeys(WEBHOOK_GONE_ERRORS, _GONE),
    "channel_is_archived": "its channel is archived: its subscriber must unarchive the channel in "
    "Slack or make a webhook for another one",
    "action_prohibited": "the workspace's admins restricted posting there (the channel or the "
    "app): its subscriber must ask them, or make a webhook for another channel",
    "posting_to_general_channel_denied": "only admins may post in that channel: its subscriber "
    "must make a webhook for another channel",
}

# Slack's hosts of webhooks; under them, /workflows/… and /triggers/… are Workflow Builder's
SLACK_HOOK_HOSTS = ("hooks.slack.com", "hooks.slack-gov.com")
WORKFLOW_PATHS = ("/workflows/", "/triggers/")
WORKFLOW_WEBHOOK = (
    "is a Slack Workflow Builder webhook: it takes a workflow's variables, not a message, and "
    "would show none of the digest; make an incoming webhook instead (a Slack app with "
    "Incoming Webhooks turned on, https://api.slack.com/messaging/webhooks) and give its URL, "
    "https://hooks.slack.com/services/T…/B…/…"
)


def is_workflow_webhook(url: str) -> bool:
    """Whether `url` is a Slack Workflow Builder webhook (legacy `/workflows/…` or a webhook
    trigger, `/triggers/…`): Slack answers 200 to a message posted there and shows nothing
    of it (or the workflow's own message with its variables empty)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return False
    return host in SLACK_HOOK_HOSTS and parts.path.startswith(WORKFLOW_PATHS)


# what Slack's host answers when Slack itself is in trouble (its own 500, "rollup_error":
# "likely not your fault, retry later"; its front's 502, 503 and 504): on hooks.slack.com, where
# every incoming webhook is, no message's fault nor one webhook's
SLACK_TROUBLE = frozenset({500, 502, 503, 504})

DEFAULT_TIMEOUT = 15.0  # when neither the caller nor its HTTP client says
MAX_RETRY_AFTER = 86400.0  # a server's Retry-After is believed up to a day


class SlackWebhookTransport:
    """POST :class:`SlackOut` payloads to Slack incoming webhooks.

    * at most one message per ``min_interval`` seconds per webhook URL (Slack's limit is
      about one per second); the transport sleeps as needed — reuse one instance;
    * HTTP 429: sleeps for ``Retry-After`` and retries, at most ``max_429_retries`` times and
      ``max_retry_after`` seconds in all for one message (``SlackOut.waited``: the parts of a
      split message sent one by one share it); beyond that
      ``TemporaryDeliveryError(retry_after=...)`` (the caller retries the message later);
    * a 2xx whose body is not Slack's ``ok`` (a proxy's page, an empty answer): not posted,
      ``TemporaryDeliveryError``;
    * HTTP 5xx, 408 and network errors: ``TemporaryDeliveryError`` (with ``retry_after``
      when the server sent ``Retry-After``); a network error on Slack's host, and its 500,
      502, 503 and 504 (``SLACK_TROUBLE``, Slack's outage): ``ServiceUnreachable``, below;
    * other 4xx (``invalid_payload``, ``channel_not_found``, ...) and a webhook URL that is
      not one: ``PermanentDeliveryError``;
    * no answer within ``timeout`` seconds (one network operation): an error for that
      message, and every later message of the batch to the same server fails the same way
      at once, without a request (one timeout per server and batch). Not
      ``TransportUnavailable``: messages to other servers go on. On Slack's own host
      (``SLACK_HOOK_HOSTS``, where every incoming webhook is) a timeout or a network error
      is Slack's outage, ``ServiceUnreachable`` (the caller uses up no attempt); on a
      server of its own, ``TemporaryDeliveryError``.

    ``timeout`` defaults to the HTTP client's read timeout (else ``DEFAULT_TIMEOUT``). At
    most ``max_body_bytes`` of an answer are read. The webhook URL is a secret: errors and
    logs show only its host, and what a server answers is scrubbed of every part of the
    URL's path before it is shown (a proxy's 404 page may quote the request path).
    The ``httpx.Client`` belongs to the caller (it is not closed here). A message split into
    several payloads is sent in order; a failure stops at the failed payload.
    """

    name: str = "slack"
    max_blocks_per_message: ClassVar[int] = 50
    max_section_chars: ClassVar[int] = 3000
    max_header_chars: ClassVar[int] = 150
    max_429_retries: ClassVar[int] = 3
    max_retry_after: ClassVar[float] = 30.0
    max_body_bytes: ClassVar[int] = 4096

    def __init__(
        self,
        http: httpx.Client,
        *,
        min_interval: float = 1.0,
        timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.min_interval = min_interval
        self.timeout = timeout or http.timeout.read or DEFAULT_TIMEOUT
        self._sleep = sleep
        self._monotonic = monotonic
        self._last_sent: dict[str, float] = {}
        self._silent: set[str] = set()  # servers (scheme://host:port) that timed out this batch

    def __repr__(self) -> str:
        return f"SlackWebhookTransport(min_interval={self.min_interval}, timeout={self.timeout})"

    def __enter__(self) -> SlackWebhookTransport:
        self._silent.clear()
        return self

    def __exit__(self, *exc: object) -> None:
        self._silent.clear()

    def send(self, out: Outgoing) -> None:
        """Post every payload of ``out`` in order; raise Temporary/PermanentDeliveryError."""
        if not isinstance(out, SlackOut):
            raise TypeError(f"{type(self).__name__} sends SlackOut, not {type(out).__name__}")
        hook = _Hook(out.webhook_url)
        if hook.server in self._silent:
            raise hook.unreachable(
                f"{hook.where}: not tried, the server did not answer earlier in this batch"
            )
        total = out.parts or len(out.payloads)
        for index, payload in enumerate(out.payloads, start=out.first_part):
            self._post(hook, payload, f"{hook.where} (payload {index}/{total})", out.waited)

    # ------------------------------------------------------------------ internals

    def _wait_turn(self, url: str) -> None:
        last = self._last_sent.get(url)
        if last is None:
            return
        wait = self.min_interval - (self._monotonic() - last)
        if wait > 0:
            self._sleep(wait)

    def _post(self, hook: _Hook, payload: dict[str, Any], where: str, waited: Waited) -> None:
        """POST one payload, sleeping through short 429s within the message's budget (what
        it has `waited` so far, counted there)."""
        while True:
            self._wait_turn(hook.url)
            status, headers, body = self._request(hook, payload, where)
            if 200 <= status < 300 and body.strip() == "ok":
                log.debug("%s: delivered", where)
                return
            if 200 <= status < 300:  # not Slack's answer: it says "ok" to a message it posts
                raise TemporaryDeliveryError(
                    f"{where}: HTTP {status} {_short(hook.scrub(body))!r} is not Slack's 'ok': "
                    "something between here and Slack answered (a proxy?), the message was "
                    "not posted"
                )
            if status != 429:
                raise self._failure(status, headers, hook.scrub(body), where, hook.on_slack)
            retry_after = _retry_after(headers.get("Retry-After"), self.min_interval)
            if (
                waited.retries >= self.max_429_retries
                or waited.seconds + retry_after > self.max_retry_after
            ):
                raise TemporaryDeliveryError(
                    f"{where}: rate limited (HTTP 429), retry after {retry_after:g}s",
                    retry_after=retry_after,
                )
            waited.retries += 1
            waited.seconds += retry_after
            log.info("%s: HTTP 429, sleeping %.1fs (retry %d)", where, retry_after, waited.retries)
            self._sleep(retry_after)

    def _request(
        self, hook: _Hook, payload: dict[str, Any], where: str
    ) -> tuple[int, httpx.Headers, str]:
        """One POST: status, headers and the start of the body; network failures raised as
        delivery errors (httpx's messages may quote the URL: only their type is shown)."""
        try:
            with self.http.stream("POST", hook.url, json=payload, timeout=self.timeout) as r:
                return r.status_code, r.headers, _read_start(r, self.max_body_bytes)
        except httpx.TimeoutException as exc:
            message = f"{where}: no answer within {self.timeout:g}s ({type(exc).__name__})"
            if isinstance(exc, httpx.PoolTimeout):  # our own pool's wait, not the server's
                raise TemporaryDeliveryError(message) from None
            self._silent.add(hook.server)
            raise hook.unreachable(message) from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol):
            raise PermanentDeliveryError(f"{where}: not a usable webhook URL") from None
        except httpx.TransportError as exc:  # connecting, reading, the connection lost
            raise hook.unreachable(f"{where}: network error ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise TemporaryDeliveryError(f"{where}: network error ({type(exc).__name__})") from None
        finally:
            self._last_sent[hook.url] = self._monotonic()

    def _failure(
        self, status: int, headers: httpx.Headers, body: str, where: str, on_slack: bool
    ) -> DeliveryError:
        text = _short(body)
        message = f"{where}: HTTP {status} {text}".rstrip()
        if status >= 500 or status == 408:
            retry_after = headers.get("Retry-After")
            wait = _retry_after(retry_after, 0.0) if retry_after is not None else None
            if on_slack and status in SLACK_TROUBLE:  # Slack's outage, as when it is silent
                return ServiceUnreachable(
                    f"{message} (Slack's own trouble: retried without using an attempt)",
                    retry_after=wait or None,
                )
            return TemporaryDeliveryError(message, retry_after=wait or None)
        if text in MESSAGE_REFUSED_ERRORS:
            return MessageRefused(
                f"{message} (Slack refused the message as paperwire made it, not the webhook: "
                "a paperwire bug, worth reporting)"
            )
        if text not in PERMANENT_SLACK_ERRORS:
            log.warning("%s: unexpected HTTP %d %r, treating as permanent", where, status, text)
        elif text in WHAT_TO_DO:
            message += f" ({WHAT_TO_DO[text]})"
        return PermanentDeliveryError(message)


class _Hook:
    """A webhook URL with what may be shown of it and what must be hidden."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = f"Slack webhook {redact_url(url)}"
        self.secrets = url_secrets(url)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            parts, port = None, None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or HEADER_UNSAFE.search(url)
            or " " in url
        ):
            raise PermanentDeliveryError(f"{self.where}: not a usable webhook URL")
        if is_workflow_webhook(url):  # stored before such URLs were refused when entered
            raise PermanentDeliveryError(f"{self.where} {WORKFLOW_WEBHOOK}")
        self.server = f"{parts.scheme}://{parts.hostname}:{port or ''}"
        self.on_slack = parts.hostname in SLACK_HOOK_HOSTS  # where every incoming webhook is

    def unreachable(self, message: str) -> TemporaryDeliveryError:
        """The error for a server that did not answer or could not be reached: on Slack's
        host, Slack's outage (no message's fault); elsewhere, that one server's."""
        if self.on_slack:
            return ServiceUnreachable(
                f"{message} (Slack out of reach: retried without using an attempt)"
            )
        return TemporaryDeliveryError(message)

    def scrub(self, text: str) -> str:
        return scrub(text, self.secrets)


def _read_start(response: httpx.Response, limit: int) -> str:
    """At most ``limit`` bytes of the body (Slack answers with a few words; a huge or endless
    body is not read to its end)."""
    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= limit:
            break
    return data[:limit].decode(response.encoding or "utf-8", "replace")


def _short(text: str, limit: int = 100) -> str:
    """Slack answers with a short error code; keep error messages one short line."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _retry_after(value: str | None, default: float) -> float:
    """Parse ``Retry-After``: delta-seconds or an HTTP date, at most ``MAX_RETRY_AFTER``;
    ``default`` if absent or garbled (``inf``, ``nan``...)."""
    if value is None:
        return default
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            return default
    if not math.isfinite(seconds):
        return default
    return min(max(0.0, seconds), MAX_RETRY_AFTER)
