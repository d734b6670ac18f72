"""Subscribers from a CSV file (`paperwire users import FILE.csv`, the console's upload).

The first row names the columns: `name` and at least one of `email` and `slack_webhook`, then
optionally `timezone`, `hour` (the local digest hour) and `display_name`. Every row is checked
by the rules of `users add`; any error is reported with its line and nothing is imported.
Importing the same file again changes nothing (existing users are updated to what the file
says), and nobody who unsubscribed is subscribed again.
"""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from daemon.channels import CHANNELS, parse_email
from daemon.checks import OTHER_DIGITS, as_id, check_display_name, check_handle, other_digits
from daemon.db.models import ChannelKind
from daemon.db.people import Imported
from daemon.settings import check_timezone

MAX_ROWS = 100_000
COLUMNS = {
    "name": "name",
    "user": "name",
    "email": "email",
    "e_mail": "email",
    "slack_webhook": "slack",
    "slack": "slack",
    "webhook": "slack",
    "timezone": "timezone",
    "time_zone": "timezone",
    "tz": "timezone",
    "hour": "hour",
    "digest_hour": "hour",
    "display_name": "display_name",
}


@dataclass
class ReadRows:
    rows: list[Imported] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "line 7: …"


def _column(header: str) -> str | None:
    return COLUMNS.get(header.strip().lower().replace(" ", "_").replace("-", "_"))


def read_csv(text: str) -> ReadRows:
    """The rows of a CSV file, each checked; errors name the line and the column."""
    result = _read_rows(text)
    if not result.rows and not result.errors:
        result.errors.append(
            "no subscriber under its first row (the column names): add a row for each "
            "subscriber, such as ada,ada@lab.example"
        )
    return result


def _read_rows(text: str) -> ReadRows:
    result = ReadRows()
    text = text.lstrip("\ufeff")
    first = text.split("\n", 1)[0]
    # Excel writes ";" where "," is the decimal comma (most of Europe): read as it wrote
    delimiter = ";" if ";" in first and "," not in first else ","
    records = _records(csv.reader(io.StringIO(text), delimiter=delimiter), result.errors)
    header = next(records, (1, None))[1]
    columns = [_column(h) for h in header or []]
    result.errors.extend(_unknown_columns(header or [], columns))
    if result.errors:
        return result
    if "name" not in columns or not ({"email", "slack"} & set(columns)):
        result.errors.append(
            "line 1: the first row must name the columns: name, email and/or slack_webhook, "
            "then optionally timezone, hour, display_name"
        )
        return result
    seen_names: dict[str, int] = {}
    seen_emails: dict[str, int] = {}
    for line, record in records:
        if not any(cell.strip() for cell in record):
            continue  # a blank line
        if len(result.rows) + len(result.errors) >= MAX_ROWS:
            result.errors.append(f"line {line}: more than {MAX_ROWS} rows; split the file")
            break
        problems: list[str] = []
        cells = _cells(columns, record, delimiter, problems)
        row = _row(cells, problems, line)
        if row is not None:
            if row.name.lower() in seen_names:  # a handle is one user's in any case
                problems.append(
                    f"user {row.name!r} is already on line {seen_names[row.name.lower()]}"
                )
            email = row.channels.get(ChannelKind.EMAIL, "").lower()
            if email and email in seen_emails:
                problems.append(f"{email} is already on line {seen_emails[email]}")
            seen_names.setdefault(row.name.lower(), line)
            if email:
                seen_emails.setdefault(email, line)
        if problems:
            result.errors.extend(f"line {line}: {p}" for p in problems)
        elif row is not None:
            result.rows.append(row)
    return result


def _cells(
    columns: list[str | None], record: list[str], delimiter: str, problems: list[str]
) -> dict[str, str]:
    """A row's cells by column; cells beyond the columns the first row names are a problem
    (an unquoted delimiter in a cell shifts the rest), but empty ones (as spreadsheets write)."""
    if any(cell.strip() for cell in record[len(columns) :]):
        problems.append(
            f"{len(record)} cells where the first row names {len(columns)} columns; put a "
            f"cell that holds {delimiter!r} in double quotes"
        )
    return {col: value.strip() for col, value in zip(columns, record, strict=False) if col}


def _records(reader: Any, errors: list[str]) -> Iterator[tuple[int, list[str]]]:
    """The rows of `reader` with the line each starts on; a row the csv module cannot read
    (a quote left open runs its cell on past its field limit) ends the file with an error
    naming the line where it starts."""
    while True:
        line = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            errors.append(
                f"line {line}: cannot read it as CSV ({e}): is a double quote left open there? "
                'A cell that holds one is written in double quotes, the quote doubled ("")'
            )
            return
        yield line, record


def _unknown_columns(header: list[str], columns: list[str | None]) -> list[str]:
    """A column no name of COLUMNS: a typo would silently drop the whole column."""
    errors = []
    for title, column in zip(header, columns, strict=True):
        if column is None and title.strip():
            close = difflib.get_close_matches(title.strip().lower(), COLUMNS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            errors.append(
                f"line 1: {title.strip()!r} is not a column paperwire reads; {hint}the columns "
                "are name, email, slack_webhook, timezone, hour, display_name"
            )
    return errors


def _checked(check: Callable[[str], object], value: str, label: str, problems: list[str]) -> bool:
    try:
        check(value)
    except ValueError as e:
        problems.append(f"{label}: {e}")
        return False
    return True


def _row(cells: dict[str, str], problems: list[str], line: int) -> Imported | None:
    name = cells.get("name", "")
    _checked(check_handle, name, "name", problems)
    channels: dict[ChannelKind, str] = {}
    display = cells.get("display_name") or None
    if display is not None and _checked(check_display_name, display, "display_name", problems):
        display = check_display_name(display)
    if "email" in cells:
        channels[ChannelKind.EMAIL] = ""
        if cells["email"]:
            try:
                channels[ChannelKind.EMAIL], named = parse_email(cells["email"])
                display = display or named or None
            except ValueError as e:
                problems.append(f"email: {e}")
    if "slack" in cells:
        slack = cells["slack"]
        check = CHANNELS[ChannelKind.SLACK].check
        if not slack or _checked(check, slack, "slack_webhook", problems):
            channels[ChannelKind.SLACK] = slack
    if not cells.get("email") and not cells.get("slack"):
        problems.append("give an email address or a Slack webhook: a digest needs somewhere to go")
    timezone = cells.get("timezone") or None
    if timezone is not None:
        _checked(check_timezone, timezone, "timezone", problems)
    hour = _hour(cells.get("hour", ""), problems)
    if problems:
        return None
    return Imported(name=name, channels=channels, timezone=timezone, digest_hour=hour,
                    display_name=display, line=line)  # fmt: skip


def _hour(text: str, problems: list[str]) -> int | None:
    if not text:
        return None
    hour = as_id(text)
    if other_digits(text):
        problems.append(f"hour: {text!r}: {OTHER_DIGITS}")
        return None
    if hour is None or not 0 <= hour <= 23:
        problems.append(f"hour: {text!r} is not an hour from 0 to 23")
        return None
    return hour
