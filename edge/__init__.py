"""The edge agent: runs beside the conveyor (a Jetson), imports no torch, vLLM, FastAPI or SQLAlchemy.

Flow: sources (cameras, video, the synthetic line) -> detector runtimes (TensorRT, ONNX Runtime, PyTorch)
-> crops -> uplink (gRPC with a durable spool) -> line control (MQTT verdicts in, one line command out).
"""
