"""Helpers shared by the repositories: error mapping and time."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bastion.errors import BadRequest, BastionError, NotFound, Unavailable
from bastion.model import Clock

# RFC 6749 §3.3 scope-token (printable ASCII but space, '"' and '\'), bounded.
_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")


class InvalidValue(BadRequest):
    """A value a record cannot hold; the detail says which and why."""

    title = "Invalid value"


def tokens(kind: str, values: Iterable[str]) -> list[str]:
    """Scopes or roles as stored: unique, sorted, each an RFC 6749 scope token of at
    most 128 characters. Identity headers and tokens carry them space-separated, so a
    role ``"viewer admin"`` would read as two roles, one of them ``admin``.

    Raises:
        InvalidValue: a value with a space, a control or non-ASCII character, a quote or
            a backslash, or longer than 128 characters.
    """
    out = sorted(set(values))
    for value in out:
        if not _TOKEN.fullmatch(value):
            raise InvalidValue(
                f"bad_{kind}",
                detail=f"{kind} {value!r} must be 1 to 128 printable ASCII characters "
                "without spaces, quotes or backslashes",
            )
    return out


class RecordNotFound(NotFound):
    """The user or key named does not exist."""

    code = "not_found"
    title = "No such record"


class RecordExists(BastionError):
    """A record with that name already exists, or the change conflicts with its state."""

    status = 409
    code = "conflict"
    title = "Conflict"


def now_utc(clock: Clock) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)


@contextmanager
def db_errors(what: str) -> Iterator[None]:
    """Turn driver errors into bastion errors: the decision path fails closed on them."""
    try:
        yield
    except IntegrityError as exc:
        raise RecordExists(f"{what}: integrity error", detail=f"{what} already exists") from exc
    except (SQLAlchemyError, OSError) as exc:
        raise Unavailable(f"{what}: database error: {exc.__class__.__name__}") from exc
