"""Publishing: verdicts (and review events) go out over MQTT, after they are recorded in the audit store."""
