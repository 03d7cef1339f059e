"""The operator's API client.

kopf brings its own client for watching and for its bookkeeping; it does not do server-side
apply, status of other objects or the scale subresource, so the operator talks to the API
server itself, with the credentials kopf resolved (kubeconfig or in-cluster service
account) and a single pooled aiohttp session. Bodies are encoded and decoded with orjson:
decoding the API server's answers (whole objects, managedFields included) was a third of
the operator's JSON time, and JSON decoding its largest single cost (py-spy over
bench/operator_scale.py).
"""

from __future__ import annotations

import base64
import ssl
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import orjson

from atomic_operator.k8s.resources import object_path, resource_path


class ApiError(Exception):
    """A non-2xx answer, carrying the API server's Status message (which names fields)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def gone_with_namespace(err: ApiError) -> bool:
    """An answer that means the object's namespace is being deleted or is gone: expected
    while a namespace is torn down, and never worth a retry."""
    return (err.status == 404 and err.message.startswith("namespaces ")) or (
        err.status == 403 and "because it is being terminated" in err.message)


class Api(Protocol):
    """The calls a reconcile makes. `KubeClient` speaks them to an API server; unit
    tests of the orchestration pass an in-memory double (tests/support/memory_api.py)."""

    async def apply(self, obj: dict[str, Any], field_manager: str, *,
                    dry_run: bool = False) -> dict[str, Any]: ...

    async def merge_patch(self, path: str, patch: dict[str, Any], field_manager: str
                          ) -> dict[str, Any]: ...

    async def delete(self, path: str) -> bool: ...

    async def create(self, obj: dict[str, Any], field_manager: str, *,
                     dry_run: bool = False) -> dict[str, Any]: ...

    async def list(self, path: str, label_selector: dict[str, str] | None = None
                   ) -> list[dict[str, Any]]: ...


def _ssl_context(ca_data: str | bytes | None, ca_path: str | None,
                 insecure: bool | None) -> ssl.SSLContext | bool:
    if insecure:
        return False
    context = ssl.create_default_context(cafile=ca_path)
    if ca_data:
        raw = ca_data if isinstance(ca_data, bytes) else ca_data.encode()
        if b"-----BEGIN" not in raw:
            raw = base64.b64decode(raw)
        context.load_verify_locations(cadata=raw.decode())
    return context


def _decode(raw: bytes) -> dict[str, Any]:
    """An answer's JSON object; {} for an empty or non-object body (a proxy's HTML error
    page must still end as an ApiError with its status, not a decoding error)."""
    if not raw:
        return {}
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return payload if isinstance(payload, dict) else {}


class BearerSource(Protocol):
    """Where the bearer token comes from when it can change under a running client."""

    def bearer(self) -> str | None:
        """The token to send now (cheap: called on every request)."""

    async def refresh(self) -> None:
        """Load the token afresh: the API server just refused the current one."""


class KubeClient:
    """Requests against one API server; every method raises ApiError on failure."""

    def __init__(self, server: str, session: aiohttp.ClientSession,
                 tokens: BearerSource | None = None) -> None:
        self.server = server.rstrip("/")
        self.session = session
        self.tokens = tokens

    @classmethod
    def connect(cls, server: str, *, token: str | None = None, ca_data: str | bytes | None = None,
                ca_path: str | None = None, insecure: bool | None = None,
                client_cert: tuple[str, str] | None = None, limit: int = 100,
                tokens: BearerSource | None = None) -> KubeClient:
        """`token` is fixed for the client's life; `tokens` is asked on every request and
        refreshed once after a 401 (a rotated service-account token, an exec plugin's)."""
        ssl_ctx = _ssl_context(ca_data, ca_path, insecure)
        if client_cert and isinstance(ssl_ctx, ssl.SSLContext):
            ssl_ctx.load_cert_chain(*client_cert)
        headers = {"Authorization": f"Bearer {token}"} if token and tokens is None else {}
        session = aiohttp.ClientSession(
            headers=headers,
            connector=aiohttp.TCPConnector(ssl=ssl_ctx, limit=limit),
            timeout=aiohttp.ClientTimeout(total=60),
        )
        return cls(server, session, tokens)

    async def close(self) -> None:
        await self.session.close()

    async def _request(self, method: str, path: str, *, body: Any = None,
                       content_type: str = "application/json",
                       params: dict[str, str] | None = None) -> dict[str, Any]:
        data = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        for attempt in (1, 2):
            bearer = self.tokens.bearer() if self.tokens is not None else None
            if bearer:
                headers["Authorization"] = f"Bearer {bearer}"
            async with self.session.request(method, self.server + path, data=data,
                                            headers=headers, params=params) as resp:
                raw = await resp.read()
                if resp.status == 401 and self.tokens is not None and attempt == 1:
                    await self.tokens.refresh()
                    continue
                payload = _decode(raw)
                if resp.status >= 400:
                    raise ApiError(resp.status, str(payload.get("reason", resp.reason)),
                                   str(payload.get("message",
                                                   raw[:500].decode(errors="replace"))))
                return payload
        raise AssertionError("unreachable: the second attempt returns or raises")

    async def apply(self, obj: dict[str, Any], field_manager: str, *,
                    dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply with force: the operator owns the fields it renders."""
        params = {"fieldManager": field_manager, "force": "true"}
        if dry_run:
            params["dryRun"] = "All"
        return await self._request("PATCH", object_path(obj), body=obj, params=params,
                                   content_type="application/apply-patch+yaml")

    async def get(self, path: str) -> dict[str, Any]:
        return await self._request("GET", path)

    async def create(self, obj: dict[str, Any], field_manager: str, *,
                     dry_run: bool = False) -> dict[str, Any]:
        """POST to the collection (a `generateName` names it)."""
        meta = obj["metadata"]
        params = {"fieldManager": field_manager}
        if dry_run:
            params["dryRun"] = "All"
        path = resource_path(obj["apiVersion"], obj["kind"], meta["namespace"])
        return await self._request("POST", path, body=obj, params=params)

    async def merge_patch(self, path: str, patch: dict[str, Any], field_manager: str
                          ) -> dict[str, Any]:
        return await self._request("PATCH", path, body=patch,
                                   content_type="application/merge-patch+json",
                                   params={"fieldManager": field_manager})

    async def delete(self, path: str) -> bool:
        """Delete in the background; False when it was already gone."""
        try:
            await self._request("DELETE", path, body={"propagationPolicy": "Background"})
        except ApiError as err:
            if err.status == 404:
                return False
            raise
        return True

    async def list(self, path: str, label_selector: dict[str, str] | None = None
                   ) -> list[dict[str, Any]]:
        params = None
        if label_selector:
            params = {"labelSelector": ",".join(f"{k}={quote(v)}"
                                                for k, v in label_selector.items())}
        items: list[dict[str, Any]] = (await self._request("GET", path, params=params))["items"]
        return items
