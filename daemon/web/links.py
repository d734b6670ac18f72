"""Signed links in digests: like, dislike, unsubscribe and the subscriber's own page ("manage"),
verifiable without a database lookup.

Payloads (compact JSON lists):

- ``["like" | "dislike", user, paper, channel]``: the channel the digest went to;
- ``["unsubscribe", user, channel]``: stops that channel (address) only;
- ``["manage", user, issued_at, 1]`` (unix seconds): opens the subscriber's page until it
  expires (`server.manage_link_days`). Without the final 1 (``["manage", user, issued_at]``)
  it was made by an earlier version, which put it in Slack digests too, where the channel's
  readers may open it (`LinkAction.unmarked`; the pages narrow it: `subscriber.open_page`).

A like or dislike link is shorter (`Links.feedback_token`): ``l`` or ``d``, the user, paper and
channel in base 36 joined by ``-``, ``.``, and 120 bits of HMAC-SHA256 (20 characters), 35
characters where the serializer's token of the same payload takes 66: a digest carries two a
pick, and the HTML of 100 picks must stay within what Gmail shows (notifications/render.py).
Feedback tokens in the serializer's format, made before, stay readable.

Tokens made before channels were named (``["like", user, paper]``, ``["unsubscribe", user]``)
stay readable: their `channel_id` is None, and an unsubscribe without a channel stops every
channel of the user, as it always did.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from itsdangerous import BadSignature, URLSafeSerializer

from daemon.errors import PaperwireError

Action = Literal["like", "dislike", "unsubscribe", "manage"]


class BadLink(PaperwireError):
    """The token of a link is forged, truncated or from another installation."""


@dataclass(frozen=True)
class LinkAction:
    action: Action
    user_id: int
    paper_id: int | None = None
    channel_id: int | None = None  # None: a link made before links named their channel
    issued_at: int | None = None  # "manage" only: unix seconds
    # "manage" only: made without `MANAGE_MARK`, by a version that put the page's link in the
    # Slack digests of every subscriber
    unmarked: bool = False


SALT = b"paperwire-links-v1"
SIGNUP_SALT = b"paperwire-signup-v1"  # a sign-up link names an address, not a user
FEEDBACK_SALT = b"paperwire-feedback-v2"  # the compact like / dislike tokens
# 120 bits: a guessed MAC is right once in 2^120. RFC 2104 §5 asks at least 80 bits, and half
# the hash (128 for SHA-256) for the birthday bound of an internal collision, which needs
# about 2^128 links signed by us however many bits are kept: 15 bytes are 20 base64
# characters without padding, where 16 would take 22
FEEDBACK_MAC_BYTES = 15
# a compact feedback token: action, user, paper, channel (optional: None), then its MAC
_FEEDBACK = re.compile(
    r"([ld])([0-9a-z]{1,14})-([0-9a-z]{1,14})(?:-([0-9a-z]{1,14}))?\.([A-Za-z0-9_-]{20})"
)
_FEEDBACK_ACTIONS: dict[str, Literal["like", "dislike"]] = {"l": "like", "d": "dislike"}
# the last element of a manage token made since a Slack digest carries the page's link only
# for a subscriber with no email address (delivery._manage_url)
MANAGE_MARK = 1


class Links:
    """Makes and reads the signed tokens of the links (itsdangerous's `URLSafeSerializer`
    format: base64url(compact JSON) "." base64url(HMAC-SHA1))."""

    def __init__(self, secret: str, base_url: str) -> None:
        self._signer = URLSafeSerializer(secret, salt=SALT)
        # the serializer's key, derived once: a digest carries ~20 links, and making each
        # through the serializer (a signer object, a derivation, a zlib attempt) cost more
        # than rendering the rest of the message
        self._key = hashlib.sha1(SALT + b"signer" + secret.encode()).digest()
        # keyed once: a copy per token (1.1 µs; `hmac.digest` keys it anew, 1.6 µs)
        self._mac = hmac.new(self._key, digestmod=hashlib.sha1)
        self.base_url = base_url.rstrip("/")
        self._signup = URLSafeSerializer(secret, salt=SIGNUP_SALT)
        feedback_key = hmac.new(secret.encode(), FEEDBACK_SALT, hashlib.sha256).digest()
        self._feedback_mac = hmac.new(feedback_key, digestmod=hashlib.sha256)

    def token(
        self,
        action: Action,
        user_id: int,
        paper_id: int | None = None,
        channel_id: int | None = None,
        issued_at: int | None = None,
        mark: int | None = None,
    ) -> str:
        """The token `URLSafeSerializer(secret, salt=SALT).dumps(payload)` makes (tested), read
        by its `loads` like any other, but never compressed: the serializer tries zlib on every
        payload and keeps the result when it is 2 bytes shorter, which for these few numbers
        needs repeated digits (1000000000, or one number twice) and saves a few bytes, while
        the attempt cost three quarters of the token's time (12 of 17 µs, ~22 links a digest;
        a delivery worker's CPU fell by 3–6 % without it)."""
        payload: list[object] = [action, user_id]
        for extra in (paper_id, channel_id, issued_at, mark):
            if extra is not None:
                payload.append(extra)
        # what json.dumps(payload, separators=(",", ":")) writes for an ASCII action and ints
        data = ('["' + action + '",' + ",".join(map(str, payload[1:])) + "]").encode()
        body = base64.urlsafe_b64encode(data).rstrip(b"=")
        signer = self._mac.copy()
        signer.update(body)
        mac = signer.digest()
        return (body + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode("ascii")

    def feedback_token(
        self,
        action: Literal["like", "dislike"],
        user_id: int,
        paper_id: int,
        channel_id: int | None = None,
    ) -> str:
        """The compact token of a like or dislike link (``l9ix-lfls-1gdu.`` and its MAC)."""
        numbers = (user_id, paper_id) if channel_id is None else (user_id, paper_id, channel_id)
        payload = action[0] + "-".join(map(_base36, numbers))
        return f"{payload}.{self._feedback_sign(payload)}"

    def _feedback_sign(self, payload: str) -> str:
        mac = self._feedback_mac.copy()
        mac.update(payload.encode("ascii"))
        return base64.urlsafe_b64encode(mac.digest()[:FEEDBACK_MAC_BYTES]).decode("ascii")

    def feedback_url(
        self,
        action: Literal["like", "dislike"],
        user_id: int,
        paper_id: int,
        channel_id: int | None = None,
    ) -> str:
        return f"{self.base_url}/f/{self.feedback_token(action, user_id, paper_id, channel_id)}"

    def unsubscribe_url(self, user_id: int, channel_id: int | None = None) -> str:
        token = self.token("unsubscribe", user_id, channel_id=channel_id)
        return f"{self.base_url}/unsubscribe/{token}"

    def manage_url(self, user_id: int, issued_at: datetime) -> str:
        """The subscriber's own page, valid `server.manage_link_days` from `issued_at`."""
        stamp = int(issued_at.timestamp())
        token = self.token("manage", user_id, issued_at=stamp, mark=MANAGE_MARK)
        return f"{self.base_url}/me/{token}"

    def read_manage(self, token: str, now: datetime, days: int) -> LinkAction:
        """A manage token, checked and not expired (BadLink otherwise)."""
        link = self.read(token)
        if link.action != "manage" or link.issued_at is None:
            raise BadLink("this link does not open a subscriber's page")
        issued = datetime.fromtimestamp(link.issued_at, UTC)
        if now >= issued + timedelta(days=days) or issued > now + timedelta(minutes=5):
            raise BadLink(
                "this link has expired: ask for a fresh one on the page /manage "
                "(it is mailed to you at once)"
            )
        return link

    def signup_url(self, address: str, issued_at: datetime) -> str:
        """The link that confirms a self-signup of `address` (double opt-in)."""
        token = self._signup.dumps([address, int(issued_at.timestamp())])
        return f"{self.base_url}/signup/{token}"

    def read_signup(self, token: str, now: datetime, hours: int) -> str:
        """The address a sign-up link confirms (BadLink if forged or older than `hours`)."""
        try:
            data = self._signup.loads(token)
        except BadSignature as e:
            raise BadLink("this link is not valid (it may be cut short or altered)") from e
        if not (
            isinstance(data, list)
            and len(data) == 2
            and isinstance(data[0], str)
            and isinstance(data[1], int)
        ):
            raise BadLink("this link is not valid")
        if now >= datetime.fromtimestamp(data[1], UTC) + timedelta(hours=hours):
            raise BadLink("this link has expired: sign up again on the page /signup")
        return data[0]

    def form_token(self, token: str) -> str:
        """The CSRF token the forms of a page opened by `token` carry (derived from it: the
        page keeps no session)."""
        return hmac.new(self._key, b"form:" + token.encode(), hashlib.sha256).hexdigest()[:32]

    def read(self, token: str) -> LinkAction:
        compact = _FEEDBACK.fullmatch(token)
        if compact is not None:
            return self._read_feedback(token, compact)
        try:
            data = self._signer.loads(token)
        except BadSignature as e:
            raise BadLink("this link is not valid (it may be cut short or altered)") from e
        if not isinstance(data, list) or not 2 <= len(data) <= 4:
            raise BadLink("this link is not valid")
        action, user_id, rest = data[0], data[1], data[2:]
        if not isinstance(user_id, int) or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in rest
        ):
            raise BadLink("this link is not valid")
        if action in ("like", "dislike") and len(rest) in (1, 2):
            return LinkAction(action, user_id, paper_id=rest[0], channel_id=_opt(rest, 1))
        if action == "unsubscribe" and len(rest) in (0, 1):
            return LinkAction(action, user_id, channel_id=_opt(rest, 0))
        if action == "manage" and (len(rest) == 1 or rest[1:] == [MANAGE_MARK]):
            return LinkAction(action, user_id, issued_at=rest[0], unmarked=len(rest) == 1)
        raise BadLink("this link is not valid")

    def _read_feedback(self, token: str, m: re.Match[str]) -> LinkAction:
        """A compact like / dislike token (`feedback_token`), checked."""
        payload, mac = token.rsplit(".", 1)
        if not hmac.compare_digest(mac, self._feedback_sign(payload)):
            raise BadLink("this link is not valid (it may be cut short or altered)")
        user, paper, channel = m.group(2), m.group(3), m.group(4)
        if any(n != _base36(int(n, 36)) for n in (user, paper, channel) if n is not None):
            raise BadLink("this link is not valid")  # signed, but written otherwise: not ours
        return LinkAction(
            _FEEDBACK_ACTIONS[m.group(1)],
            int(user, 36),
            paper_id=int(paper, 36),
            channel_id=None if channel is None else int(channel, 36),
        )


def _base36(n: int) -> str:
    """`n` (≥ 0) in base 36, digits then lower-case letters: what ``int(text, 36)`` reads."""
    if n < 0:
        raise ValueError(f"a link names ids of 0 or more, not {n}")
    digits = ""
    while True:
        n, digit = divmod(n, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
        if not n:
            return digits


def _opt(values: list[int], index: int) -> int | None:
    return values[index] if len(values) > index else None
