"""Job status and operator actions over HTTP.

``GET /api/v1/jobs/{id}`` answers an API key with the ``read`` scope that created the job
(an ``admin`` key reads every job), or anyone holding the job's capability token (the
``X-Job-Token`` header or ``?token=``), which the route that enqueued the job may hand to
its client. Unknown and unreadable jobs both answer 404, so ids reveal nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from junction.platform.auth import Principal, Scope, find_api_key, require_scope
from junction.platform.db import DbSession, ReadSession
from junction.platform.errors import Forbidden, NotFound, Unauthorized
from junction.platform.jobs import queue as job_queue
from junction.platform.jobs import repository
from junction.platform.jobs.models import Job
from junction.settings import Settings

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])
_bearer = HTTPBearer(auto_error=False)


class JobErrorOut(BaseModel):
    type: str
    message: str
    at: str


def _last_error(errors: list[dict[str, Any]]) -> dict[str, Any] | None:
    return errors[-1] if errors else None


class JobOut(BaseModel):
    # The job's errors column answers as its last element, last_error.
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    state: str
    queue: str
    priority: int
    attempts: int
    max_attempts: int
    created_at: datetime
    run_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_error: Annotated[JobErrorOut | None, BeforeValidator(_last_error)] = Field(
        validation_alias="errors"
    )
    result: Any


async def _may_read(
    request: Request, session: ReadSession, job: Job | None, token: str | None
) -> bool:
    settings: Settings = request.app.state.settings
    if job is None:
        return False
    if token is not None:
        return job_queue.token_allows(settings.secret_key.get_secret_value(), job.id, token)
    credentials: HTTPAuthorizationCredentials | None = await _bearer(request)
    if credentials is None:
        raise Unauthorized("Authorization: Bearer <api key> or a job token is required")
    api_key = await find_api_key(session, credentials.credentials)
    if api_key is None:
        raise Unauthorized("The API key is invalid or revoked")
    principal = Principal.of(api_key)
    if not principal.has_scope(Scope.read):
        raise Forbidden("The API key lacks the 'read' scope")
    return principal.has_scope(Scope.admin) or job.created_by == principal.key_id


JobId = Annotated[int, Path(ge=1, le=job_queue.MAX_JOB_ID, description="The job's id.")]
Admin = Annotated[Principal, Depends(require_scope(Scope.admin))]


@router.get(
    "/{job_id}",
    summary="A job's state, attempts, timestamps, last error and result summary",
    responses={401: {}, 403: {}, 404: {}},
)
async def get_job(
    job_id: JobId,
    request: Request,
    session: ReadSession,
    token: Annotated[str | None, Query(description="The job's capability token.")] = None,
    x_job_token: Annotated[str | None, Header()] = None,
) -> JobOut:
    job = await repository.job_by_id(session, job_id)
    if not await _may_read(request, session, job, x_job_token or token):
        raise NotFound(f"job {job_id} does not exist")
    assert job is not None
    return JobOut.model_validate(job)


@router.post("/{job_id}/retry", summary="Queue a dead or discarded job again (admin)")
async def retry_job(job_id: JobId, session: DbSession, _: Admin) -> JobOut:
    return JobOut.model_validate(await job_queue.retry(session, job_id))


@router.post("/{job_id}/discard", summary="Discard a dead or queued job (admin)")
async def discard_job(job_id: JobId, session: DbSession, _: Admin) -> JobOut:
    return JobOut.model_validate(await job_queue.discard(session, job_id))
