"""Stubs generated from ``protos/seamline/inspection/v1`` at build time (see ``seamline.contract.codegen``)."""
