"""The operator names itself without the password database (the image's uid has no entry).

The end-to-end suite runs the chart's operator pod without POD_ID on the real node; this
pins the rule itself, fast: kopf's own identity lookup must not reach getpass.
"""

from __future__ import annotations

import getpass

import pytest
from kopf._core.engines.peering import detect_own_id  # the lookup kopf.run makes

from atomic_operator.cli.operator_run import name_this_operator


def _no_passwd_entry() -> str:
    raise OSError("No username set in the environment")


def test_without_pod_id_the_operator_names_itself_and_kopf_never_asks_getpass(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_ID", "restored-after-the-test")  # so teardown undoes our write
    monkeypatch.delenv("POD_ID")
    monkeypatch.setattr(getpass, "getuser", _no_passwd_entry)
    with pytest.raises(OSError, match="No username"):
        detect_own_id(manual=False)  # what crashed the image at start
    name_this_operator()
    assert detect_own_id(manual=False)  # no getpass: the identity is ours


def test_a_pod_id_from_the_downward_api_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_ID", "atomic-operator-7d9c-x2x4")
    name_this_operator()
    assert detect_own_id(manual=False) == "atomic-operator-7d9c-x2x4"
