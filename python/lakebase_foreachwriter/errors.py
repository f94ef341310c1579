"""Exceptions raised by the writer: one for bad arguments, one per way a write can fail."""

from __future__ import annotations

from typing import Optional


class LakebaseWriterError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(LakebaseWriterError, ValueError):
    """An argument given to LakebaseForeachWriter is wrong: raised on the driver, or by open()
    when the table or a column is missing or ambiguous (`sqlstate` set when lakebase-proxy
    said so: 42P01, 42703, 42702, 42701)."""

    def __init__(self, message: str, sqlstate: Optional[str] = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class EncodingError(LakebaseWriterError, ValueError):
    """A value cannot be written as PostgreSQL text (for example a NUL character)."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(f"column {column!r}: {message}")
        self.column = column


class WriteError(LakebaseWriterError):
    """PostgreSQL (or lakebase-proxy) rejected a batch; carries the SQLSTATE and message.

    Not retried: the same rows would be rejected again. Through the proxy, `detail` is the
    server's DETAIL and `row` the 1-based number of the offending row inside its flush (0 when
    the error concerns no single row).
    """

    def __init__(self, message: str, sqlstate: Optional[str] = None, *, detail: str = "",
                 row: int = 0, context: str = "") -> None:
        text = f"PostgreSQL error {sqlstate}: {message}" if sqlstate else message
        if detail:
            text += f"; DETAIL: {detail}"
        if context:
            text += f" ({context})"
        super().__init__(text)
        self.sqlstate = sqlstate
        self.pg_message = message
        self.detail = detail
        self.row = row


class ConnectionFailedError(LakebaseWriterError):
    """The server (or lakebase-proxy) could not be reached, refused us, or dropped us.

    `sqlstate` is set when the proxy said why (for example 28000 for a wrong token).
    """

    def __init__(self, message: str, sqlstate: Optional[str] = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class DiscoveryError(LakebaseWriterError):
    """A Lakebase instance or project could not be resolved through the Databricks API."""
