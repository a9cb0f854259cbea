"""The throwaway PostgreSQL cluster and the built-in demo."""
