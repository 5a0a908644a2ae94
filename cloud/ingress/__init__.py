"""Ingress: the gRPC server edge agents stream garments to. Validate, store durably, ack, hand on."""
