"""The hub's ontology: CIM (CGMES) classes, the gas-network extension and the couplings between them."""

from ontology.loader import OntologyError, load_ontology
from ontology.model import Association, Attribute, OntClass, Ontology

__all__ = ["Association", "Attribute", "OntClass", "Ontology", "OntologyError", "load_ontology"]
