"""Choosing the object store from settings or from a ``--from`` / ``--store`` argument."""

from __future__ import annotations

from pathlib import Path

from ledger.errors import ConfigurationError
from ledger.settings import Settings
from retention.stores.base import ObjectStore

AZURE_SCHEME = "azure"


def describe_spec(spec: str | None, settings: Settings) -> str:
    """A readable name of the store a spec selects (never the connection string)."""
    if spec is None:
        if settings.blob_connection_string is not None:
            return f"azure blob container {settings.blob_container}"
        return f"directory {settings.resolved_snapshot_dir()}"
    if spec == AZURE_SCHEME or spec.startswith(AZURE_SCHEME + ":"):
        container = spec.partition(":")[2] or settings.blob_container
        return f"azure blob container {container}"
    return f"directory {Path(spec.removeprefix('file:'))}"


def open_store(spec: str | None, settings: Settings, *, worm: bool | None = None) -> ObjectStore:
    """``None``: Azure Blob when LEDGER_BLOB_CONNECTION_STRING is set, else the local snapshot directory.

    ``azure`` or ``azure:CONTAINER``: Azure Blob with LEDGER_BLOB_CONNECTION_STRING; ``file:PATH`` or a
    plain path: a local directory.
    """
    use_worm = settings.seal_worm if worm is None else worm
    if spec is None:
        if settings.blob_connection_string is not None:
            return _azure(settings, settings.blob_container, use_worm)
        return _directory(settings.resolved_snapshot_dir())
    if spec == AZURE_SCHEME or spec.startswith(AZURE_SCHEME + ":"):
        return _azure(settings, spec.partition(":")[2] or settings.blob_container, use_worm)
    path = spec.removeprefix("file:")
    if not path:
        raise ConfigurationError("store: give a directory path, file:PATH, azure or azure:CONTAINER")
    return _directory(Path(path))


def _directory(path: Path) -> ObjectStore:
    from retention.stores.filesystem import FilesystemStore

    return FilesystemStore(path)


def _azure(settings: Settings, container: str, worm: bool) -> ObjectStore:
    if settings.blob_connection_string is None:
        raise ConfigurationError("an Azure Blob store needs LEDGER_BLOB_CONNECTION_STRING")
    from retention.stores.azure_blob import AzureBlobStore

    return AzureBlobStore(settings.blob_connection_string.get_secret_value(), container=container, worm=worm)
