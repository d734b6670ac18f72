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
