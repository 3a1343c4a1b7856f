"""Renderers: one module per output format (tables, JSON, CSV, HTML, GeoJSON), all fed plain data.

Every command hands its document to :func:`usagectl.renderers.output.emit`.
"""
