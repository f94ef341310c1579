"""PySpark ForeachWriter for Databricks Lakebase (PostgreSQL)."""

from .discovery import OAuthCredentialProvider, oauth_credential_provider
from .errors import (ConfigurationError, ConnectionFailedError, DiscoveryError, EncodingError,
                     LakebaseWriterError, WriteError)
from .writer import LakebaseForeachWriter

__all__ = [
    "LakebaseForeachWriter", "oauth_credential_provider", "OAuthCredentialProvider",
    "LakebaseWriterError", "ConfigurationError", "EncodingError", "WriteError",
    "ConnectionFailedError", "DiscoveryError",
]
__version__ = "0.1.0"
