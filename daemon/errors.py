"""The one exception tree of paperwire; job boundaries catch `PaperwireError` and record it."""


class PaperwireError(Exception):
    """Base of every error paperwire raises on purpose."""


class ConfigError(PaperwireError):
    """The configuration is invalid; the message names the key, the value and what is allowed."""


class FeedError(PaperwireError):
    """A feed could not be fetched or parsed; other feeds go on."""


class FetchError(FeedError):
    """The HTTP fetch of a feed failed (network, status, size cap, refused address)."""


class ParseError(FeedError):
    """The bytes of a feed are not a feed we understand, or the source reported an error."""


class NotFoundError(PaperwireError):
    """A user, feed or paper named on the command line or in a link does not exist."""


class SubscriberGone(NotFoundError):
    """The subscriber a link was made for no longer exists (deleted): its page says so, and
    how to subscribe again, where a link not valid advises asking for a fresh one."""


class ImportRefused(PaperwireError):
    """A file of subscribers refused as a whole: every row's problem, by line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        if len(problems) == 1:
            super().__init__(f"{problems[0]}; nothing imported")
        else:
            super().__init__(
                "\n".join(problems) + f"\n{len(problems)} problem(s); nothing imported"
            )
