"""Thin Typer adapters over the library (never imported by library code)."""
