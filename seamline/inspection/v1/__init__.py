"""Stubs generated from ``protos/seamline/inspection/v1`` at build time.

See ``seamline.contract.codegen``.
"""
