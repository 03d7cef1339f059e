"""ATOMIC_AGENT_FS_ROOT: where the process node presents a pod's mounted files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from atomic_runtime.config import load_config
from atomic_runtime.context import build_providers


def test_config_and_context_files_are_read_below_the_root(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"name": "x", "model": {"name": "m"},
              "inputSchema": {"type": "object"}, "outputSchema": {"type": "object"},
              "contextProviders": [{"name": "rules", "title": "Rules",
                                    "file": "/etc/atomic-agent/context/rules"}]}
    (tmp_path / "etc/atomic-agent/config").mkdir(parents=True)
    (tmp_path / "etc/atomic-agent/context").mkdir(parents=True)
    (tmp_path / "etc/atomic-agent/config/agent.json").write_text(json.dumps(config))
    (tmp_path / "etc/atomic-agent/context/rules").write_text("Answer in haiku.")
    monkeypatch.setenv("ATOMIC_AGENT_FS_ROOT", str(tmp_path))
    loaded = load_config("/etc/atomic-agent/config/agent.json")
    assert loaded.context_providers[0].file == str(tmp_path / "etc/atomic-agent/context/rules")
    assert build_providers(loaded.context_providers)["rules"].get_info() == "Answer in haiku."
