"""Shipped artifacts of the LLM bot (data only; a package so wheels include them)."""
