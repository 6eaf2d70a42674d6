"""File storage for the domains: a local folder or S3, behind one interface.

``open_storage(settings)`` gives the backend ``storage_backend`` names. ``save`` streams
an upload in, checking its type, size and content as it goes (``uploads``), and stores it
under a generated key; ``url`` gives an absolute download link that expires, signed by
Junction for the local folder (served by the route ``install_storage`` adds) and
presigned by S3 otherwise. See docs/storage.md.
"""

from __future__ import annotations

from junction.platform.storage.api import install_storage
from junction.platform.storage.files import InvalidFileKey, Storage, StoredFile
from junction.platform.storage.local import LocalStorage
from junction.platform.storage.s3 import S3Storage
from junction.platform.storage.uploads import EmptyUpload, UnsupportedUpload, UploadTooLarge
from junction.settings import Settings, StorageBackend

__all__ = [
    "EmptyUpload",
    "InvalidFileKey",
    "LocalStorage",
    "S3Storage",
    "Storage",
    "StoredFile",
    "UnsupportedUpload",
    "UploadTooLarge",
    "install_storage",
    "open_storage",
]


def open_storage(settings: Settings) -> Storage:
    if settings.storage_backend == StorageBackend.s3:
        return S3Storage(settings)
    return LocalStorage(settings)
