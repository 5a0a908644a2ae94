"""Seamline's cloud side: the VLM classifier service and what it runs on."""
