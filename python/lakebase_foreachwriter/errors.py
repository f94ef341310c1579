"""Exceptions raised by the writer: one for bad arguments, one per way a write can fail."""

from __future__ import annotations

from typing import Optional


class LakebaseWriterError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(LakebaseWriterError, ValueError):
    """An argument given to LakebaseForeachWriter is wrong; raised on the driver."""


class EncodingError(LakebaseWriterError, ValueError):
    """A value cannot be written as PostgreSQL text (for example a NUL character)."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(f"column {column!r}: {message}")
        self.column = column


class WriteError(LakebaseWriterError):
    """PostgreSQL rejected a batch; carries the server's SQLSTATE and message.

    Not retried: the same rows would be rejected again.
    """

    def __init__(self, message: str, sqlstate: Optional[str] = None) -> None:
        text = f"PostgreSQL error {sqlstate}: {message}" if sqlstate else message
        super().__init__(text)
        self.sqlstate = sqlstate
        self.pg_message = message


class ConnectionFailedError(LakebaseWriterError):
    """The server could not be reached (or kept dropping us) after every retry."""


class DiscoveryError(LakebaseWriterError):
    """A Lakebase instance or project could not be resolved through the Databricks API."""
