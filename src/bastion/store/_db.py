"""Helpers shared by the repositories: error mapping and time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from bastion.errors import BastionError, NotFound, Unavailable
from bastion.model import Clock


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
