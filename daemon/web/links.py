"""Signed links in digests: like, dislike and unsubscribe, verifiable without a database lookup."""

from __future__ import annotations

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


class Links:
    def __init__(self, secret: str, base_url: str) -> None:
        self._signer = URLSafeSerializer(secret, salt="paperwire-links-v1")
        self.base_url = base_url.rstrip("/")

    def token(self, action: Action, user_id: int, paper_id: int | None = None) -> str:
        payload: list[object] = [action, user_id]
        if paper_id is not None:
            payload.append(paper_id)
        return str(self._signer.dumps(payload))

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
