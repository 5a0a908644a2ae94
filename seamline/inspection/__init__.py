"""Generated contract stubs live in ``seamline.inspection.v1`` (built from ``protos/``)."""
