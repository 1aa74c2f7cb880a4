"""Human-readable "where" and "what" for the sign-in activity and session lists."""

from __future__ import annotations

import ipaddress
import re

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


def place(client_ip: str) -> str:
    """Where an address is, as far as bastion can tell without a geo database."""
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        return "unknown"
    if ip.is_loopback:
        return "this machine"
    if ip.is_private or ip.is_link_local:
        return "local network"
    return "internet"
