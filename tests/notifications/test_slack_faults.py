"""The Slack webhook transport against the real local HTTP server made to fail on purpose:
each fault's classification, its bound in time, and the webhook's secret path kept out of
every error and log line, even when the server echoes it back.

No test depends on speed: sleeps go through a fake clock, the hang uses a short timeout, and
the assertions are on what was attempted."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import httpx
import pytest

from notifications.transports.base import (
    DeliveryError,
    MessageRefused,
    PermanentDeliveryError,
    ServiceUnreachable,
    TemporaryDeliveryError,
    TransportUnavailable,
)
from notifications.transports.slack import MAX_RETRY_AFTER, SlackWebhookTransport
from tests.notifications.factories import SECRET_PATH, FakeClock, assert_secret_hidden, slack_out
from tests.servers import (
    CLOSED_PORT,
    HttpServer,
    http_server,
    resolves_to_loopback,
    unresolvable,
)

HANG_TIMEOUT = 0.5
TOKEN = SECRET_PATH.rsplit("/", 1)[1]  # XXXXSECRETXXXX


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


@pytest.fixture
def server() -> Iterator[HttpServer]:
    with http_server() as hooks:
        yield hooks


def transport(http: httpx.Client, clock: FakeClock, **kwargs: float) -> SlackWebhookTransport:
    return SlackWebhookTransport(http, sleep=clock.sleep, monotonic=clock.monotonic, **kwargs)


def outcome(t: SlackWebhookTransport, url: str) -> DeliveryError | None:
    try:
        t.send(slack_out(url, picks=1))
    except DeliveryError as exc:
        return exc
    return None


# ------------------------------------------------------------------ the faults


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "retry_after"),
    [
        (429, "rate_limited", {"Retry-After": "120"}, TemporaryDeliveryError, 120.0),
        (500, "internal_error", {}, TemporaryDeliveryError, None),
        (503, "service_unavailable", {"Retry-After": "40"}, TemporaryDeliveryError, 40.0),
        (400, "invalid_payload", {}, MessageRefused, None),  # paperwire's, not the webhook's
        (404, "channel_not_found", {}, PermanentDeliveryError, None),
    ],
)
def test_each_webhook_fault_has_one_clear_classification(
    http: httpx.Client,
    clock: FakeClock,
    server: HttpServer,
    status: int,
    body: str,
    headers: dict[str, str],
    expected: type[DeliveryError],
    retry_after: float | None,
) -> None:
    server.reply(status, body, headers)
    server.reply(200, "ok")  # what a retry in the same send would get
    error = outcome(transport(http, clock), server.url_for(SECRET_PATH))
    assert type(error) is expected, error
    assert isinstance(error, DeliveryError)
    assert f"HTTP {status}" in str(error)
    assert status == 429 or body in str(error)
    assert len(server.requests) == 1  # not retried within the send: the job decides when
    assert clock.sleeps == []
    if isinstance(error, TemporaryDeliveryError):
        assert error.retry_after == retry_after
    assert_secret_hidden(error)


@pytest.mark.parametrize(
    ("status", "body", "says"),
    [
        (404, "no_service", "removed in Slack"),
        (404, "channel_not_found", "removed in Slack"),
        (410, "channel_is_archived", "unarchive the channel"),
        (403, "action_prohibited", "restricted posting"),
        (403, "posting_to_general_channel_denied", "another channel"),
    ],
)
def test_slacks_refusals_of_a_webhook_say_who_can_mend_it(
    http: httpx.Client, clock: FakeClock, server: HttpServer, status: int, body: str, says: str
) -> None:
    # the admin saw "HTTP 403 action_prohibited", and `status` said "fix the address"
    server.reply(status, body)
    error = outcome(transport(http, clock), server.url_for(SECRET_PATH))
    assert type(error) is PermanentDeliveryError, error
    assert f"HTTP {status} {body}" in str(error) and says in str(error)
    assert "subscriber" in str(error)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, "<html><title>Sign in to continue</title></html>"),
        (200, ""),
        (204, ""),
        (201, "created"),
    ],
)
def test_a_success_that_is_not_slacks_ok_is_not_taken_for_delivered(
    http: httpx.Client, clock: FakeClock, server: HttpServer, status: int, body: str
) -> None:
    # Slack says a message was posted with 200 and the body "ok", nothing else; any 2xx was
    # taken for it: a proxy's sign-in page (200) had the digest recorded as sent, never posted
    server.reply(status, body)
    error = outcome(transport(http, clock), server.url_for(SECRET_PATH))
    assert type(error) is TemporaryDeliveryError, error
    assert f"HTTP {status}" in str(error) and "not Slack's 'ok'" in str(error)
    assert_secret_hidden(error)


def test_slacks_ok_is_delivered(http: httpx.Client, clock: FakeClock, server: HttpServer) -> None:
    server.reply(200, "ok\n", {"Content-Type": "text/html"})
    assert outcome(transport(http, clock), server.url_for(SECRET_PATH)) is None


def test_short_429s_are_slept_through_within_a_budget_per_message(
    http: httpx.Client, clock: FakeClock, server: HttpServer
) -> None:
    for _ in range(3):
        server.reply(429, "rate_limited", {"Retry-After": "20"})
    t = transport(http, clock)
    error = outcome(t, server.url_for(SECRET_PATH))
    assert clock.sleeps == [20.0]  # the second 20 s would pass the 30 s budget
    assert isinstance(error, TemporaryDeliveryError) and error.retry_after == 20.0
    assert len(server.requests) == 2
    assert sum(clock.sleeps) <= t.max_retry_after


def test_the_429_retries_of_a_message_in_several_payloads_are_counted_in_all(
    http: httpx.Client, clock: FakeClock, server: HttpServer
) -> None:
    # the count of retries started again at each payload: 3 for each of them
    out = slack_out(server.url_for(SECRET_PATH), picks=1)
    two = dataclasses.replace(out, payloads=out.payloads * 2)
    for status in (429, 429, 200, 429, 429, 200):
        server.reply(status, "ok" if status == 200 else "rate_limited", {"Retry-After": "1"})
    t = transport(http, clock, min_interval=0.0)
    with pytest.raises(TemporaryDeliveryError, match=r"payload 2/2\): rate limited"):
        t.send(two)
    assert clock.sleeps == [1.0] * t.max_429_retries
    assert len(server.requests) == 5


@pytest.mark.parametrize(
    "value", ["inf", "nan", "1e300", "-5", "soon", "Wed, 21 Oct 9999 07:28:00"]
)
def test_a_garbled_retry_after_stays_a_sane_number(
    http: httpx.Client, clock: FakeClock, server: HttpServer, value: str
) -> None:
    for _ in range(5):
        server.reply(429, "rate_limited", {"Retry-After": value})
    error = outcome(transport(http, clock), server.url_for(SECRET_PATH))
    assert isinstance(error, TemporaryDeliveryError)
    assert error.retry_after is not None and 0 <= error.retry_after <= MAX_RETRY_AFTER
    assert sum(clock.sleeps) <= SlackWebhookTransport.max_retry_after


def test_a_webhook_server_that_never_answers_costs_one_timeout_per_batch(
    http: httpx.Client, clock: FakeClock, server: HttpServer
) -> None:
    server.hang(times=10)
    with http_server() as other:
        t = transport(http, clock, timeout=HANG_TIMEOUT)
        with t:
            first = outcome(t, server.url_for(SECRET_PATH))
            second = outcome(t, server.url_for("/services/T1111/B1111/ANOTHERTOKEN"))
            # a server that answers is given the usual timeout: in 0.5 s a loaded machine's
            # pause would have made its answer "no answer"
            t.timeout = 5.0
            elsewhere = outcome(t, other.url_for(SECRET_PATH))
            t.timeout = HANG_TIMEOUT
        assert type(first) is TemporaryDeliveryError  # that message: retried later
        assert "no answer within 0.5s" in str(first)
        assert type(second) is TemporaryDeliveryError and "not tried" in str(second)
        assert len(server.requests) == 1  # the second message did not wait for it again
        assert elsewhere is None and len(other.requests) == 1  # other servers are not held up
        assert not isinstance(first, TransportUnavailable)
        assert_secret_hidden(first)
        assert "ANOTHERTOKEN" not in str(second)
        # the next batch tries the server again
        with t:
            assert isinstance(outcome(t, server.url_for(SECRET_PATH)), TemporaryDeliveryError)
        assert len(server.requests) == 2


def test_slack_itself_silent_or_out_of_reach_is_no_messages_fault(
    http: httpx.Client, clock: FakeClock, server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every incoming webhook is on Slack's host: its timeout or a connection it refuses is
    Slack's outage, not one message's nor one webhook's (the job keeps the digest without
    using up an attempt). A server of its own stays a TemporaryDeliveryError (above)."""
    resolves_to_loopback(monkeypatch, "hooks.slack.com")
    server.hang(times=10)
    port = urlsplit(server.url_for("/")).port
    t = transport(http, clock, timeout=HANG_TIMEOUT)
    with t:
        first = outcome(t, f"http://hooks.slack.com:{port}{SECRET_PATH}")
        second = outcome(t, f"http://hooks.slack.com:{port}/services/T1/B1/OTHERTOKEN")
    assert type(first) is ServiceUnreachable and "no answer within 0.5s" in str(first)
    assert type(second) is ServiceUnreachable and "not tried" in str(second)
    assert len(server.requests) == 1
    with t:
        refused = outcome(t, f"http://hooks.slack.com:{CLOSED_PORT}{SECRET_PATH}")
    assert type(refused) is ServiceUnreachable and "network error" in str(refused)
    for error in (first, second, refused):
        assert "SECRET" not in str(error) and "/services" not in str(error)
        assert "http://hooks.slack.com/…" in str(error)


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [(500, {}, None), (502, {}, None), (503, {"Retry-After": "600"}, 600.0), (504, {}, None)],
)
def test_slack_itself_answering_a_server_error_is_no_messages_fault(
    http: httpx.Client,
    clock: FakeClock,
    server: HttpServer,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    headers: dict[str, str],
    retry_after: float | None,
) -> None:
    """A Slack-wide outage answering 5xx (its front's 502/503/504, its own 500) is Slack's
    trouble as much as one that answers nothing: every incoming webhook is on its host. It used
    up an attempt of each Slack digest per run (about 5 h of it failed the day's digests).
    Each message still gets its request (Slack may be back for the next one), and a
    Retry-After is kept. A server of its own answering so stays one server's fault (above)."""
    resolves_to_loopback(monkeypatch, "hooks.slack.com")
    port = urlsplit(server.url_for("/")).port
    t = transport(http, clock)
    with t:
        for _ in range(2):
            server.reply(status, "service_unavailable", headers)
        first = outcome(t, f"http://hooks.slack.com:{port}{SECRET_PATH}")
        second = outcome(t, f"http://hooks.slack.com:{port}/services/T1/B1/OTHERTOKEN")
    for error in (first, second):
        assert type(error) is ServiceUnreachable, error
        assert f"HTTP {status} service_unavailable" in str(error)
        assert "without using an attempt" in str(error)
        assert error.retry_after == retry_after
        assert "SECRET" not in str(error) and "/services" not in str(error)
    assert len(server.requests) == 2  # not "not tried": each message asks Slack again
    server.reply(status, "service_unavailable")
    own = outcome(t, server.url_for(SECRET_PATH))
    assert type(own) is TemporaryDeliveryError


# ------------------------------------------------------------------ the secret path


ECHOES = [
    "<html><body><h1>404 Not Found</h1><p>Cannot POST {path}</p></body></html>",
    '{{"error": "no route", "path": "{json_path}"}}',
    "not found: {quoted}",
    "not found: {upper}",
    "unknown token {token}",
]


@pytest.mark.parametrize("status", [404, 502])
@pytest.mark.parametrize("template", ECHOES)
def test_a_server_echoing_the_webhook_path_never_leaks_it(
    http: httpx.Client,
    clock: FakeClock,
    server: HttpServer,
    caplog: pytest.LogCaptureFixture,
    template: str,
    status: int,
) -> None:
    """The issue's proxy 404 page quoting `/services/T…/B…/X…`, and its other spellings."""
    caplog.set_level(logging.DEBUG)
    body = template.format(
        path=SECRET_PATH,
        json_path=json.dumps(SECRET_PATH)[1:-1].replace("/", "\\/"),
        quoted=quote(SECRET_PATH, safe=""),
        upper=SECRET_PATH.upper(),
        token=TOKEN,
    )
    server.reply(status, body)
    error = outcome(transport(http, clock), server.url_for(SECRET_PATH))
    assert isinstance(error, PermanentDeliveryError if status == 404 else TemporaryDeliveryError)
    assert_secret_hidden(error)
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("notifications")]
    text = f"{error} {error!r} " + " ".join(ours)  # (httpx's own log is the daemon's to quiet)
    for secret in ("SECRET", "secret", "T0000", "B0000"):
        assert secret not in text, text


def test_a_webhook_url_that_is_not_one_is_permanent_and_not_requested(
    http: httpx.Client, clock: FakeClock, server: HttpServer
) -> None:
    for url in (
        server.url_for(SECRET_PATH) + "\r\nX-Evil: 1",
        "ftp://127.0.0.1" + SECRET_PATH,
        "https:///services/no/host/SECRET",
    ):
        error = outcome(transport(http, clock), url)
        assert isinstance(error, PermanentDeliveryError), url
        assert "SECRET" not in str(error) and "not a usable webhook URL" in str(error)
    assert server.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/workflows/T0000/A0000/1234/XXXXSECRETXXXX",
        "https://hooks.slack.com/triggers/T0000/1234/XXXXSECRETXXXX",
    ],
)
def test_a_workflow_builder_webhook_stored_earlier_is_refused_without_a_request(
    http: httpx.Client, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    # taken when added before they were refused there: Slack answers 200 to the blocks it
    # ignores, and the digest was recorded as sent though its channel showed none of it
    unresolvable(monkeypatch, "hooks.slack.com")  # a request would be a network error
    error = outcome(transport(http, clock), url)
    assert type(error) is PermanentDeliveryError, error
    assert "Workflow Builder" in str(error) and "incoming webhook" in str(error)
    assert "SECRET" not in str(error) and "T0000" not in str(error)


def test_only_the_start_of_a_huge_answer_is_read(
    http: httpx.Client, clock: FakeClock, server: HttpServer
) -> None:
    server.reply(500, "x" * 2_000_000)
    error = outcome(transport(http, clock), server.url_for(SECRET_PATH))
    assert isinstance(error, TemporaryDeliveryError) and len(str(error)) < 200
