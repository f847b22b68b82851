"""Document streams: kept for one release; the local Kafka broker moved to :mod:`colsplade.local`.

The Kafka *source* of the ingest pipeline is :class:`colsplade.ingest.KafkaSource`
(``colsplade ingest kafka://HOST:PORT/TOPIC --group NAME``); the broker it can read from on a laptop or in
CI is :func:`colsplade.local.start_broker`::

    from colsplade.local import start_broker

    broker = start_broker()          # Kafka 4.x from Maven Central, KRaft, 127.0.0.1, free port
    print(broker.bootstrap)          # 127.0.0.1:PORT
    broker.stop()

The names below still resolve from here (lazily, on first access) for one release: import them from
``colsplade.local``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers; resolved by __getattr__ at run time
    from colsplade.local import (
        DEFAULT_KAFKA_VERSION,
        KafkaBroker,
        broker_status,
        install_kafka,
        start_broker,
        stop_broker,
    )

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "KafkaBroker",
    "broker_status",
    "install_kafka",
    "start_broker",
    "stop_broker",
]


def __getattr__(name: str) -> Any:
    """The broker's names, kept here for one release after the move to :mod:`colsplade.local` (PEP 562)."""
    if name in __all__:
        return getattr(importlib.import_module("colsplade.local"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
