"""What an integration's adapter module offers the rest of its domain.

The adapter is the one module that talks to the outside system: it knows the system's
URLs, auth, paging and formats, and nothing of the database. A sync that pulls reads pages
(``PullAdapter``: the wellness API's lists, the provider's one-page feed); a sync that
pushes writes records and deletes them (``PushAdapter``: Airtable's table). Each adapter is
an async context manager that closes its connections on exit, and raises
``junction.platform.http.OutboundError`` (or its own subclass) for a failed call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self, TypeVar

PageT_co = TypeVar("PageT_co", covariant=True)
RecordT_contra = TypeVar("RecordT_contra", contravariant=True)


class Adapter(Protocol):
    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


class PullAdapter(Adapter, Protocol[PageT_co]):
    def pages(self, kind: str, since: datetime | None) -> AsyncIterator[PageT_co]:
        """Every page of ``kind`` changed since ``since`` (None: all of it), in order."""
        ...


class PushAdapter(Adapter, Protocol[RecordT_contra]):
    async def upsert(self, records: Sequence[RecordT_contra]) -> dict[str, str]:
        """Write the records; answers each one's key -> the system's id for it."""
        ...

    async def delete(self, system_ids: Sequence[str]) -> None:
        """Delete the records with these ids; one already gone counts as deleted."""
        ...
