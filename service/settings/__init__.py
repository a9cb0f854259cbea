"""Typed settings and targets, validated at start: fields -> targets -> model."""
