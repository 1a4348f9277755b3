"""The development stack: local Kafka and Neo4j (:mod:`devstack.services`) and the whole-system demo
(:mod:`devstack.demo`). Nothing in a deployed worker or API imports it; the ``hub`` command does, for
``hub services`` and ``hub demo``, and so does the compose stack's one-shot set-up of Kafka."""
