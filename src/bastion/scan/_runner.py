"""One scan from start to end: discover the API, log in, run the checks by phase."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from bastion.scan._canary import Canary
from bastion.scan._context import ScanContext, ScanOptions
from bastion.scan._errors import (
    BudgetExhausted,
    DryRun,
    OriginRefused,
    SpecError,
    TargetUnreachable,
)
from bastion.scan._identity import Identity, LoginRecipe
from bastion.scan._model import ScanResult
from bastion.scan._openapi import SPEC_PATHS, ApiSpec, load_spec, parse_endpoint_list, parse_text
from bastion.scan._redact import Redactor
from bastion.scan._target import MAX_SPEC_BODY, PLAN_LABEL, Exchange, Target
from bastion.scan.checks import ALL_CHECKS, Check

Progress = Callable[[str, int, int, int], None]  # (check id, done, total, requests sent)


@dataclass(frozen=True)
class ScanConfig:
    """Everything a scan needs, already validated by the CLI."""

    base_url: str
    identities: Sequence[Identity] = ()
    logins: Sequence[tuple[str, LoginRecipe]] = ()
    admins: Sequence[str] = ()
    openapi_text: str | None = None
    openapi_path: str | None = None  # a URL or path on the target
    endpoints_text: str | None = None
    checks: Sequence[str] | None = None
    skip_checks: Sequence[str] = ()
    rps: float = 20.0
    max_requests: int = 2000
    timeout: float = 10.0
    verify: bool | ssl.SSLContext = True
    dry_run: bool = False
    options: ScanOptions = field(default_factory=ScanOptions)


def select_checks(only: Sequence[str] | None, skip: Sequence[str]) -> list[type[Check]]:
    """The checks to run; raises ValueError naming an unknown check id."""
    known = {c.id: c for c in ALL_CHECKS}
    unknown = sorted({*(only or ()), *skip} - set(known))
    if unknown:
        raise ValueError(f"unknown check(s): {', '.join(unknown)}")
    chosen = [known[i] for i in only] if only else list(ALL_CHECKS)
    return [c for c in chosen if c.id not in skip]


async def run_scan(config: ScanConfig, progress: Progress | None = None) -> ScanResult:
    """Run one scan and return its findings.

    Raises:
        TargetUnreachable: the target answered none of the requests sent (nothing
            listening, every connection reset...): "no findings" would be a lie.
        SpecError: the OpenAPI document named by ``openapi_path`` cannot be read.
    """
    checks = select_checks(config.checks, config.skip_checks)
    started = time.monotonic()
    result = ScanResult(
        target=config.base_url,
        findings=[],
        checks=[c.info() for c in checks],
        dry_run=config.dry_run,
    )
    target = Target(
        config.base_url,
        rps=config.rps,
        max_requests=config.max_requests,
        timeout=config.timeout,
        verify=config.verify,
        dry_run=config.dry_run,
        sibling_ports=config.options.http_ports,
    )
    async with target, Canary() as canary:
        redactor = Redactor()
        spec = await _load_spec(target, config, result)
        identities, logins = await _identities(target, config, result, redactor)
        ctx = ScanContext(target, spec, identities, config.options, canary, redactor)
        ctx.state["login_exchanges"] = logins
        await _run_checks(ctx, checks, result, progress)
        _require_answers(target)
        # A dry run proves nothing: it lists the requests it can and reports no finding.
        found = [] if config.dry_run else ctx.findings
        if config.dry_run:
            result.plan_notes = _plan_notes(checks, target.planned)
        result.findings = sorted(found, key=lambda f: (-f.severity, f.check, f.endpoint))
    result.requests_sent = target.sent
    result.planned = target.planned
    result.elapsed_seconds = time.monotonic() - started
    return result


def _require_answers(target: Target) -> None:
    """Raise TargetUnreachable when requests were sent and none got an answer."""
    if target.sent and not target.answered:
        raise TargetUnreachable(
            f"{target.base_url} answered none of the {target.sent} requests sent "
            f"(last: {target.last_failure or 'no answer'}): is it running, and is the URL right?"
        )


async def _load_spec(target: Target, config: ScanConfig, result: ScanResult) -> ApiSpec:
    if config.openapi_text is not None:
        return load_spec(parse_text(config.openapi_text, "--openapi"), "--openapi file")
    if config.endpoints_text is not None:
        return parse_endpoint_list(config.endpoints_text)
    base = target.base_url.removeprefix(target.origin_url).rstrip("/")
    candidates = (
        [config.openapi_path]
        if config.openapi_path
        else [*(base + p for p in SPEC_PATHS if base), *SPEC_PATHS]
    )
    for path in dict.fromkeys(candidates):
        try:
            ex = await target.request(
                "GET",
                target.root_url(path) if path.startswith("/") else path,
                max_body=MAX_SPEC_BODY,
            )
        except DryRun:
            continue
        except (BudgetExhausted, OriginRefused) as exc:
            result.errors["discovery"] = str(exc)
            break
        except Exception:  # noqa: BLE001, S112 - a dead candidate is not an error
            continue
        if ex.ok and ex.truncated:
            # Cut short, it would fail to parse and read as "no document found".
            too_large = (
                f"the OpenAPI document at {path} is larger than "
                f"{MAX_SPEC_BODY / 2**20:g} MiB: pass it with --openapi FILE"
            )
            if config.openapi_path:
                raise SpecError(too_large)
            result.errors["discovery"] = too_large
            continue
        if ex.ok:
            try:
                spec = load_spec(parse_text(ex.text, path), ex.url)
            except SpecError:
                continue
            result.skipped.pop("discovery", None)
            result.errors.pop("discovery", None)
            return spec
    if config.openapi_path:
        raise SpecError(f"could not read an OpenAPI document at {config.openapi_path}")
    result.skipped["discovery"] = "no OpenAPI document found; checks use common paths only"
    return ApiSpec(source="none")


async def _identities(
    target: Target, config: ScanConfig, result: ScanResult, redactor: Redactor
) -> tuple[list[Identity], dict[str, Exchange]]:
    result_logins: dict[str, Exchange] = {}
    admins = set(config.admins)
    out = [replace(i, admin=i.name in admins) for i in config.identities]
    for name, recipe in config.logins:
        ident = Identity(
            name, "bearer", "", login=recipe, admin=name in admins, username=recipe.username
        )
        redactor.add(*ident.secrets())
        try:
            ex = await target.request(
                "POST",
                recipe.path,
                json_body=None if recipe.form else recipe.fields,
                content=_form(recipe),
                headers=_FORM if recipe.form else None,
            )
        except DryRun:
            out.append(ident)
            continue
        except Exception as exc:  # noqa: BLE001 - reported, the scan goes on without it
            result.errors[f"login {name}"] = str(exc)
            continue
        result_logins[name] = ex
        token = ScanContext.login_token(recipe, ex)
        cookies = ScanContext.login_cookies(ex)
        if token:
            out.append(replace(ident, value=token, cookies=cookies))
        elif cookies:
            out.append(replace(ident, kind="cookie", cookies=cookies))
        else:
            result.errors[f"login {name}"] = f"login failed: HTTP {ex.status}"
    for ident in out:
        redactor.add(*ident.secrets())
        if ident.kind == "header":
            redactor.add_header(ident.header_name)
    return out, result_logins


_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _form(recipe: LoginRecipe) -> str | None:
    if not recipe.form:
        return None
    from urllib.parse import urlencode

    return urlencode(recipe.fields)


async def _run_checks(
    ctx: ScanContext, checks: list[type[Check]], result: ScanResult, progress: Progress | None
) -> None:
    done = 0
    total = len(checks)

    async def one(check_cls: type[Check]) -> None:
        nonlocal done
        PLAN_LABEL.set(check_cls.id)
        try:
            await check_cls().run(ctx)
        except DryRun:
            pass
        except BudgetExhausted as exc:
            result.errors[check_cls.id] = str(exc)
        except OriginRefused as exc:
            result.errors[check_cls.id] = f"blocked: {exc}"
        except Exception as exc:  # noqa: BLE001 - one broken check must not end the scan
            result.errors[check_cls.id] = f"{type(exc).__name__}: {exc}"
        done += 1
        if progress:
            progress(check_cls.id, done, total, ctx.target.sent)

    for phase in (0, 1, 2, 3):
        batch = [c for c in checks if c.phase == phase]
        if phase >= 2:
            for check_cls in batch:
                await one(check_cls)
        else:
            await asyncio.gather(*(one(c) for c in batch))


def _plan_notes(checks: list[type[Check]], planned: list[str]) -> dict[str, str]:
    """Per check, what its dry-run plan does not show."""
    notes = {}
    for check in checks:
        listed = any(line.startswith(f"[{check.id}] ") for line in planned)
        if not listed:
            notes[check.id] = (
                "nothing listed: its first request depends on an answer (a login, the "
                "identity endpoint, a listing) or it has nothing to send to this target"
            )
        elif check.depends_on_answers:
            notes[check.id] = check.depends_on_answers
    return notes
