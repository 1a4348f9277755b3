"""The hub's ontology: CIM (CGMES) classes, the gas-network extension and the couplings between them."""
