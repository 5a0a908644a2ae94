"""Uplink: garments with crops go to the cloud over gRPC, through a durable store-and-forward spool."""
