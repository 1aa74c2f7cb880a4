"""Helpers for the authorization checks: object ids, comparable bodies."""

from __future__ import annotations

from typing import Any

from bastion.scan._context import leaves

USERISH = ("user", "account", "member", "owner", "profile", "customer")
ID_KEYS = ("id", "uuid", "_id", "key", "slug")


def same_data(a: Any, b: Any) -> bool:
    """Both bodies carry the same non-trivial values: the same object came back."""
    va = {str(v) for _k, v in leaves(a) if v not in (None, "", True, False)}
    vb = {str(v) for _k, v in leaves(b) if v not in (None, "", True, False)}
    return bool(va) and va == vb


def items(data: Any) -> list[dict[str, Any]]:
    """The objects of a listing: a JSON array, or the array under items/data/results."""
    if isinstance(data, dict):
        for key in ("items", "data", "results", "content", "records"):
            if isinstance(data.get(key), list):
                data = data[key]
                break
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def ids(data: Any) -> list[str]:
    out = []
    for obj in items(data):
        for key in ID_KEYS:
            if obj.get(key) not in (None, ""):
                out.append(str(obj[key]))
                break
    return out


def collection_of(path: str) -> str | None:
    """``/orders`` for ``/orders/{id}`` (the listing that names the objects)."""
    head, sep, _tail = path.rpartition("/{")
    return head if sep and head else None
