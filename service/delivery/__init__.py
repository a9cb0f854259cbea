"""Delivering the schema files where the team works: commits and pushes to a git repository."""
