"""Routing: turn per-region classifications into one garment verdict, automatic or for a person."""
