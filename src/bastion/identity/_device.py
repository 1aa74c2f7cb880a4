"""Human-readable "where" and "what" for the sign-in activity and session lists."""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Any

_BROWSERS = (
    ("Edge", re.compile(r"Edg/(\d+)")),
    ("Chrome", re.compile(r"(?:HeadlessChrome|Chrome|Chromium)/(\d+)")),
    ("Firefox", re.compile(r"Firefox/(\d+)")),
    ("Safari", re.compile(r"Version/(\d+).*Safari/")),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def device(user_agent: str) -> str:
    """``"Chrome 131 on Linux"`` from a User-Agent header; ``"unknown device"`` otherwise."""
    ua = user_agent[:512]
    browser = next((f"{name} {m.group(1)}" for name, rx in _BROWSERS if (m := rx.search(ua))), "")
    system = next((label for token, label in _SYSTEMS if token in ua), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or ("unknown device" if not ua else ua[:60])


def place(client_ip: str, *, geoip: bool = False) -> str:
    """Where an address is: this machine, the local network, or — with ``geoip`` — the
    country of a public address (geoip2fast's embedded data); else "internet"."""
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        return "unknown"
    if ip.is_loopback:
        return "this machine"
    if ip.is_private or ip.is_link_local:
        return "local network"
    if geoip:
        country = _country(str(ip))
        if country:
            return country
    return "internet"


@functools.cache
def _geo() -> Any:
    from geoip2fast import GeoIP2Fast

    return GeoIP2Fast(verbose=False)


def _country(address: str) -> str | None:
    try:
        found = _geo().lookup(address)
    except Exception:  # noqa: BLE001 - a missing or bad data file must not break a login
        return None
    name = getattr(found, "country_name", "")
    code = getattr(found, "country_code", "")
    if not name or not code or code == "--" or len(code) != 2:
        return None
    return str(name)
