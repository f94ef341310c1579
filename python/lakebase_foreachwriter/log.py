"""The package's logger, `lakebase_foreachwriter` (0.1's name); every module logs below it.

Nothing here adds handlers or changes levels: configure it like any logger (level, handlers),
and the writer's modules (`lakebase_foreachwriter.writer`, `.direct`, ...) follow.
"""

import logging

logger = logging.getLogger("lakebase_foreachwriter")
