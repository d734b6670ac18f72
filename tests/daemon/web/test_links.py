"""Signed link tokens: made without the serializer's overhead, but exactly its format."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer

from daemon.web.links import SALT, BadLink, Links


@pytest.mark.parametrize("secret", ["k", "x" * 32, "ünïcode-sécret-✓"])
def test_tokens_are_the_serializers_own(secret: str) -> None:
    links, reference = Links(secret, "http://h"), URLSafeSerializer(secret, salt=SALT)
    cases = [("like", 1, 2), ("dislike", 987654321, 123456789012), ("unsubscribe", 7, None)]
    for action, user, paper in cases:
        payload = [action, user] if paper is None else [action, user, paper]
        token = links.token(action, user, paper)  # type: ignore[arg-type]
        assert token == reference.dumps(payload)
        assert links.read(token).user_id == user


def test_a_payload_the_serializer_would_compress_is_signed_uncompressed_and_still_reads() -> None:
    links, reference = Links("k", "http://h"), URLSafeSerializer("k", salt=SALT)
    payload = ["like", 111111111111111111, 111111111111111111]  # or 10**9, 10**12
    compressed = reference.dumps(payload)
    assert compressed.startswith(".")  # the serializer's mark of a zlib payload
    token = links.token("like", 111111111111111111, 111111111111111111)
    assert not token.startswith(".") and len(token) > len(compressed)
    assert reference.loads(token) == payload
    read = links.read(token)
    assert (read.user_id, read.paper_id) == (111111111111111111, 111111111111111111)
    assert links.read(compressed).paper_id == 111111111111111111  # one made before this change


def test_a_token_signed_with_another_key_is_refused() -> None:
    token = Links("one key", "http://h").token("like", 1, 2)
    with pytest.raises(BadLink):
        Links("another key", "http://h").read(token)


def test_channel_and_manage_tokens_are_the_serializers_own_too() -> None:
    links, reference = Links("k", "http://h"), URLSafeSerializer("k", salt=SALT)
    assert links.token("like", 1, 2, 3) == reference.dumps(["like", 1, 2, 3])
    assert links.token("unsubscribe", 1, channel_id=3) == reference.dumps(["unsubscribe", 1, 3])
    manage = links.token("manage", 1, issued_at=1_700_000_000)
    assert manage == reference.dumps(["manage", 1, 1_700_000_000])
    read = links.read(manage)
    assert (read.action, read.user_id, read.issued_at) == ("manage", 1, 1_700_000_000)


@pytest.mark.parametrize(
    "payload",
    [
        ["manage", 1],  # no issue time
        ["manage", 1, 2, 3],
        ["like", 1],  # no paper
        ["like", 1, 2, 3, 4],
        ["unsubscribe", 1, True],
        ["unsubscribe", 1, "3"],
        ["admin", 1, 2],
    ],
)
def test_malformed_payloads_are_refused(payload: list[object]) -> None:
    token = URLSafeSerializer("k", salt=SALT).dumps(payload)
    with pytest.raises(BadLink):
        Links("k", "http://h").read(token)


@given(
    action=st.sampled_from(["like", "dislike", "unsubscribe", "manage"]),
    numbers=st.lists(st.integers(min_value=0, max_value=10**15), min_size=1, max_size=4),
)
def test_any_payload_is_the_serializers_own(action: str, numbers: list[int]) -> None:
    links, reference = Links("k", "http://h"), URLSafeSerializer("k", salt=SALT)
    user, *rest = numbers
    extra = rest + [None] * (3 - len(rest))
    token = links.token(action, user, *extra)  # type: ignore[arg-type]
    made = reference.dumps([action, *numbers])
    if made.startswith("."):  # the serializer compressed it (repeated digits): we do not
        assert reference.loads(token) == [action, *numbers]
    else:
        assert token == made


@given(
    action=st.sampled_from(["like", "dislike"]),
    user=st.integers(min_value=0, max_value=2**63),
    paper=st.integers(min_value=0, max_value=2**63),
    channel=st.none() | st.integers(min_value=0, max_value=2**63),
)
def test_a_feedback_link_is_compact_and_reads_back(
    action: str, user: int, paper: int, channel: int | None
) -> None:
    links = Links("k", "http://h")
    url = links.feedback_url(action, user, paper, channel)  # type: ignore[arg-type]
    token = url.removeprefix("http://h/f/")
    read = links.read(token)
    assert (read.action, read.user_id, read.paper_id, read.channel_id) == (
        action,
        user,
        paper,
        channel,
    )
    assert len(token) <= len(links.token(action, user, paper, channel)) - 15  # type: ignore[arg-type]


def test_a_feedback_link_of_a_large_installation_is_half_as_long() -> None:
    """A digest carries two of them a pick, and Gmail clips its HTML after about 102 KB: with
    the serializer's format a token was 66 characters for user 12,345, paper 1,000,000 and
    channel 67,890."""
    links = Links("k", "http://h")
    assert links.feedback_token("like", 12_345, 1_000_000, 67_890).startswith("l9ix-lfls-1gdu.")
    assert len(links.feedback_token("dislike", 12_345, 1_000_000, 67_890)) == 35
    assert len(links.token("dislike", 12_345, 1_000_000, 67_890)) == 70


def test_an_altered_or_foreign_feedback_link_is_refused() -> None:
    links = Links("k", "http://h")
    token = links.feedback_token("like", 12_345, 1_000_000, 67_890)
    payload, mac = token.split(".")
    altered = [
        token[:-1],  # cut short
        token[:-1] + ("A" if token[-1] != "A" else "B"),  # another MAC
        "d" + token[1:],  # a like made a dislike
        payload.replace("1gdu", "1gdv") + "." + mac,  # another channel
        payload.rsplit("-", 1)[0] + "." + mac,  # the channel left out
        "l09ix" + token[4:],  # the same numbers written otherwise
        Links("other key", "http://h").feedback_token("like", 12_345, 1_000_000, 67_890),
        token.upper(),
    ]
    for bad in altered:
        with pytest.raises(BadLink):
            links.read(bad)
    # written otherwise but signed with the key: the same action, yet not a token of ours
    odd = "l09ix-lfls-1gdu"
    with pytest.raises(BadLink):
        links.read(f"{odd}.{links._feedback_sign(odd)}")


def test_feedback_links_in_the_serializers_format_made_before_still_read() -> None:
    links = Links("k", "http://h")
    for channel in (None, 3):
        read = links.read(links.token("dislike", 1, 2, channel))
        assert (read.action, read.user_id, read.paper_id, read.channel_id) == (
            "dislike",
            1,
            2,
            channel,
        )
