"""Context providers: text the operator gives the agent besides its prompt.

They follow Atomic Agents' ``BaseDynamicContextProvider`` shape (a title and ``get_info()``)
so the prompt composition is the same for configured and bring-your-own agents. Files come
from mounted ConfigMaps and Secrets, which the kubelet updates in place (an atomic symlink
swap), so they are re-read whenever their modification time or size changes instead of being
cached for the life of the pod; a stat per request is far cheaper than a restart.

A file that is missing makes the agent not ready (``/readyz`` 503 naming the file, one
warning when it goes missing) instead of answering with an empty section: in Kubernetes a
missing key shows as a pod that is not Ready, with the reason in its log, and the pod turns
Ready by itself once the kubelet projects the file.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Protocol

from .config import ContextProviderConfig

log = logging.getLogger("atomic_runtime.context")


_UNSEEN = object()


class ContextProvider(Protocol):
    title: str

    def get_info(self) -> str: ...


class TextContext:
    def __init__(self, title: str, text: str) -> None:
        self.title = title
        self._text = text

    def get_info(self) -> str:
        return self._text


class FileContext:
    """Serves a file's text and re-reads it when the file changes."""

    def __init__(self, title: str, path: str) -> None:
        self.title = title
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | object | None = _UNSEEN
        self._text = ""
        self._missing_warned = False

    def _current_stamp(self) -> tuple[int, int, int] | None:
        try:
            # stat follows symlinks, so the kubelet's ..data swap changes the inode we see
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def get_info(self) -> str:
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return self._text
        with self._lock:
            if stamp != self._stamp:
                if stamp is None:
                    self._warn_missing()
                    self._text = ""
                else:
                    try:
                        self._text = self.path.read_text(encoding="utf-8").strip()
                    except OSError as exc:
                        log.warning(
                            "context file unreadable",
                            extra={"path": str(self.path), "error": type(exc).__name__},
                        )
                        self._text = ""
                    else:
                        if self._stamp not in (None, _UNSEEN):
                            log.info("context file reloaded", extra={"path": str(self.path)})
                        self._missing_warned = False
                self._stamp = stamp
        return self._text

    def _warn_missing(self) -> None:
        if not self._missing_warned:
            self._missing_warned = True
            log.warning(
                "context file missing: the agent is not ready until it exists",
                extra={"path": str(self.path), "title": self.title},
            )

    def missing(self) -> str | None:
        """Why this provider cannot serve (warned once per disappearance), or None."""
        if self._current_stamp() is not None:
            self._missing_warned = False
            return None
        with self._lock:
            self._warn_missing()
        return f"context file missing: {self.path}"


def missing_files(providers: dict[str, ContextProvider]) -> str | None:
    """The first missing context file, as a reason for /readyz, or None."""
    for provider in providers.values():
        if isinstance(provider, FileContext):
            reason = provider.missing()
            if reason:
                return reason
    return None


def build_providers(configs: list[ContextProviderConfig]) -> dict[str, ContextProvider]:
    providers: dict[str, ContextProvider] = {}
    for cfg in configs:
        if cfg.file is not None:
            providers[cfg.name] = FileContext(cfg.title, cfg.file)
        else:
            providers[cfg.name] = TextContext(cfg.title, cfg.text or "")
    return providers
