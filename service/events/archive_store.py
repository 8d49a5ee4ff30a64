"""Where the event-log archive lives: a local folder or an object store, through pyarrow.fs.

``PERSONA_ARCHIVE_URL`` is a path (``/var/lib/persona/archive``, ``data/archive``)
or a URI pyarrow understands (``file:///...``, ``s3://bucket/prefix``,
``gs://bucket/prefix``; credentials come from the environment as the
provider's SDK reads them). Files are written whole or not at all: on a local
disk to a temporary name, flushed to disk (fsync), then renamed; on an object
store by one upload, which becomes visible only once complete.
"""

from __future__ import annotations

import functools
import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq


class ArchiveStore:
    """Files under one root of a filesystem, addressed by paths relative to it."""

    def __init__(self, url: str) -> None:
        self.url = url
        target = url if "://" in url else str(Path(url).expanduser().resolve())
        self.fs, root = pafs.FileSystem.from_uri(target)
        self.root = root.rstrip("/")
        self.local = isinstance(self.fs, pafs.LocalFileSystem)

    def _path(self, relative: str) -> str:
        return f"{self.root}/{relative}" if relative else self.root

    def write(self, relative: str, data: bytes) -> None:
        """Store ``data`` at ``relative``, replacing any file there, atomically and durably."""
        path = self._path(relative)
        folder = path.rsplit("/", 1)[0]
        if self.local:
            os.makedirs(folder, exist_ok=True)
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            # the rename itself survives a crash only once its folder is on disk
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return
        self.fs.create_dir(folder, recursive=True)
        with self.fs.open_output_stream(path) as out:
            out.write(data)

    def listdir(self, relative: str = "") -> list[str]:
        """Names directly under ``relative`` (files and folders), sorted; [] when missing."""
        selector = pafs.FileSelector(self._path(relative), allow_not_found=True)
        return sorted(info.base_name for info in self.fs.get_file_info(selector))

    def read_table(self, relative: str, columns: list[str] | None = None) -> Any:
        """A Parquet file's table (only ``columns`` when given)."""
        return pq.read_table(self._path(relative), columns=columns, filesystem=self.fs)

    def size(self, relative: str) -> int:
        """A file's size in bytes."""
        return int(self.fs.get_file_info(self._path(relative)).size)


@functools.lru_cache(maxsize=4)
def open_store(url: str) -> ArchiveStore:
    """The store at ``url`` (one per URL and process: an object store's client is costly)."""
    return ArchiveStore(url)
