"""Sample data for a fresh database: 5 applications, 46 chats, 500+ messages.

The conversations are stitched from a fixed pool of lines with a fixed random seed, so
every run writes the same data (tokens excepted) and the search has real words to find.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from junction.chat import repository, search
from junction.chat.models import Application, Chat, Message
from junction.chat.service import new_token
from junction.platform.db import utcnow

APPLICATIONS = (
    ("Customer Support Platform", 12),
    ("Sales Team Workspace", 10),
    ("Engineering Standup", 9),
    ("Product Feedback Hub", 8),
    ("Café Opérations Montréal", 7),
)
OPENERS = (
    "Hello, how can I help you today?",
    "Hi team, quick question about the release.",
    "Good morning! Is anyone around?",
    "Hey, do you have a minute to look at something?",
    "Hello again, following up on yesterday's thread.",
)
LINES = (
    "Sure, what do you need?",
    "I can't log in since the last update.",
    "Could you send me a screenshot of the error?",
    "The invoice for October looks wrong to me.",
    "Let me check with the billing team and get back to you.",
    "Thanks, that fixed it!",
    "The deployment finished without errors.",
    "Can we move the demo to Thursday afternoon?",
    "I reviewed the pull request, two small comments.",
    "The customer asked for a refund on their annual plan.",
    "Our café menu needs a crème brûlée entry, voilà.",
    "Dashboard latency went up after the cache change.",
    "I'll write the migration and ping you for review.",
    "Great news: the client signed the renewal.",
    "Could you share the pricing sheet for enterprise?",
    "The search results look much better now.",
    "We should add a test for that edge case.",
    "The mobile app crashes when uploading large photos.",
    "Meeting notes are in the shared folder.",
    "Naïve question: why does the export take so long?",
    "Resetting the password worked, thank you.",
    "I'm out tomorrow, Maria will cover support.",
    "The new onboarding flow is live for 10% of users.",
    "Let's schedule a retrospective for next week.",
)
CLOSERS = (
    "Thanks for your help, have a great day!",
    "Perfect, talk soon.",
    "Closing this one, feel free to reopen.",
    "Cheers, see you at the standup.",
)


@dataclass(frozen=True)
class SeedSummary:
    applications: int
    chats: int
    messages: int


async def is_empty(session: AsyncSession) -> bool:
    return not any((await repository.count_rows(session)).values())


async def seed_if_empty(session: AsyncSession) -> SeedSummary | None:
    """Write the sample data unless there is chat data already (seed 001's rule)."""
    if not await is_empty(session):
        return None
    return await seed(session)


async def seed_on_first_start(session: AsyncSession) -> str:
    """The first-start step of ``JUNCTION_SEED_ON_START`` and demo mode."""
    summary = await seed_if_empty(session)
    if summary is None:
        return "chat data already present; nothing seeded"
    return (
        f"seeded {summary.applications} applications, {summary.chats} chats "
        f"and {summary.messages} messages"
    )


def _conversation(rng: random.Random) -> list[str]:
    middle = rng.sample(LINES, rng.randint(9, 12))
    return [rng.choice(OPENERS), *middle, rng.choice(CLOSERS)]


async def seed(session: AsyncSession) -> SeedSummary:
    """Write the sample data; the caller checks the database is empty first."""
    rng = random.Random(1)
    start = utcnow() - timedelta(days=30)
    chats_written = messages_written = 0
    for name, chat_total in APPLICATIONS:
        application = Application(
            token=new_token(), name=name, chats_count=chat_total, last_chat_number=chat_total
        )
        session.add(application)
        await session.flush()
        for number in range(1, chat_total + 1):
            lines = _conversation(rng)
            at = start + timedelta(hours=rng.randint(0, 24 * 25))
            chat = Chat(
                application_id=application.id,
                number=number,
                messages_count=len(lines),
                last_message_number=len(lines),
                created_at=at,
            )
            session.add(chat)
            await session.flush()
            session.add_all(
                Message(
                    chat_id=chat.id,
                    number=index,
                    body=body,
                    search_text=search.fold(body),
                    created_at=at + timedelta(minutes=3 * index),
                )
                for index, body in enumerate(lines, start=1)
            )
            chats_written += 1
            messages_written += len(lines)
    await session.flush()
    return SeedSummary(len(APPLICATIONS), chats_written, messages_written)
