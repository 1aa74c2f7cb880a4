"""The ``kid`` header reaches a file path, an SQL query or a shell command unescaped.

Each probe signs the forged token with the key its ``kid`` would make the server use:
an empty key for ``/dev/null``, a string we SELECT, or the output of a command we
append (``printf`` of a marker). Acceptance as another user is the evidence; the
command probes run nothing but ``printf`` on the target.
"""

from __future__ import annotations

from bastion.scan import _jwt
from bastion.scan._context import ScanContext
from bastion.scan._model import Owasp, Severity
from bastion.scan.checks import _jwtprobe
from bastion.scan.checks._base import Check

PROBE_KEY = "bastion-kid-probe"
CMD_KEY = "bastion-kid-cmd"
PAYLOADS = (
    ("path traversal to /dev/null (empty key)", "../../../../../../../../../../dev/null", b""),
    (
        "SQL injection (UNION SELECT of a known key)",
        f"x' UNION SELECT '{PROBE_KEY}' -- ",
        PROBE_KEY.encode(),
    ),
    (
        "SQL injection (UNION SELECT, no space before --)",
        f"x' UNION SELECT '{PROBE_KEY}'--",
        PROBE_KEY.encode(),
    ),
    # The key file is read by a shell ("cat keys/$kid"): the command's output is the key.
    ("command injection (| printf)", f"k1|printf {CMD_KEY}", CMD_KEY.encode()),
    ("command injection (; printf)", f"x;printf {CMD_KEY}", CMD_KEY.encode()),
)


class JwtKidInjection(Check):
    id = "jwt_kid_injection"
    title = "JWT 'kid' header injection"
    severity = Severity.CRITICAL
    owasp = Owasp.API2
    cwe = 74
    why = (
        "The key id from an untrusted token is used to build a file path or SQL query, so an "
        "attacker chooses the verification key (an empty file, a value they SELECT)."
    )
    fix = (
        "Look kid up in a fixed map of known keys; never pass it to the file system, a "
        "database query or a shell."
    )

    async def run(self, ctx: ScanContext) -> None:
        plan = await _jwtprobe.setup(ctx)
        if plan is None:
            return
        evidence = []
        for what, kid, key in PAYLOADS:
            header = {**plan.token.header, "alg": "HS256", "kid": kid}
            token = _jwt.sign_hmac(header, plan.payload, key)
            ex = await _jwtprobe.accepted(ctx, plan, token)
            if ex is not None:
                evidence.append(ctx.evidence(ex, _jwtprobe.describe(plan, token, f"kid {what}")))
        if evidence:
            ctx.report(self.finding(ctx.target.url(plan.oracle), evidence))
