"""Analyses that return a report (they never write a changed model)."""
