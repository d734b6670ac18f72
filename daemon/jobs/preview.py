"""A subscriber's digest for today, as they would get it, without storing or sending anything
(`paperwire preview USER`, the console's preview): the dry run of the digest job, rendered as
the email (HTML and text). The links in it are the subscriber's own; like any link they only
open a page with a button."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

from daemon.app import App
from daemon.db.models import ChannelKind, Frequency
from daemon.errors import PaperwireError
from daemon.jobs.delivery import pick_of
from daemon.jobs.digests import Picks, make_digests
from notifications.digest import Digest
from notifications.transports.base import message_bytes

PREVIEW_ADDRESS = "preview@example.org"  # for a Slack-only subscriber's email rendering


@dataclass(frozen=True)
class Preview:
    user: str
    period: date
    picks: Picks
    channels: tuple[ChannelKind, ...]
    subject: str
    html: str
    text: str


def preview(app: App, name: str, now: datetime) -> Preview:
    """The digest of the user `name` for their current period (today's, or this week's for a
    weekly subscriber, from a week of papers; what they would get even while paused).
    NotFoundError if there is no such user; PaperwireError if they get none: unsubscribed, or
    ranking failed."""
    from notifications.render import render_email

    user = app.store.people.get(name)
    name = user.name  # the handle as stored ("ADA" finds ada: her digests are ada's)
    if not user.active:
        raise PaperwireError(f"user {name!r} is unsubscribed: no digest to preview")
    report = make_digests(app, now, users=[name], force=True, dry_run=True, paused_too=True)
    if report.failed_users:
        raise PaperwireError(f"the digest of {name!r} could not be made: {report.failed_users[0]}")
    if not report.planned:
        raise PaperwireError(f"user {name!r} has no channel: no digest to preview")
    plan = report.planned[0]
    links = app.links
    # the links of the email it would be: they name its address (None: no email channel)
    email = next(
        (
            c.id
            for c in app.store.people.channels_of(user.id)
            if c.kind == ChannelKind.EMAIL and c.active
        ),
        None,
    )
    digest = Digest(
        digest_id=0,
        period=plan.period,
        recipient_name=user.display_name or user.name,
        picks=tuple(pick_of(links, user.id, email, paper, rec) for paper, rec in plan.picks),
        unsubscribe_url=links.unsubscribe_url(user.id, email),
        one_click_unsubscribe_url=links.unsubscribe_url(user.id, email),
        cold_start=bool(plan.picks) and all(rec.kind == "trending" for _, rec in plan.picks),
        manage_url=links.manage_url(user.id, now),
        weekly=user.frequency == Frequency.WEEKLY,
    )
    s = app.settings
    out = render_email(
        digest,
        sender=s.email.sender,
        recipient=PREVIEW_ADDRESS,
        message_id_domain=s.email.id_domain,
        subject_prefix=s.digest.subject_prefix,
        now=now,
    )
    # read back as a mail client reads the bytes sent
    message = message_from_bytes(message_bytes(out.message), policy=policy.default)
    assert isinstance(message, EmailMessage)
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    assert html is not None and text is not None  # render_email always makes both
    return Preview(
        user=user.name,
        period=plan.period,
        picks=plan.picks,
        channels=tuple(p.channel for p in report.planned),
        subject=str(message["Subject"]),
        html=html.get_content().replace("\r\n", "\n"),
        text=text.get_content().replace("\r\n", "\n"),
    )
