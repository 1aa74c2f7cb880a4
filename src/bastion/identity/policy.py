"""The password policy, after NIST SP 800-63B §3.1.1.2 (memorized secrets).

Length over composition: at least :data:`MIN_LENGTH` characters (Unicode code points,
after NFC), at most 1024 bytes; any printable character including spaces; no rules about
digits or symbols (§3.1.1.2: "SHALL NOT impose other composition rules"); refused when it
is a common or expected password (the shipped list, case-insensitive), a run of one
character, or contains the username. Nothing expires on a schedule.
"""

from __future__ import annotations

import functools
import unicodedata
from importlib import resources

from bastion.credentials.basic import check_password

MIN_LENGTH = 12  # SP 800-63B-4 asks 15 for a password used alone, 8 with a second factor


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list (``data/common-passwords.txt``), lower case."""
    text = resources.files("bastion.identity").joinpath("data/common-passwords.txt").read_text()
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("#")
    )


def password_problems(password: str, *, username: str = "") -> list[str]:
    """Why ``password`` is not acceptable (empty when it is). Messages are safe to show."""
    try:
        password = check_password(password)
    except ValueError as exc:
        return [str(exc)]
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"use at least {MIN_LENGTH} characters")
    folded = password.casefold()
    if folded in common_passwords() or _stripped(folded) in common_passwords():
        problems.append("this password is too common")
    elif len(set(password)) == 1:
        problems.append("use more than one distinct character")
    name = unicodedata.normalize("NFC", username).casefold()
    if len(name) >= 3 and name in folded:
        problems.append("do not use your username in your password")
    return problems


def _stripped(folded: str) -> str:
    """The password without trailing digits and symbols ("dragon!!2024" → "dragon")."""
    return folded.rstrip("0123456789!@#$%^&*?. ")
