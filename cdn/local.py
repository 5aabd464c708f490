"""An audio store in a local directory, served by the app's edge route (``/cdn/...``).

Objects live at ``<root>/<name>``. Publishing writes the bytes to a uniquely named temporary
file in the destination directory, fsyncs it, then hard-links it to the final name:
``os.link`` fails when the name exists, which makes ``put`` create-only and atomic — a reader
sees either no file or the complete file, never a partial one, and the first writer wins.
The temporary file is always unlinked afterwards (a crash may leave a ``.tmp-*`` file behind;
such files never match an object name, so they are neither listed nor served).

Safe across threads and processes (gunicorn workers, the precompute job) sharing one root,
on any local POSIX filesystem with hard links.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from app.errors import ObjectNotFound, StoreUnavailable
from cdn.store import check_name, check_object, is_valid_name

_DIR_COMPONENT_RE = re.compile(r"[a-z0-9_-]+")
_FILE_MODE = 0o644


class LocalStore:
    """A create-only object store in the directory ``root``; URLs are ``<base_url>/<name>``.

    The constructor does no I/O (``root`` is created on first ``put``). Thread- and
    process-safe. OSErrors (disk full, permissions, a file where a directory should be)
    become :class:`~app.errors.StoreUnavailable`.
    """

    def __init__(self, root: Path | str, base_url: str) -> None:
        self.root = Path(root)
        self.base_url = base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"LocalStore(root={str(self.root)!r}, base_url={self.base_url!r})"

    def path(self, name: str) -> Path:
        """The file of object ``name`` under root (validated: raises InvalidObjectName)."""
        return self.root.joinpath(*check_name(name).split("/"))

    def url(self, name: str) -> str:
        """The public URL of ``name``: ``base_url + "/" + name``."""
        return f"{self.base_url}/{check_name(name)}"

    def exists(self, name: str) -> bool:
        """True when ``name`` has been published (a regular file at its path)."""
        path = self.path(name)
        try:
            return path.is_file()
        except OSError as exc:
            raise StoreUnavailable(f"local store: cannot stat {name}: {exc.strerror or exc}") from exc

    def put(self, name: str, data: bytes) -> str:
        """Publish ``data`` under ``name`` unless it exists already; return the URL.

        Raises InvalidObjectName, InvalidAudio (nothing is written), or StoreUnavailable.
        """
        check_object(name, data)
        path = self.path(name)
        try:
            if path.is_file():
                return self.url(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._publish(path, bytes(data))
        except OSError as exc:
            raise StoreUnavailable(f"local store: cannot write {name}: {exc.strerror or exc}") from exc
        return self.url(name)

    @staticmethod
    def _publish(path: Path, data: bytes) -> None:
        """Write ``data`` to a temp file beside ``path`` and link it into place (first writer wins)."""
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), _FILE_MODE)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                if not path.is_file():  # a directory or other non-file squats on the name
                    raise
                return  # someone published it first: create-only, the existing bytes stay
            _fsync_dir(path.parent)
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass

    def get(self, name: str) -> bytes:
        """The bytes of ``name``; raises ObjectNotFound or StoreUnavailable."""
        path = self.path(name)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFound(name) from exc
        except OSError as exc:
            raise StoreUnavailable(f"local store: cannot read {name}: {exc.strerror or exc}") from exc

    def list(self, prefix: str) -> Iterator[str]:
        """Names of published objects starting with ``prefix``, sorted within each directory.

        Only well-formed object names are yielded (temp files and strays are skipped). The
        walk starts at the deepest directory the prefix names, so listing one voice or one
        host is cheap. A prefix that no object name could start with yields nothing.
        """
        dir_part, _, _ = prefix.rpartition("/")
        components = dir_part.split("/") if dir_part else []
        if not all(_DIR_COMPONENT_RE.fullmatch(part) for part in components):
            return
        start = self.root.joinpath(*components)
        yield from (name for name in self._walk(start, "/".join(components)) if name.startswith(prefix))

    def _walk(self, start: Path, start_name: str) -> Iterator[str]:
        def fail(exc: OSError) -> None:
            if exc.errno == errno.ENOENT and Path(exc.filename or "") == start:
                return  # nothing published under this prefix yet
            raise StoreUnavailable(f"local store: cannot list: {exc.strerror or exc}") from exc

        for dirpath, dirnames, filenames in os.walk(start, onerror=fail):
            dirnames.sort()
            rel = Path(dirpath).relative_to(start).as_posix()
            base = start_name if rel == "." else (f"{start_name}/{rel}" if start_name else rel)
            for filename in sorted(filenames):
                name = f"{base}/{filename}" if base else filename
                if is_valid_name(name):
                    yield name

    def delete(self, name: str) -> None:
        """Remove ``name`` (tests and ops only); raises ObjectNotFound when absent."""
        path = self.path(name)
        try:
            path.unlink()
        except FileNotFoundError as exc:
            raise ObjectNotFound(name) from exc
        except OSError as exc:
            raise StoreUnavailable(f"local store: cannot delete {name}: {exc.strerror or exc}") from exc


def _fsync_dir(directory: Path) -> None:
    """Make a new directory entry durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
