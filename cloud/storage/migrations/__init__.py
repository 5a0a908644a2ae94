"""Alembic migrations of the audit store (SQLite or PostgreSQL).

``cloud.storage.schema.upgrade`` runs them.
"""
