"""The hub's GraphQL layer (shipped as ``hubql`` so that graphql-core is never shadowed)."""
