"""Transport adapters.

Domain code hands payloads to these; only they know topic strings and client libraries.
"""
