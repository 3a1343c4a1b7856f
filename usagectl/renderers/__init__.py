"""Renderers: one module per output format (table, json, csv), all fed plain data."""
