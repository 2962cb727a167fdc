"""Object store on Azure Blob Storage with version-level immutability (WORM).

Objects are block blobs in one private container.  ``put`` sends the immutability policy and legal hold with
the upload and refuses to overwrite.  Everything reported about protection is read back from the service,
never assumed from what was sent: the Azurite emulator accepts the headers and records nothing, and
:meth:`AzureBlobStore.worm_report` probes whether deletion of a protected blob is actually refused
(DORA.md section 4).  Policies are only ever set *unlocked*, so they can be removed again.
Azure exceptions are translated here; none leaks upward.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.storage.blob import (
    BlobImmutabilityPolicyMode,
    BlobProperties,
    BlobServiceClient,
    ContainerClient,
    ImmutabilityPolicy,
)

from ledger.errors import (
    ConfigurationError,
    ConflictError,
    NotFoundError,
    StorageUnavailable,
    ValidationError,
)
from retention.stores.base import StoredObject, WormReport, validate_name

DIGEST_KEY = "sha256"
PROBE_PREFIX = ".worm-probe/"
PROBE_RETENTION = timedelta(minutes=1)
_LISTING_DETAILS = ["metadata", "immutabilitypolicy", "legalhold"]


class AzureBlobStore:
    """An :class:`~retention.stores.base.ObjectStore` on one Azure Blob container.

    ``worm=True`` (the default) makes a rejected immutability header an error; ``worm=False`` stores the
    object without protection instead, for accounts where version-level immutability is not enabled.
    """

    def __init__(
        self,
        connection_string: str | None = None,
        *,
        account_url: str | None = None,
        credential: Any = None,
        container: str = "regulatory-snapshots",
        worm: bool = True,
    ) -> None:
        if connection_string:
            service = BlobServiceClient.from_connection_string(connection_string, credential=credential)
        elif account_url:
            service = BlobServiceClient(account_url, credential=credential)
        else:
            raise ConfigurationError("AzureBlobStore needs a connection string or an account URL")
        self.worm = worm
        self._container: ContainerClient = service.get_container_client(container)
        try:
            self._container.create_container()  # private: no public access level
        except ResourceExistsError:
            pass
        except AzureError as exc:
            raise StorageUnavailable("cannot reach or create the blob container") from exc

    # --- the interface --------------------------------------------------------------------------------

    def put(
        self, name: str, data: bytes, *, retain_until: datetime | None = None, legal_hold: bool = False
    ) -> StoredObject:
        validate_name(name)
        if retain_until is not None and retain_until.tzinfo is None:
            raise ValidationError("retain_until must be timezone-aware", field="retain_until")
        metadata = {DIGEST_KEY: hashlib.sha256(data).hexdigest()}
        protected = retain_until is not None or legal_hold
        try:
            self._upload(name, data, metadata, retain_until, legal_hold)
        except (ResourceExistsError, ResourceModifiedError) as exc:  # overwrite=False sends If-None-Match: *
            raise ConflictError("an object with this name already exists") from exc
        except HttpResponseError as exc:
            if not protected or _is_connectivity(exc):
                raise _translate(exc) from exc
            if self.worm:
                raise StorageUnavailable(
                    "the blob service rejected the immutability policy or legal hold; enable version-level "
                    "immutability on the account and container, or construct the store with worm=False"
                ) from exc
            try:
                self._upload(name, data, metadata, None, False)
            except AzureError as retry_exc:
                raise _translate(retry_exc) from retry_exc
        except AzureError as exc:
            raise _translate(exc) from exc
        return self.stat(name)

    def get(self, name: str) -> bytes:
        validate_name(name)
        try:
            return self._container.get_blob_client(name).download_blob().readall()
        except AzureError as exc:
            raise _translate(exc) from exc

    def stat(self, name: str) -> StoredObject:
        validate_name(name)
        try:
            properties = self._container.get_blob_client(name).get_blob_properties()
        except AzureError as exc:
            raise _translate(exc) from exc
        return _describe(properties)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        try:
            # The service lists blobs in lexicographic name order.
            for properties in self._container.list_blobs(name_starts_with=prefix or None, include=_LISTING_DETAILS):
                if properties.name.startswith(PROBE_PREFIX):
                    continue
                yield _describe(properties)
        except AzureError as exc:
            raise _translate(exc) from exc

    def set_legal_hold(self, name: str, on: bool) -> None:
        validate_name(name)
        try:
            self._container.get_blob_client(name).set_legal_hold(on)
        except AzureError as exc:
            if isinstance(exc, HttpResponseError) and exc.status_code == 501:  # Azurite
                self.stat(name)  # a missing object is still NotFound, not "unsupported"
                raise StorageUnavailable("the blob service does not implement legal holds") from exc
            raise _translate(exc) from exc

    def extend_retention(self, name: str, retain_until: datetime) -> None:
        """Set a later unlocked immutability policy; a locked policy can only be extended, which this is."""
        validate_name(name)
        if retain_until.tzinfo is None:
            raise ValidationError("retain_until must be timezone-aware", field="retain_until")
        current = self.stat(name).retain_until
        if current is not None and retain_until < current:
            raise ConflictError("a retention date can only be extended, never shortened")
        if not self.worm:
            return  # objects carry no policy in this mode
        policy = ImmutabilityPolicy(expiry_time=retain_until, policy_mode=BlobImmutabilityPolicyMode.UNLOCKED)
        try:
            self._container.get_blob_client(name).set_immutability_policy(policy)
        except AzureError as exc:
            raise _translate(exc) from exc

    def delete(self, name: str) -> None:
        validate_name(name)
        try:
            self._container.get_blob_client(name).delete_blob()
        except ResourceNotFoundError as exc:
            raise NotFoundError("no object with this name") from exc
        except HttpResponseError as exc:
            if _is_connectivity(exc):
                raise _translate(exc) from exc
            raise ConflictError("the blob service refused to delete the object (it may be protected)") from exc
        except AzureError as exc:
            raise _translate(exc) from exc

    def worm_report(self) -> WormReport:
        """Upload a probe under a short unlocked policy and see whether the service lets it be deleted."""
        probe = self._container.get_blob_client(f"{PROBE_PREFIX}{uuid.uuid4().hex}")
        policy = ImmutabilityPolicy(
            expiry_time=datetime.now(UTC) + PROBE_RETENTION, policy_mode=BlobImmutabilityPolicyMode.UNLOCKED
        )
        try:
            probe.upload_blob(b"worm probe", overwrite=False, immutability_policy=policy)
        except HttpResponseError as exc:
            if _is_connectivity(exc):
                raise _translate(exc) from exc
            return WormReport(
                enforced=False,
                detail="the service rejected an immutability policy (version-level immutability is not enabled)",
            )
        except AzureError as exc:
            raise _translate(exc) from exc
        try:
            probe.delete_blob()
        except HttpResponseError:
            try:
                probe.delete_immutability_policy()
                probe.delete_blob()
            except AzureError as exc:
                raise StorageUnavailable("WORM probe is enforced but could not be cleaned up") from exc
            return WormReport(
                enforced=True,
                detail="the service refused to delete a blob under an unlocked immutability policy",
            )
        except AzureError as exc:
            raise _translate(exc) from exc
        return WormReport(
            enforced=False,
            detail=(
                "the service accepted the immutability policy but let the object be deleted (Azurite does "
                "this): immutability is NOT enforced"
            ),
        )

    # --- helpers --------------------------------------------------------------------------------------

    def _upload(
        self, name: str, data: bytes, metadata: dict[str, str], retain_until: datetime | None, legal_hold: bool
    ) -> None:
        policy = (
            ImmutabilityPolicy(expiry_time=retain_until, policy_mode=BlobImmutabilityPolicyMode.UNLOCKED)
            if retain_until is not None
            else None
        )
        self._container.get_blob_client(name).upload_blob(
            data,
            overwrite=False,
            metadata=metadata,
            immutability_policy=policy,
            legal_hold=legal_hold or None,
        )


def _describe(properties: BlobProperties) -> StoredObject:
    # A blob without the digest metadata (re-uploaded by hand) reads as "no recorded digest": the caller's
    # digest check then names the object, and a listing is not cut short by one bad blob.
    digest = (properties.metadata or {}).get(DIGEST_KEY) or ""
    policy = properties.immutability_policy
    expiry = policy.expiry_time if policy is not None else None
    mode = policy.policy_mode if policy is not None else None
    return StoredObject(
        name=str(properties.name),
        size=int(properties.size),
        sha256_hex=str(digest),
        retain_until=expiry,
        legal_hold=bool(properties.has_legal_hold),
        immutability_mode=str(mode) if mode else None,
    )


def _is_connectivity(exc: HttpResponseError) -> bool:
    """Failures that say nothing about the request itself: the service is down, throttling or unauthorised."""
    status = exc.status_code or 0
    return status in (401, 403, 408, 429) or status >= 500


def _translate(exc: AzureError) -> Exception:
    if isinstance(exc, ResourceNotFoundError):
        return NotFoundError("no object with this name")
    if isinstance(exc, ResourceExistsError):
        return ConflictError("an object with this name already exists")
    if isinstance(exc, ServiceRequestError):
        return StorageUnavailable("the blob service cannot be reached")
    return StorageUnavailable(f"the blob service failed ({type(exc).__name__})")
