"""Detector export: Hugging Face checkpoint -> ONNX (checked against PyTorch) -> TensorRT engine.

Each step is a pure function of paths and flags that logs its time and output size and fails loudly. Export
runs on a workstation or the Jetson itself; it needs the ``train`` extra (torch, transformers, onnx), and
TensorRT for the engine step.
"""
