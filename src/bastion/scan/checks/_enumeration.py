"""How the enumeration check tells two groups of answers apart: shape, then timing.

Shape: status and body with the usernames and numbers masked; each group must answer
consistently, or a difference is noise. Timing: a bounded number of interleaved pairs
and a median comparison, escalated only when the first pairs hint at a gap.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bastion.scan._target import Exchange

_NOISE = re.compile(r"[0-9a-f]{8,}|\d+(\.\d+)?", re.I)
TIMING_GAP = 0.15  # seconds between the medians of "known" and "unknown"
FIRST_PAIRS = 2
MAX_PAIRS = 6

Probe = Callable[[bool], Awaitable[Exchange | None]]  # known? -> the answer


@dataclass(frozen=True)
class Verdict:
    how: str  # "status" | "message" | "timing"
    detail: str
    known: Exchange
    unknown: Exchange


def shape(ex: Exchange, names: list[str]) -> tuple[int, str]:
    text = ex.text
    for name in sorted(names, key=len, reverse=True):
        if name:
            text = text.replace(name, "<user>")
    return ex.status, _NOISE.sub("<n>", text)


def by_shape(known: list[Exchange], unknown: list[Exchange], names: list[str]) -> Verdict | None:
    k_shapes = {shape(e, names) for e in known}
    u_shapes = {shape(e, names) for e in unknown}
    if len(k_shapes) != 1 or len(u_shapes) != 1 or k_shapes == u_shapes:
        return None
    (ks, kb), (us, ub) = next(iter(k_shapes)), next(iter(u_shapes))
    how = "status" if ks != us else "message"
    detail = f"told apart by {how}: HTTP {ks} vs {us}; body length {len(kb)} vs {len(ub)}"
    return Verdict(how, detail, known[0], unknown[0])


def timing_hint(known: list[Exchange], unknown: list[Exchange]) -> bool:
    return min(e.elapsed for e in known) > max(e.elapsed for e in unknown) + TIMING_GAP / 2


def by_timing(known: list[Exchange], unknown: list[Exchange]) -> Verdict | None:
    k = [e.elapsed for e in known]
    u = [e.elapsed for e in unknown]
    mk, mu = statistics.median(k), statistics.median(u)
    if mk > mu + TIMING_GAP and mk > 2 * mu and min(k) > mu:
        detail = (
            f"median {mk:.3f}s for the known user vs {mu:.3f}s for unknown ones over "
            f"{len(k)} interleaved pairs (known {min(k):.3f}-{max(k):.3f}s, unknown "
            f"{min(u):.3f}-{max(u):.3f}s)"
        )
        return Verdict("timing", detail, known[0], unknown[0])
    return None


async def compare(probe: Probe, names: list[str], *, refuse_ok: bool) -> Verdict | None:
    """Interleaved (known, unknown) pairs until a verdict or the bound.

    Stops without a verdict when a probe fails or is throttled (429 answers say nothing),
    and with ``refuse_ok`` when one succeeds (a login that worked with a wrong password; a
    registration that may have created an account: no more of those).
    """
    known: list[Exchange] = []
    unknown: list[Exchange] = []
    for i in range(MAX_PAIRS):
        a, b = await probe(True), await probe(False)
        if a is None or b is None or 429 in (a.status, b.status):
            return None
        if refuse_ok and (a.ok or b.ok):
            return None
        known.append(a)
        unknown.append(b)
        if i + 1 < FIRST_PAIRS:
            continue
        if i + 1 == FIRST_PAIRS:
            found = by_shape(known, unknown, names)
            if found is not None:
                return found
            if {e.status for e in known} != {e.status for e in unknown}:
                return None  # inconsistent shapes: noise, and timing would compare apples
            if not timing_hint(known, unknown):
                return None
    return by_timing(known, unknown)
