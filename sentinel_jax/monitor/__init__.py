"""Host monitors beside the detector: entropy of host metrics, file integrity.

Names are loaded on first use, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SystemEntropyMonitor": "sentinel_jax.monitor.entropy",
    "HostMetricSampler": "sentinel_jax.monitor.entropy",
    "window_entropies": "sentinel_jax.monitor.entropy",
    "IntegrityValidator": "sentinel_jax.monitor.integrity",
    "MFTIntegrityValidator": "sentinel_jax.monitor.integrity",
    "IntegrityReport": "sentinel_jax.monitor.integrity",
    "ScanOptions": "sentinel_jax.monitor.integrity_scan",
    "ForgeryRules": "sentinel_jax.monitor.forgery",
    "BaselineError": "sentinel_jax.monitor.integrity_store",
    "BaselineTamperedError": "sentinel_jax.monitor.integrity_store",
    "LiveMonitor": "sentinel_jax.monitor.live",
    "Alert": "sentinel_jax.monitor.live",
    "StraceSession": "sentinel_jax.monitor.strace_session",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
