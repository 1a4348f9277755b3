"""The hub: a knowledge-graph digital twin of a whole energy system."""
