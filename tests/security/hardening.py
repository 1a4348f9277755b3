"""Helpers of the security tests: settings as a production API runs with, and free ports."""

from __future__ import annotations

import socket
import uuid
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def secure(settings: Any, **update: Any) -> Any:
    """``settings`` with the hub's own defaults for everything that decides exposure, the development
    issuer's keys as a JWKS file, metrics on a free port and a private audit topic."""
    from hub.auth import DevIssuer
    from hub.settings import Settings

    issuer = DevIssuer(settings)
    issuer.ensure()
    exposure = (
        "dev_mode",
        "anonymous_access",
        "api_metrics_host",
        "api_forwarded_allow_ips",
        "api_max_body_bytes",
        "api_max_header_bytes",
        "max_list_items",
        "max_operation_cost",
        "max_concurrent_operations",
        "api_max_running_operations",
        "api_admission_wait_s",
        "max_subscriptions_per_caller",
        "query_timeout_s",
    )
    values: dict[str, Any] = {name: Settings.model_fields[name].default for name in exposure}
    values.update(
        jwks_file=issuer.jwks_path,
        api_metrics_port=free_port(),
        audit_topic=f"test.audit.{uuid.uuid4().hex[:12]}",
    )
    values.update(update)
    return settings.model_copy(update=values)
