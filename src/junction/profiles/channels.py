"""``UserUpdatesChannel``: new users and their Airtable sync status, live (seed 000).

Identified by ``{"channel": "UserUpdatesChannel"}`` on ``/cable`` and ``/api/v1/stream``.
Public, as in the seed: no API key is asked for. Broadcasts are ``new_user`` and
``sync_status_update``, sent after the transaction that made the change commits.
"""

from __future__ import annotations

from collections.abc import Sequence

from junction.platform.realtime import Channel, SubscriptionRequest

USER_UPDATES_STREAM = "user_updates"


class UserUpdatesChannel(Channel):
    name = "UserUpdatesChannel"

    async def streams(self, request: SubscriptionRequest) -> Sequence[str]:
        return [USER_UPDATES_STREAM]
