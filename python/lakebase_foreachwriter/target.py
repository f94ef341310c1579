"""Where and how rows are written: plain data shared by both sinks (no psycopg here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple


@dataclass(frozen=True)
class Target:
    """Where and how rows are written: plain data, pickled to the executors."""

    schema: Optional[str]
    table: str
    columns: Tuple[str, ...]
    mode: str = "insert"
    primary_keys: Tuple[str, ...] = ()
    version_column: Optional[str] = None
    coalesce_columns: Tuple[str, ...] = ()

    @property
    def display_name(self) -> str:
        return f"{self.schema}.{self.table}" if self.schema else self.table
