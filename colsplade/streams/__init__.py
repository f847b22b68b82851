"""Document streams: a local Apache Kafka broker for development and tests.

The Kafka *source* of the ingest pipeline is :class:`colsplade.ingest.KafkaSource`
(``colsplade ingest kafka://HOST:PORT/TOPIC --group NAME``); this package runs the broker it can read
from on a laptop or in CI::

    from colsplade.streams import start_broker

    broker = start_broker()          # Kafka 4.x from Maven Central, KRaft, 127.0.0.1, free port
    print(broker.bootstrap)          # 127.0.0.1:PORT
    broker.stop()

The pytest plugin's ``kafka_bootstrap`` fixture and ``colsplade engine kafka up|down|status`` use it.
"""

from colsplade.streams._broker import (
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
