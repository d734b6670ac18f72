"""Signed links in digests: like, dislike and unsubscribe, verifiable without a database lookup."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import zlib
from dataclasses import dataclass
from typing import Literal

from itsdangerous import BadSignature, URLSafeSerializer

from daemon.errors import PaperwireError

Action = Literal["like", "dislike", "unsubscribe"]


class BadLink(PaperwireError):
    """The token of a link is forged, truncated or from another installation."""


@dataclass(frozen=True)
class LinkAction:
    action: Action
    user_id: int
    paper_id: int | None = None


SALT = b"paperwire-links-v1"


class Links:
    """Makes and reads the signed tokens of the links (itsdangerous's `URLSafeSerializer`
    format: base64url(compact JSON) "." base64url(HMAC-SHA1))."""

    def __init__(self, secret: str, base_url: str) -> None:
        self._signer = URLSafeSerializer(secret, salt=SALT)
        # the serializer's key, derived once: a digest carries ~20 links, and making each
        # through the serializer (a signer object, a derivation, a zlib attempt) cost more
        # than rendering the rest of the message
        self._key = hashlib.sha1(SALT + b"signer" + secret.encode()).digest()
        self.base_url = base_url.rstrip("/")

    def token(self, action: Action, user_id: int, paper_id: int | None = None) -> str:
        """The same token as `URLSafeSerializer(secret, salt=SALT).dumps(payload)` (tested):
        a payload this small is never compressed."""
        payload: list[object] = [action, user_id]
        if paper_id is not None:
            payload.append(paper_id)
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        if len(zlib.compress(data)) < len(data) - 1:  # never for these, but keep the format
            return str(self._signer.dumps(payload))
        body = base64.urlsafe_b64encode(data).rstrip(b"=")
        mac = hmac.new(self._key, body, hashlib.sha1).digest()
        return (body + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode("ascii")

    def feedback_url(self, action: Literal["like", "dislike"], user_id: int, paper_id: int) -> str:
        return f"{self.base_url}/f/{self.token(action, user_id, paper_id)}"

    def unsubscribe_url(self, user_id: int) -> str:
        return f"{self.base_url}/unsubscribe/{self.token('unsubscribe', user_id)}"

    def read(self, token: str) -> LinkAction:
        try:
            data = self._signer.loads(token)
        except BadSignature as e:
            raise BadLink("this link is not valid (it may be cut short or altered)") from e
        if not isinstance(data, list) or len(data) not in (2, 3):
            raise BadLink("this link is not valid")
        action, user_id = data[0], data[1]
        if action not in ("like", "dislike", "unsubscribe") or not isinstance(user_id, int):
            raise BadLink("this link is not valid")
        paper_id = data[2] if len(data) == 3 else None
        if action != "unsubscribe" and not isinstance(paper_id, int):
            raise BadLink("this link is not valid")
        return LinkAction(action=action, user_id=user_id, paper_id=paper_id)
