"""Publishing: the verdict built from a routing decision (verdicts.py), and the one ``VerdictPublisher``
(publisher.py) that sends verdicts and review events over MQTT once they are recorded."""
