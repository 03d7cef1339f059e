"""The node agent's API client: requests and watches against the harness's API server.

The operator's client has no watches and is shaped by what the operator writes; a kubelet
needs gets, status writes, deletes with a grace period and long-running watches, against
the one kubeconfig the harness wrote (a bearer token and the API server's CA).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import yaml

log = logging.getLogger("procnode.api")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class Api:
    def __init__(self, server: str, token: str, ca_pem: str) -> None:
        self.server = server.rstrip("/")
        ctx = ssl.create_default_context()
        ctx.load_verify_locations(cadata=ca_pem)
        self.session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"},
            connector=aiohttp.TCPConnector(ssl=ctx, limit=50),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )

    @classmethod
    def from_kubeconfig(cls, path: Path) -> Api:
        config = yaml.safe_load(path.read_text())
        context = next(c["context"] for c in config["contexts"]
                       if c["name"] == config["current-context"])
        cluster = next(c["cluster"] for c in config["clusters"]
                       if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        return cls(cluster["server"], user["token"], ca)

    async def close(self) -> None:
        await self.session.close()

    async def request(self, method: str, path: str, body: Any = None, *,
                      params: dict[str, str] | None = None,
                      content_type: str = "application/json") -> dict[str, Any]:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self.session.request(method, self.server + path, data=data, params=params,
                                        headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=30)) as resp:
            text = await resp.text()
            payload: dict[str, Any] = json.loads(text) if text else {}
            if resp.status >= 400:
                raise ApiError(resp.status, str(payload.get("message", text[:300])))
            return payload

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", path)
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    async def watch(self, path: str, params: dict[str, str] | None = None
                    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """("SYNC", list) after every (re)list, then ("ADDED"|"MODIFIED"|"DELETED", object).

        Reconnects forever: a consumer treats SYNC as the whole truth and events as changes.
        """
        while True:
            try:
                listing = await self.request("GET", path, params=params)
                version = listing["metadata"]["resourceVersion"]
                yield "SYNC", listing
                while True:
                    query = dict(params or {}, watch="1", resourceVersion=version,
                                 allowWatchBookmarks="true", timeoutSeconds="240")
                    async with self.session.get(self.server + path, params=query) as resp:
                        if resp.status >= 400:
                            raise ApiError(resp.status, (await resp.text())[:300])
                        async for line in resp.content:
                            if not line.strip():
                                continue
                            event = json.loads(line)
                            kind, obj = event["type"], event["object"]
                            if kind == "ERROR":
                                raise ApiError(int(obj.get("code", 500)), obj.get("message", ""))
                            version = obj["metadata"]["resourceVersion"]
                            if kind != "BOOKMARK":
                                yield kind, obj
            except (aiohttp.ClientError, ApiError, TimeoutError, ValueError) as err:
                log.info("watch %s restarts: %s", path, err)
                await asyncio.sleep(0.5)
