"""The checkpoint file: load and atomic save. File I/O only (blocking: call it off the loop).

Save writes a temp file in the same directory, fsyncs it, renames it over the checkpoint and
fsyncs the directory, so a crash leaves either the old or the new file, never a torn one.
A missing file is an empty state (first start). A file that cannot be read, parsed or has an
unknown version raises ``CheckpointError`` and is left exactly as it is.

Every load and save also gives the file's :data:`Stamp` (inode, mtime in ns, size) taken from the
very file descriptor that was read or written, so a reader can tell cheaply (one ``stat``) whether
another process replaced the file since: every save renames a new file into place, so the inode
changes on every save (mtime and size guard against inode reuse).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cnidra.claims._records import PreparedClaim, decode, encode
from cnidra.errors import CheckpointError

FILE_NAME = "checkpoint.json"
LOCK_NAME = "checkpoint.lock"
_TMP_PREFIX = f".{FILE_NAME}."
_TMP_SUFFIX = ".tmp"


Stamp = tuple[int, int, int] | None
"""``(st_ino, st_mtime_ns, st_size)`` of the checkpoint file; ``None`` when there is none."""


def _stamp_of(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class Checkpoint:
    """``<directory>/checkpoint.json``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        self.lock_path = self.directory / LOCK_NAME

    def open_lock(self) -> int:
        """An fd of ``<directory>/checkpoint.lock`` (created) for ``flock`` by the users of the
        checkpoint that share the directory; the caller closes it."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            return os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise CheckpointError(f"checkpoint lock {self.lock_path}: cannot open: {exc}") from exc

    def load(self) -> dict[str, PreparedClaim]:
        """The saved claims by UID; ``{}`` when there is no file yet.

        Leftover temp files of an interrupted save are removed (the checkpoint itself is intact);
        call it once at start. (Should another instance sharing the directory be saving at that
        moment, its save fails with ``CheckpointError``; the file is never torn.)
        """
        return self.load_stamped(clean=True)[0]

    def load_stamped(self, *, clean: bool = False) -> tuple[dict[str, PreparedClaim], Stamp]:
        """The saved claims and the stamp of the file that was read. Temp files are only removed
        with ``clean`` (as :meth:`load`): another instance sharing the directory may be writing
        one."""
        if clean:
            self._remove_stale_temps()
        try:
            with self.path.open("rb") as src:
                stamp: Stamp = _stamp_of(os.fstat(src.fileno()))
                data = src.read()
        except FileNotFoundError:
            return {}, None
        except OSError as exc:
            raise CheckpointError(f"checkpoint {self.path}: cannot read: {exc}") from exc
        return self._decode(data), stamp

    def stamp(self) -> Stamp:
        """The current file's stamp (one ``stat``); compare it with the last load or save."""
        try:
            return _stamp_of(self.path.stat())
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"checkpoint {self.path}: cannot stat: {exc}") from exc

    def _decode(self, data: bytes) -> dict[str, PreparedClaim]:
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(
                f"checkpoint {self.path}: not valid JSON ({exc}); the file is kept for "
                "inspection: fix or move it away to start from an empty state"
            ) from exc
        try:
            return decode(doc)
        except CheckpointError as exc:
            raise CheckpointError(f"{self.path}: {exc}; the file is kept") from exc

    def save(self, claims: Mapping[str, PreparedClaim]) -> Stamp:
        """Atomically replace the checkpoint with ``claims``; the stamp of the new file."""
        data = json.dumps(encode(claims), indent=1, sort_keys=True).encode()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX, dir=self.directory)
        except OSError as exc:
            raise CheckpointError(f"checkpoint {self.path}: cannot write: {exc}") from exc
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
                stamp: Stamp = _stamp_of(os.fstat(out.fileno()))  # rename keeps ino and mtime
            Path(tmp).replace(self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                Path(tmp).unlink()
            raise CheckpointError(f"checkpoint {self.path}: cannot write: {exc}") from exc
        self._fsync_directory()
        return stamp

    def _fsync_directory(self) -> None:
        try:
            dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise CheckpointError(f"checkpoint {self.directory}: cannot sync: {exc}") from exc
        try:
            os.fsync(dir_fd)
        except OSError as exc:
            raise CheckpointError(f"checkpoint {self.directory}: cannot sync: {exc}") from exc
        finally:
            os.close(dir_fd)

    def _remove_stale_temps(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            for leftover in self.directory.glob(f"{_TMP_PREFIX}*{_TMP_SUFFIX}"):
                with contextlib.suppress(OSError):
                    leftover.unlink()
