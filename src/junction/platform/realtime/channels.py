"""Channels: who may subscribe to what, and which broker streams a subscription reads.

A subscription is named by an Action Cable identifier, the JSON text
``{"channel": "ChatChannel", ...params}``. The registry finds the channel by name; the
channel authorises the caller and turns the params into stream names, or rejects.

The platform never imports a domain, so a domain registers its own channels from the
app factory: ``register_channel(app, ChatChannel())``. The platform's own channels
(``JobsChannel``; the sync kit's ``SyncStatusChannel``) are registered the same way.

Callers authenticate with an API key, sent as ``?api_key=`` (a browser cannot set headers
on a WebSocket) or ``Authorization: Bearer``. Without a key the caller is anonymous and
sees only public channels.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from junction.platform.auth import Principal, Scope, find_api_key
from junction.platform.db import Database

JOBS_STREAM = "jobs"


class SubscriptionRejected(Exception):
    """The identifier is malformed, names no channel, or the caller may not see it."""


class UnknownChannel(SubscriptionRejected):
    """The identifier is malformed or names no registered channel."""


class InvalidApiKey(Exception):
    """A key was sent but is unknown or revoked: refuse the connection, not just a channel."""


@dataclass(frozen=True)
class SubscriptionRequest:
    identifier: str
    channel: str
    params: Mapping[str, Any]
    principal: Principal | None
    database: Database

    def require_scope(self, scope: Scope) -> None:
        if self.principal is None or not self.principal.has_scope(scope):
            raise SubscriptionRejected(f"{self.channel} needs an API key with the '{scope}' scope")


class Channel(ABC):
    name: ClassVar[str]

    @abstractmethod
    async def streams(self, request: SubscriptionRequest) -> Sequence[str]:
        """The streams this subscription reads; raise ``SubscriptionRejected`` to refuse."""


@dataclass(frozen=True)
class ResolvedSubscription:
    identifier: str
    channel: str
    streams: tuple[str, ...]


class ChannelRegistry:
    def __init__(self) -> None:
        self._channels: dict[str, Channel] = {}

    def register(self, channel: Channel) -> None:
        if channel.name in self._channels:
            raise ValueError(f"channel {channel.name} is already registered")
        self._channels[channel.name] = channel

    def __contains__(self, name: str) -> bool:
        return name in self._channels

    async def resolve(
        self, identifier: str, principal: Principal | None, database: Database
    ) -> ResolvedSubscription:
        params = parse_identifier(identifier)
        name = params.pop("channel")
        channel = self._channels.get(name)
        if channel is None:
            raise UnknownChannel(f"there is no channel named {name}")
        request = SubscriptionRequest(identifier, name, params, principal, database)
        streams = tuple(await channel.streams(request))
        return ResolvedSubscription(identifier, name, streams)


def parse_identifier(identifier: str) -> dict[str, Any]:
    try:
        params = json.loads(identifier)
    except ValueError:
        raise UnknownChannel("the identifier is not JSON") from None
    if not isinstance(params, dict) or not isinstance(params.get("channel"), str):
        raise UnknownChannel('the identifier must be a JSON object with a "channel"')
    return params


def register_channel(app: Starlette, channel: Channel) -> None:
    """Make ``channel`` subscribable on ``/cable`` and ``/api/v1/stream`` of ``app``."""
    registry: ChannelRegistry = app.state.channels
    registry.register(channel)


async def authenticate(connection: HTTPConnection, database: Database) -> Principal | None:
    """The caller's key from ``?api_key=`` or ``Authorization: Bearer``; None if none sent."""
    key = connection.query_params.get("api_key")
    scheme, _, credentials = connection.headers.get("authorization", "").partition(" ")
    if not key and scheme.lower() == "bearer":
        key = credentials.strip()
    if not key:
        return None
    async with database.reading() as session:
        api_key = await find_api_key(session, key)
    if api_key is None:
        raise InvalidApiKey("The API key is invalid or revoked")
    return Principal.of(api_key)


class JobsChannel(Channel):
    """Job state changes, for operators. Needs a key with the admin scope."""

    name = "JobsChannel"

    async def streams(self, request: SubscriptionRequest) -> Sequence[str]:
        request.require_scope(Scope.admin)
        return [JOBS_STREAM]


def platform_channels() -> ChannelRegistry:
    registry = ChannelRegistry()
    for channel in (JobsChannel(),):
        registry.register(channel)
    return registry
