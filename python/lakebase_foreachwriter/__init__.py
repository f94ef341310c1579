"""PySpark ForeachWriter for Databricks Lakebase (PostgreSQL)."""

# 0.1's module path first: importing it binds the package attribute `LakebaseForeachWriter` to
# the module, and the import of the class below binds it back to the class, as in 0.1.
from . import LakebaseForeachWriter as _module_path  # noqa: F401
from .discovery import OAuthCredentialProvider, oauth_credential_provider
from .errors import (ConfigurationError, ConnectionFailedError, DiscoveryError, EncodingError,
                     LakebaseWriterError, WriteError)
from .log import logger
from .writer import LakebaseForeachWriter

__all__ = [
    "LakebaseForeachWriter", "oauth_credential_provider", "OAuthCredentialProvider",
    "LakebaseWriterError", "ConfigurationError", "EncodingError", "WriteError",
    "ConnectionFailedError", "DiscoveryError", "logger",
]
__version__ = "0.1.0"
