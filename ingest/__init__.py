"""Ingest: Faust workers, converters from producers' formats, and the producer client."""
