"""Issue 22 #21: during an API server outage the operator logged about 94 error lines a
minute. The operator reaches the real API server through a TCP forwarder the test cuts for
a while: each distinct warning or error is written once per interval, with a count."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from atomic_devcluster import ControlPlane
from atomic_devcluster.operator_process import running_operator
from atomic_operator.cli.logfold import FoldRepeats
from tests.support.kube import Kube, eventually
from tests.support.manifests import example

FOLD = 4.0


class Forwarder:
    """127.0.0.1:<port> → the API server, byte for byte (TLS passes through), cuttable."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        self.up = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.close()

    def cut(self) -> None:
        """Every connection dropped, new ones closed at once: the API server is gone."""
        self.up = False
        for s in self.open:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.open = []

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def forwarder(control_plane: ControlPlane) -> Iterator[Forwarder]:
    url = urlparse(control_plane.server)
    fwd = Forwarder((url.hostname or "127.0.0.1", int(url.port or 443)))
    yield fwd
    fwd.close()


def _record(r: dict[str, object]) -> logging.LogRecord:
    """A written line as a record, its count dropped, to key it as the fold does."""
    message = re.sub(r" \(repeated \d+ more times? in [\d.]+ s\)$", "", str(r["message"]))
    return logging.LogRecord("any", logging.ERROR, "", 0, message, None, None)


def _records(text: str) -> list[dict[str, object]]:
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def test_an_outage_is_a_few_lines_per_interval(control_plane: ControlPlane, kube: Kube,
                                               forwarder: Forwarder, tmp_path: Path) -> None:
    config = json.loads(control_plane.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{forwarder.port}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    env = {"ATOMIC_OPERATOR_LOG_FOLD_SECONDS": str(FOLD)}
    kube.run("create", "secret", "generic", "openai-credentials", "--from-literal=api-key=k")
    with running_operator(kubeconfig, tmp_path / "operator.log", f"--namespace={kube.namespace}",
                          env=env) as operator:
        kube.apply(example("task-processor"))
        eventually(lambda: (kube.get("atomicagent", "task-processor").get("status") or {})
                   .get("configHash"), timeout=30, what="the agent reconciled")
        before = len(operator.logs().splitlines())
        forwarder.cut()
        outage = 3 * FOLD + 1
        time.sleep(outage)
        during = _records("\n".join(operator.logs().splitlines()[before:]))
        forwarder.restore()
        time.sleep(FOLD + 1)  # the counts of the last interval are written
        after = _records("\n".join(operator.logs().splitlines()[before:]))
    loud = [r for r in during if r.get("severity") in ("warn", "warning", "error")]
    assert loud, "the outage was not logged at all"
    # numbers aside, each distinct message is written once, then once per interval
    distinct = Counter(FoldRepeats.key(_record(r))[2] for r in loud)
    intervals = int(outage // FOLD) + 1
    assert max(distinct.values()) <= intervals + 1, distinct.most_common(3)
    counted = [r["message"] for r in after if "more time" in str(r.get("message"))]
    assert counted, [r["message"] for r in after][:20]
