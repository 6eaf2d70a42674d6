"""Full-text search over message bodies: partial words, any case, any accents.

Both databases index ``chat_messages.search_text``, the body folded here in Python
(Unicode NFKD, combining marks dropped, case-folded, punctuation turned into spaces).
Folding in one place means the index and the query always agree, on SQLite and
PostgreSQL alike, and PostgreSQL needs no ``unaccent`` extension (whose CREATE EXTENSION
needs a superuser that managed databases do not hand out).

* SQLite: an FTS5 table with external content (``chat_messages_fts``), kept up to date by
  triggers, so a message is searchable in the same transaction that writes it.
* PostgreSQL: a GIN index on ``to_tsvector('simple', search_text)``; the query is the same
  expression, so the planner uses the index, and a row is searchable once committed.

Every word of the query must start a word of the body (``hel`` finds "Hello, world!");
matches are ranked (bm25 / ts_rank), best first, then by number.
"""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import ColumnElement, Float, column, func, literal_column, table, text
from sqlalchemy.sql.elements import TextClause

from junction.chat.models import Message

MAX_QUERY_LENGTH = 200
MAX_QUERY_WORDS = 16
_WORD = re.compile(r"\w+")


def fold(text_: str) -> str:
    """Lower-case, accent-free words separated by single spaces."""
    decomposed = unicodedata.normalize("NFKD", text_)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_WORD.findall(bare.casefold()))


def query_words(query: str) -> list[str]:
    """The folded words of a search query, at most ``MAX_QUERY_WORDS``."""
    return fold(query).split()[:MAX_QUERY_WORDS]


def fts5_match(words: list[str]) -> str:
    """An FTS5 query: every word as a quoted prefix (quoting disarms FTS5 syntax)."""
    return " ".join(f'"{word}"*' for word in words)


def tsquery(words: list[str]) -> str:
    """A ``to_tsquery('simple', ...)`` text: every word as a prefix, all required."""
    return " & ".join(f"{word}:*" for word in words)


def pg_document() -> ColumnElement[object]:
    return func.to_tsvector(literal_column("'simple'"), Message.search_text)


def pg_match(words: list[str]) -> tuple[ColumnElement[bool], ColumnElement[float]]:
    """The WHERE clause and the rank expression of a PostgreSQL search."""
    query = func.to_tsquery(literal_column("'simple'"), tsquery(words))
    document = pg_document()
    return document.bool_op("@@")(query), func.ts_rank(document, query, type_=Float)


FTS_TABLE = table("chat_messages_fts", column("rowid"))


def sqlite_match(words: list[str]) -> tuple[ColumnElement[bool], ColumnElement[float]]:
    """The WHERE clause and the rank expression (bm25: lower is better) of an FTS5 search."""
    condition = literal_column("chat_messages_fts").bool_op("MATCH")(fts5_match(words))
    return condition, func.bm25(literal_column("chat_messages_fts"), type_=Float)


def sqlite_rebuild() -> TextClause:
    return text("INSERT INTO chat_messages_fts(chat_messages_fts) VALUES ('rebuild')")
