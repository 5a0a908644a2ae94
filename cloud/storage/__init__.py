"""Durable storage: crops (files or object storage) and the audit database (SQLite or PostgreSQL)."""
