"""Local Kafka and Neo4j for development and tests, run as JVM processes from jars fetched with Maven.

The Python API lives in :mod:`devstack.services.launcher` (``ensure_up``, ``stop``, ``status``,
``start_service``, ``stop_service``); ``hub services ...`` is the command line over it.
"""
