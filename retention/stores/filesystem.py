"""Object store on a local directory: the embedded default, with no immutability enforcement.

Each object is a file under ``root``; its digest, retention date and legal hold live in a sidecar
``<name>.meta.json`` that is never listed as an object.  Data and sidecar are written to a temporary file,
fsynced, and moved into place atomically.  The data file is claimed with ``os.link``, which fails if the name
exists, so two writers cannot both create the same object.  The store honours its own protection records
(``delete`` refuses a held or retained object), but anyone with access to the directory can change the files:
the digests recorded in the chain are what detect that.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger.errors import ConflictError, IntegrityError, NotFoundError, StorageUnavailable, ValidationError
from ledger.files import private_directory
from retention.stores.base import StoredObject, WormReport, validate_name

SIDECAR_SUFFIX = ".meta.json"
PARTIAL_SUFFIX = ".partial"
ADVISORY_MODE = "advisory"  # recorded, honoured by this store, enforced by nothing


class FilesystemStore:
    """An :class:`~retention.stores.base.ObjectStore` on a local directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        try:
            private_directory(self.root)  # owner-only whatever the umask: others may not replace objects
        except OSError as exc:
            raise StorageUnavailable("cannot create the object store directory") from exc
        if not self.root.is_dir():
            raise StorageUnavailable("cannot create the object store directory")

    # --- the interface --------------------------------------------------------------------------------

    def put(
        self, name: str, data: bytes, *, retain_until: datetime | None = None, legal_hold: bool = False
    ) -> StoredObject:
        path = self._path(name)
        meta = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "retain_until": _aware(retain_until).isoformat() if retain_until else None,
            "legal_hold": legal_hold,
        }
        try:
            private_directory(path.parent)
            staged = _write_temp(path.parent, data)
            try:
                os.link(staged, path)  # atomic and refuses to replace an existing file
            except FileExistsError as exc:
                raise ConflictError("an object with this name already exists") from exc
            finally:
                os.unlink(staged)
            self._write_meta(path, meta)
            _fsync_dir(path.parent)
        except OSError as exc:
            raise StorageUnavailable("writing to the object store directory failed") from exc
        return self.stat(name)

    def get(self, name: str) -> bytes:
        path = self._path(name)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise NotFoundError("no object with this name") from exc
        except OSError as exc:
            raise StorageUnavailable("reading from the object store directory failed") from exc

    def stat(self, name: str) -> StoredObject:
        path = self._path(name)
        if not path.is_file():
            raise NotFoundError("no object with this name")
        return self._describe(name, path)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        names: list[str] = []
        for directory, _subdirs, files in os.walk(self.root):
            for file in files:
                if file.endswith((SIDECAR_SUFFIX, PARTIAL_SUFFIX)):
                    continue
                name = Path(directory, file).relative_to(self.root).as_posix()
                if name.startswith(prefix):
                    names.append(name)
        for name in sorted(names):
            yield self._describe(name, self.root / name)

    def set_legal_hold(self, name: str, on: bool) -> None:
        path = self._path(name)
        if not path.is_file():
            raise NotFoundError("no object with this name")
        meta = self._read_meta(path)
        meta["legal_hold"] = bool(on)
        try:
            self._write_meta(path, meta)
        except OSError as exc:
            raise StorageUnavailable("writing to the object store directory failed") from exc

    def extend_retention(self, name: str, retain_until: datetime) -> None:
        path = self._path(name)
        if not path.is_file():
            raise NotFoundError("no object with this name")
        meta = self._read_meta(path)
        current = datetime.fromisoformat(meta["retain_until"]) if meta.get("retain_until") else None
        if current is not None and _aware(retain_until) < current:
            raise ConflictError("a retention date can only be extended, never shortened")
        meta["retain_until"] = _aware(retain_until).isoformat()
        try:
            self._write_meta(path, meta)
        except OSError as exc:
            raise StorageUnavailable("writing to the object store directory failed") from exc

    def delete(self, name: str) -> None:
        current = self.stat(name)
        if current.legal_hold:
            raise ConflictError("the object is under legal hold")
        if current.retain_until is not None and current.retain_until > datetime.now(UTC):
            raise ConflictError("the object's retention period has not expired")
        path = self._path(name)
        try:
            path.unlink()
            with contextlib.suppress(FileNotFoundError):
                _sidecar(path).unlink()
        except OSError as exc:
            raise StorageUnavailable("deleting from the object store directory failed") from exc

    def worm_report(self) -> WormReport:
        return WormReport(
            enforced=False,
            detail="a local directory cannot enforce immutability; digests recorded in the chain detect changes",
        )

    # --- helpers --------------------------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        validate_name(name)
        if name.endswith((SIDECAR_SUFFIX, PARTIAL_SUFFIX)):
            raise ValidationError("object name uses a suffix reserved by the filesystem store", field="name")
        return self.root.joinpath(*name.split("/"))

    def _describe(self, name: str, path: Path) -> StoredObject:
        """What the sidecar says; a missing or unreadable sidecar reads as "no recorded digest" (``""``), so that
        a listing goes on and the caller's digest check names the object."""
        try:
            meta = self._read_meta(path)
            retain_until = datetime.fromisoformat(meta["retain_until"]) if meta.get("retain_until") else None
        except (IntegrityError, ValueError, TypeError):
            meta, retain_until = {"sha256": ""}, None
        return StoredObject(
            name=name,
            size=path.stat().st_size,
            sha256_hex=str(meta["sha256"]),
            retain_until=retain_until,
            legal_hold=bool(meta.get("legal_hold", False)),
            immutability_mode=ADVISORY_MODE if retain_until is not None else None,
        )

    def _read_meta(self, path: Path) -> dict[str, Any]:
        try:
            meta = json.loads(_sidecar(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise IntegrityError(f"object {self._name(path)}: its metadata sidecar is missing") from exc
        except (OSError, ValueError) as exc:
            raise IntegrityError(f"object {self._name(path)}: its metadata sidecar cannot be read") from exc
        if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
            raise IntegrityError(f"object {self._name(path)}: its metadata sidecar is malformed")
        return meta

    def _name(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.name

    @staticmethod
    def _write_meta(path: Path, meta: dict[str, Any]) -> None:
        staged = _write_temp(path.parent, json.dumps(meta, sort_keys=True).encode("utf-8"))
        os.replace(staged, _sidecar(path))


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _write_temp(directory: Path, data: bytes) -> Path:
    """Write ``data`` to a fsynced temporary file in ``directory`` and return its path."""
    fd, temp = tempfile.mkstemp(dir=directory, prefix=".", suffix=PARTIAL_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return Path(temp)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValidationError("retain_until must be timezone-aware", field="retain_until")
    return moment
