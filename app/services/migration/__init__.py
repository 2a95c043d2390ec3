"""IMAP migration from an old provider: folder mapping (folders.py) and the copy (copy.py).

The panel's migrations (models, jobs, pages) and `flask migration copy` use
`run_copy` with two `app.mailserver.imap.Endpoint`s; see docs/migration.md.
"""

from app.services.migration.copy import DEFAULT_MAX_SIZE, CopyFailed, CopyReport, FolderReport, run_copy
from app.services.migration.folders import Mapping, map_folders

__all__ = [
    "DEFAULT_MAX_SIZE",
    "CopyFailed",
    "CopyReport",
    "FolderReport",
    "Mapping",
    "map_folders",
    "run_copy",
]
