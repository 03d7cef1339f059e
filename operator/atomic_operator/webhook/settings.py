"""How the webhook is served, from the operator's environment (the chart sets it)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from atomic_operator import GROUP

FailurePolicy = Literal["Fail", "Ignore"]
DEFAULT_CONFIGURATION = f"atomic-operator.{GROUP}"


@dataclass(frozen=True)
class WebhookSettings:
    """Off unless enabled: without it the same checks are reported in status only."""

    enabled: bool = False
    """Serve the webhook and register it in the ValidatingWebhookConfiguration."""

    listen: str = "0.0.0.0"
    """Address the HTTPS server binds."""

    port: int = 9443
    """Port the HTTPS server binds."""

    host: str = ""
    """URL mode: the API server calls https://<host>:<port>/ (the embedded control plane,
    or an operator running outside the cluster)."""

    service: str = ""
    """Service mode, `namespace/name`: the API server calls that Service on port 443 (in a
    cluster, where it cannot resolve cluster DNS for a URL)."""

    cert_dir: str = ""
    """Folder with tls.crt, tls.key and ca.crt (a cert-manager Secret); empty means a
    self-signed CA made at start-up."""

    failure_policy: FailurePolicy = "Fail"
    """What the API server does when the webhook cannot be reached: Fail refuses the
    write, Ignore admits it unchecked (status still reports the problems)."""

    configuration: str = DEFAULT_CONFIGURATION
    """Name of the ValidatingWebhookConfiguration the operator keeps current."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookSettings:
        env = os.environ if env is None else env

        def get(name: str, default: str) -> str:
            return env.get(f"ATOMIC_OPERATOR_WEBHOOK_{name}", default)

        enabled = get("ENABLED", "false").lower()
        if enabled not in ("true", "false"):
            raise ValueError(f"ATOMIC_OPERATOR_WEBHOOK_ENABLED must be true or false, "
                             f"not {enabled!r}")
        policy = get("FAILURE_POLICY", "Fail")
        if policy not in ("Fail", "Ignore"):
            raise ValueError(f"ATOMIC_OPERATOR_WEBHOOK_FAILURE_POLICY must be Fail or Ignore, "
                             f"not {policy!r}")
        port = get("PORT", "9443")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"ATOMIC_OPERATOR_WEBHOOK_PORT must be a port number, "
                             f"not {port!r}")
        service = get("SERVICE", "")
        if service and service.count("/") != 1:
            raise ValueError("ATOMIC_OPERATOR_WEBHOOK_SERVICE must be namespace/name")
        return cls(enabled=enabled == "true", listen=get("LISTEN", "0.0.0.0"), port=int(port),
                   host=get("HOST", ""), service=service, cert_dir=get("CERT_DIR", ""),
                   failure_policy="Ignore" if policy == "Ignore" else "Fail",
                   configuration=get("CONFIGURATION", DEFAULT_CONFIGURATION))
