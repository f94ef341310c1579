"""0.1's module path: `from lakebase_foreachwriter.LakebaseForeachWriter import logger` (and the
class and oauth_credential_provider) keep working. New code imports from the package."""

from .discovery import oauth_credential_provider
from .log import logger
from .writer import LakebaseForeachWriter

__all__ = ["LakebaseForeachWriter", "oauth_credential_provider", "logger"]
