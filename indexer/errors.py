"""One error hierarchy for the library; the edges translate it once."""

from __future__ import annotations


class SearchdError(Exception):
    """Base of every error the library raises on purpose."""

    #: the HTTP status an edge should answer with
    status: int = 500


class BadRequestError(SearchdError):
    """The caller asked for something malformed (bad mode, k out of range...)."""

    status = 400


class NotFoundError(SearchdError):
    status = 404


class UploadTooLargeError(SearchdError):
    status = 413


class UnsupportedMediaError(SearchdError):
    status = 415


class NotIndexedError(SearchdError):
    """Nothing has been indexed yet in this data dir."""

    status = 503


class ModelUnavailableError(SearchdError):
    """A configured model cannot be loaded; the message says what to do."""

    status = 503


class ModelMismatchError(SearchdError):
    """The configured model differs from the one that filled a vector space."""

    status = 409


class IndexLockedError(SearchdError):
    """Another process holds the data dir's writer lock."""

    status = 409


class CatalogError(SearchdError):
    """The catalog is unreadable or from an unknown schema version."""

    status = 500


class SkipFile(Exception):
    """A file cannot be indexed; ``reason`` is what the report shows.

    Not a SearchdError: a skipped file is an expected outcome, never a failure.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
