"""A migration between two schemas: statements from two inventories, ordered, proven."""
