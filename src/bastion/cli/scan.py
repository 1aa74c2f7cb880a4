"""``bastion scan``: find authentication and authorization gaps in an HTTP API."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from bastion.cli._common import read_text
from bastion.errors import ConfigError

if TYPE_CHECKING:
    import ssl

    from bastion.scan import ScanConfig, ScanResult

USAGE = 2
FOUND = 1
FORMAT_NAMES = ("json", "sarif", "html")  # bastion.scan.FORMATS, not imported to start


def _fail(console: Console, message: str) -> typer.Exit:
    console.print(f"[red]error:[/] {message}")
    return typer.Exit(code=USAGE)


def self_target(config_path: Path) -> tuple[str, str | None]:
    """The base URL of a running bastion from its config, and its cert for verification.

    Note for the integrator: this reads ``listen`` only; a wildcard bind address is
    scanned on loopback. It is exercised against the real gateway by the integration
    suite, not by tests/scan (the gateway is built separately).
    """
    from bastion.config import load_config

    config = load_config(config_path)
    listen = config.listen
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(listen.host, listen.host)
    host = f"[{host}]" if ":" in host else host
    scheme = "https" if listen.tls else "http"
    cert = str(config.resolve(listen.tls.cert_file)) if listen.tls else None
    return f"{scheme}://{host}:{listen.port}/", cert


def _verify(ca_bundle: str | None, insecure: bool) -> bool | ssl.SSLContext:
    import ssl

    if insecure:
        return False
    ctx = ssl.create_default_context()
    if ca_bundle:
        try:
            ctx.load_verify_locations(ca_bundle)
        except OSError as exc:  # ssl.SSLError too: a file that holds no certificate
            reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
            raise ValueError(f"--ca-bundle {ca_bundle}: {reason}") from None
    return ctx


Opt = typer.Option


def scan(
    base_url: Annotated[
        str | None, typer.Argument(help="The API's base URL (not needed with --self).")
    ] = None,
    openapi: Annotated[
        str | None,
        Opt(
            help="OpenAPI/Swagger FILE, or a path/URL on the "
            "target. Default: discover /openapi.json etc."
        ),
    ] = None,
    endpoints: Annotated[Path | None, Opt(help="A file of 'METHOD /path' lines.")] = None,
    auth: Annotated[
        list[str] | None,
        Opt(help="NAME=bearer:TOKEN | apikey:HEADER:KEY | basic:USER:PASS | cookie:NAME=VALUE."),
    ] = None,
    login: Annotated[
        list[str] | None,
        Opt(help="NAME=/login?user=..&password=..[&token=$.access_token][&as=form]."),
    ] = None,
    admin: Annotated[list[str] | None, Opt(help="Identity NAME that is an admin.")] = None,
    checks: Annotated[str | None, Opt(help="Only these checks (comma-separated ids).")] = None,
    skip_checks: Annotated[str, Opt(help="Checks to leave out (comma-separated).")] = "",
    rps: Annotated[float, Opt(min=0.1, help="Requests per second.")] = 20.0,
    max_requests: Annotated[int, Opt(min=1, help="Request budget.")] = 2000,
    timeout: Annotated[float, Opt(min=0.5, help="Seconds per request.")] = 10.0,
    allow_unsafe: Annotated[bool, Opt(help="Also probe state-changing admin operations.")] = False,
    dry_run: Annotated[bool, Opt(help="List what would be sent; send nothing.")] = False,
    fmt: Annotated[str, Opt("--format", help="terminal | json | sarif | html")] = "terminal",
    output: Annotated[Path | None, Opt("--output", "-o", help="Write the report here.")] = None,
    fail_on: Annotated[
        str | None,
        Opt(
            help="Exit 1 when a finding is at or above this "
            "severity: critical|high|medium|low|info."
        ),
    ] = None,
    jwt_wordlist: Annotated[Path | None, Opt(help="More weak JWT secrets, one a line.")] = None,
    jwt_secret: Annotated[
        list[str] | None,
        Opt(help="A known HMAC key (your own staging): enables the expiry probes."),
    ] = None,
    ca_bundle: Annotated[Path | None, Opt(help="CA file to verify the target's TLS.")] = None,
    insecure: Annotated[
        bool, Opt(help="Do not verify the target's certificate (the tls check still reports it).")
    ] = False,
    http_port: Annotated[
        list[int] | None,
        Opt(help="Plain-HTTP port(s) of an HTTPS target's host to test (default 80)."),
    ] = None,
    self_scan: Annotated[bool, Opt("--self", help="Scan the bastion that --config runs.")] = False,
    config: Annotated[Path, Opt(help="bastion.yaml for --self.")] = Path("bastion.yaml"),
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress bar or summary.")] = False,
) -> None:
    """Scan an HTTP API for authentication and authorization gaps."""
    from bastion.scan import IdentityError, Severity, SpecError, TargetUnreachable

    console = Console(stderr=True)
    if fmt not in {"terminal", *FORMAT_NAMES}:
        raise _fail(console, f"--format {fmt!r}: use terminal, json, sarif or html")
    if output is not None and not output.parent.is_dir():  # found out before the scan
        raise _fail(console, f"--output {output}: no folder {output.parent}")
    threshold = None
    if fail_on:
        try:
            threshold = Severity.parse(fail_on)
        except ValueError as exc:
            raise _fail(console, f"--fail-on: {exc}") from None
    cert = None
    if self_scan:
        try:
            base_url, cert = self_target(config)
        except ConfigError as exc:
            raise _fail(console, str(exc)) from None
    if not base_url or not base_url.startswith(("http://", "https://")):
        raise _fail(console, "give the API's base URL (http:// or https://), or --self")
    try:
        scan_config = _build(
            base_url,
            openapi,
            endpoints,
            auth or [],
            login or [],
            admin or [],
            checks,
            skip_checks,
            rps,
            max_requests,
            timeout,
            dry_run,
            jwt_wordlist,
            jwt_secret or [],
            str(ca_bundle) if ca_bundle else cert,
            insecure,
            allow_unsafe,
            http_port or [80],
        )
    except (IdentityError, ValueError, SpecError) as exc:
        raise _fail(console, str(exc)) from None
    try:
        result = _run(scan_config, console, quiet)
    except (SpecError, TargetUnreachable) as exc:
        raise _fail(console, str(exc)) from None
    try:
        _emit(result, fmt, output, console, quiet)
    except OSError as exc:
        raise _fail(console, f"--output {output}: {exc.strerror or type(exc).__name__}") from None
    worst = result.worst()
    if threshold is not None and worst is not None and worst >= threshold:
        raise typer.Exit(code=FOUND)


def _build(
    base_url: str,
    openapi: str | None,
    endpoints: Path | None,
    auth: list[str],
    login: list[str],
    admin: list[str],
    checks: str | None,
    skip_checks: str,
    rps: float,
    max_requests: int,
    timeout: float,
    dry_run: bool,
    jwt_wordlist: Path | None,
    jwt_secret: list[str],
    ca_bundle: str | None,
    insecure: bool,
    allow_unsafe: bool,
    http_port: list[int],
) -> ScanConfig:
    from bastion.scan import (
        IdentityError,
        ScanConfig,
        ScanOptions,
        parse_auth,
        parse_login,
        select_checks,
    )

    identities = [parse_auth(a) for a in auth]
    logins = [parse_login(item) for item in login]
    names = [i.name for i in identities] + [n for n, _ in logins]
    if len(set(names)) != len(names):
        raise IdentityError("each --auth/--login NAME must be unique")
    unknown_admins = sorted(set(admin) - set(names))
    if unknown_admins:
        raise IdentityError(f"--admin names no identity: {', '.join(unknown_admins)}")
    only = [c.strip() for c in checks.split(",") if c.strip()] if checks else None
    skip = [c.strip() for c in skip_checks.split(",") if c.strip()]
    select_checks(only, skip)  # raises ValueError for an unknown id
    openapi_text = openapi_path = None
    if openapi:
        if openapi.startswith(("http://", "https://", "/")) and not Path(openapi).is_file():
            openapi_path = openapi
        else:
            openapi_text = read_text(Path(openapi), "--openapi")
    words: tuple[str, ...] = ()
    if jwt_wordlist:
        lines = read_text(jwt_wordlist, "--jwt-wordlist").splitlines()
        words = tuple(w.strip() for w in lines if w.strip())
    return ScanConfig(
        base_url=base_url,
        identities=identities,
        logins=logins,
        admins=admin,
        openapi_text=openapi_text,
        openapi_path=openapi_path,
        endpoints_text=read_text(endpoints, "--endpoints") if endpoints else None,
        checks=only,
        skip_checks=skip,
        rps=rps,
        max_requests=max_requests,
        timeout=timeout,
        verify=_verify(ca_bundle, insecure),
        dry_run=dry_run,
        options=ScanOptions(
            allow_unsafe=allow_unsafe,
            jwt_wordlist=words,
            jwt_secrets=tuple(jwt_secret),
            ca_bundle=ca_bundle,
            http_ports=tuple(http_port),
        ),
    )


def _run(config: ScanConfig, console: Console, quiet: bool) -> ScanResult:
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from bastion.scan import run_scan

    if quiet:
        return asyncio.run(run_scan(config))
    with Progress(
        TextColumn("[bold]scanning[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[sent]} requests"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(config.base_url, total=None, sent=0)

        def update(check: str, done: int, total: int, sent: int) -> None:
            progress.update(task, description=check, completed=done, total=total, sent=sent)

        return asyncio.run(run_scan(config, update))


def _emit(result: ScanResult, fmt: str, output: Path | None, console: Console, quiet: bool) -> None:
    from bastion.scan import FORMATS
    from bastion.scan.reports.terminal import summary

    if not quiet:
        summary(console, result)
    if fmt == "terminal":
        return
    text = FORMATS[fmt](result)
    if output:
        output.write_text(text, encoding="utf-8")
        if not quiet:
            console.print(f"{fmt} report written to {output}")
    else:
        sys.stdout.write(text)
