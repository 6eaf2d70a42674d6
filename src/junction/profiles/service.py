"""The rules of user profiles: uniqueness, what a change does to the sync, what it announces.

Every write bumps the user's ``sync_version`` and enqueues the Airtable sync in the same
transaction (the job row commits with the change or not at all), and seed 000's live
messages go out after the commit. Services flush but never commit: the request or job
wrapper commits once, then invalidates the cached users (``CACHE_NAMESPACE``).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from junction.platform.db import utcnow
from junction.platform.errors import Conflict, NotFound
from junction.platform.jobs import enqueue
from junction.platform.realtime import Broker, publish_after_commit
from junction.platform.storage import StoredFile
from junction.platform.wire import wire_time
from junction.profiles import repository
from junction.profiles.channels import USER_UPDATES_STREAM
from junction.profiles.models import SyncStatus, User
from junction.profiles.schemas import UserCreate, UserUpdate

CACHE_NAMESPACE = "users"
SYNC_JOB = "profiles.sync_airtable"
DELETE_FILE_JOB = "profiles.delete_file"
DEMO_USER = UserCreate(
    first_name="Ada",
    last_name="Lovelace",
    email="ada.lovelace@example.com",
    date_of_birth=date(1985, 12, 10),
)


def email_key(email: str) -> str:
    return email.casefold()


async def find_user(session: AsyncSession, user_id: str) -> User:
    user = await repository.find_live(session, user_id) if _is_uuid(user_id) else None
    if user is None:
        raise NotFound(f"User {user_id} not found")
    return user


async def create_user(
    session: AsyncSession,
    fields: UserCreate,
    stored: StoredFile | None,
    *,
    broker: Broker | None,
) -> User:
    """Insert the user and its sync job; a taken email is a 409 from the unique index (the
    route checks first, before it stores any file, so only a race reaches the index)."""
    now = utcnow()
    user = User(
        uuid=str(uuid.uuid4()),
        email_key=email_key(fields.email),
        created_at=now,
        updated_at=now,
        **fields.model_dump(),
    )
    _attach(user, stored)
    session.add(user)
    await _flush_unique(session, fields.email)
    await _changed(session, user, bump=False)
    if broker is not None:
        publish_after_commit(session, broker, USER_UPDATES_STREAM, new_user_message(user))
    return user


async def create_demo_user(session: AsyncSession) -> str:
    """Demo mode's first-start step: one user, so the Airtable sync has something to write."""
    if await repository.has_live_users(session):
        return "users exist already; no demo user created"
    user = await create_user(session, DEMO_USER, None, broker=None)
    return f"demo user {user.email} created ({user.uuid}); its Airtable sync is queued"


async def update_user(session: AsyncSession, user: User, changes: UserUpdate) -> User:
    values = changes.model_dump(exclude_unset=True)
    if "email" in values:
        await ensure_email_free(session, values["email"], except_id=user.id)
        user.email_key = email_key(values["email"])
    for name, value in values.items():
        setattr(user, name, value)
    await _flush_unique(session, user.email)
    await _changed(session, user)
    return user


async def replace_file(session: AsyncSession, user: User, stored: StoredFile | None) -> User:
    """Attach ``stored`` (or nothing); the old object is deleted by a job after the commit."""
    if user.file_key is not None:
        await enqueue(session, DELETE_FILE_JOB, {"key": user.file_key})
    _attach(user, stored)
    await _changed(session, user)
    return user


async def delete_user(session: AsyncSession, user: User) -> None:
    """Free the email now; keep a tombstone while Airtable may still hold the record."""
    if user.file_key is not None:
        await enqueue(session, DELETE_FILE_JOB, {"key": user.file_key})
    _attach(user, None)
    await session.flush()
    if await repository.delete_if_never_synced(session, user):
        return
    user.deleted_at = utcnow()
    user.email_key = None
    await _changed(session, user)


async def request_sync(session: AsyncSession, user: User) -> User:
    """Sync again now, also after attempts ran out."""
    user.sync_attempts = 0
    user.sync_next_attempt_at = None
    await _changed(session, user)
    return user


def user_document(user: User) -> dict[str, Any]:
    """The user as the API shows it, minus the file's signed URL (added per response, so a
    cached document never hands out a link that is about to expire)."""
    return {
        "id": user.uuid,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "date_of_birth": user.date_of_birth.isoformat(),
        "file": (
            {
                "key": user.file_key,
                "filename": user.file_name,
                "content_type": user.file_content_type,
                "size": user.file_size,
            }
            if user.file_key
            else None
        ),
        "created_at": wire_time(user.created_at),
        "updated_at": wire_time(user.updated_at),
        "synced_at": _wire_or_none(user.synced_at),
        "sync": {
            "status": user.sync_status,
            "attempts": user.sync_attempts,
            "last_error": user.sync_error,
            "airtable_record_id": user.airtable_record_id,
        },
    }


def new_user_message(user: User) -> dict[str, Any]:
    """Seed 000's ``broadcast_new_user``, field for field."""
    return {
        "type": "new_user",
        "user": {
            "id": user.uuid,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "email": user.email,
            "date_of_birth": user.date_of_birth.isoformat(),
            "created_at": wire_time(user.created_at),
            "synced_at": _wire_or_none(user.synced_at),
        },
    }


def sync_status_message(user_uuid: str, synced_at: datetime | None) -> dict[str, Any]:
    """Seed 000's ``broadcast_sync_status``, sent when ``synced_at`` changes."""
    return {
        "type": "sync_status_update",
        "user": {"id": user_uuid, "synced_at": _wire_or_none(synced_at)},
    }


async def _changed(session: AsyncSession, user: User, *, bump: bool = True) -> None:
    """Whatever changed, Airtable must hear of it: bump the version and enqueue the sync."""
    if bump:
        user.updated_at = utcnow()
        user.sync_version += 1
    user.sync_status = SyncStatus.pending.value
    await session.flush()
    await enqueue(session, SYNC_JOB, {"user_id": user.id})


def _attach(user: User, stored: StoredFile | None) -> None:
    user.file_key = stored.key if stored else None
    user.file_name = stored.filename if stored else None
    user.file_content_type = stored.content_type if stored else None
    user.file_size = stored.size if stored else None
    user.file_sha256 = stored.sha256 if stored else None


async def ensure_email_free(
    session: AsyncSession, email: str, except_id: int | None = None
) -> None:
    if await repository.email_taken(session, email_key(email), except_id):
        raise Conflict(f"A user with the email {email} already exists")


async def _flush_unique(session: AsyncSession, email: str) -> None:
    """The unique index decides a race that the check above lost."""
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"A user with the email {email} already exists") from None


def _wire_or_none(moment: datetime | None) -> str | None:
    return wire_time(moment) if moment is not None else None


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False
