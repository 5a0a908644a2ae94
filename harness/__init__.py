"""Real parts started in-process for tests and benchmarks: a fresh PostgreSQL database, an S3 server, the
review console.

Shared by ``tests/`` (directly and through thin pytest fixtures) and ``bench/``, so a benchmark measures the
set-up the tests check without importing the test suite. Not shipped: the wheel holds ``seamline``, ``edge``
and ``cloud`` only.
"""
