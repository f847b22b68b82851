"""The main job of README: from nothing to a colsplade index on a local (or configured) engine.

It grows with the pipeline: today it starts the engine when none is configured, creates (or upgrades)
the index and reports what the engine supports for the two stages.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from colsplade.config import Settings, load_settings

logger = logging.getLogger(__name__)

__all__ = ["quickstart"]


def quickstart(
    settings: Settings | None = None, *, engine: str = "elasticsearch", index: str = "colsplade-quickstart"
) -> dict[str, Any]:
    """Start or reach the engine, create ``index`` with the colsplade fields, and report capabilities.

    Returns a plain dict: engine, URL, version, start-up seconds, index result and the two-stage plan
    this engine supports (SPLADE field type, where the MaxSim rerank runs).
    """
    from colsplade.engines import connect, create_index, node_status, resolve_settings

    settings = settings or load_settings()
    if not settings.urls:
        settings = settings.replace(engine=settings.engine or engine)
    started = time.monotonic()
    resolved = resolve_settings(settings, autostart=True)
    with connect(resolved) as client:
        caps = client.capabilities()
        result = create_index(client, index, existing_ok=True)
        local = node_status(client.engine) if not settings.urls else None
        return {
            "engine": client.engine,
            "version": caps.version,
            "url": client.url,
            "local_node": local is not None,
            "seconds_to_ready": round(time.monotonic() - started, 1),
            "index": index,
            "index_created": result["created"],
            "fields_added": result["added_fields"],
            "splade_field_type": result["spec"].splade_type,
            "rerank": "in-engine (painless)" if caps.in_engine_rerank else "client-side MaxSim (no painless)",
            "nested_knn": caps.knn,
        }
