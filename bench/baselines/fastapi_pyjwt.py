"""Baseline B: what a Python team writes by hand — a FastAPI endpoint that verifies the
ES256 JWT with PyJWT on every request (no cache). Run with uvicorn, 1 worker, uvloop.

Environment: BENCH_JWT_PEM (the issuer's public key, PEM), BENCH_JWT_ISS, BENCH_JWT_AUD.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

PUBLIC_KEY = os.environ["BENCH_JWT_PEM"]
ISSUER = os.environ["BENCH_JWT_ISS"]
AUDIENCE = os.environ["BENCH_JWT_AUD"]

app = FastAPI()
bearer = HTTPBearer()


async def claims(
    creds: Annotated[HTTPAuthorizationCredentials, Depends(bearer)],
) -> dict[str, Any]:
    try:
        return jwt.decode(
            creds.credentials, PUBLIC_KEY, algorithms=["ES256"], audience=AUDIENCE, issuer=ISSUER
        )
    except jwt.PyJWTError:
        raise HTTPException(status_code=401, detail="invalid token") from None


@app.get("/api/{path:path}")
async def protected(path: str, user: Annotated[dict[str, Any], Depends(claims)]) -> dict[str, str]:
    return {"sub": user["sub"], "path": path}
