"""RT-DETR-L-sized detector on a CUDA GPU with PyTorch: fp32 / fp16 / bf16, eager vs CUDA graphs
(torch.compile mode "reduce-overhead"), batch 1, 4 and 8. One prepared script for a lent GPU machine;
prints a table.

Run: python bench/detector_gpu.py [--iterations 50]

Needs torch with CUDA and transformers. Builds the model from config (random weights: speed does not depend on
the values). The TensorRT and ONNX Runtime GPU paths are for the Jetson (TensorRT from JetPack) and are tested
there under the ``trt``/``gpu`` markers.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import RTDetrForObjectDetection

from seamline.modelzoo.tiny_rtdetr import rtdetr_config


def bench(model, batch: int, dtype, iterations: int, size: int = 640) -> float:  # type: ignore[no-untyped-def]
    x = torch.rand(batch, 3, size, size, device="cuda", dtype=dtype)
    with torch.inference_mode():
        for _ in range(5):
            model(pixel_values=x)
        torch.cuda.synchronize()
        times = []
        for _ in range(iterations):
            start = time.perf_counter()
            model(pixel_values=x)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=50)
    args = parser.parse_args()
    assert torch.cuda.is_available(), "needs a CUDA GPU"
    device = torch.cuda.get_device_name(0)
    print(f"device: {device}; torch {torch.__version__}; CUDA {torch.version.cuda}")
    rows = []
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        torch.manual_seed(0)
        model = RTDetrForObjectDetection(rtdetr_config("l")).eval().to("cuda", dtype)
        compiled = torch.compile(model, mode="reduce-overhead", dynamic=False)
        for batch in (1, 4, 8):
            eager = bench(model, batch, dtype, args.iterations)
            graphs = bench(compiled, batch, dtype, args.iterations)
            rows.append((str(dtype).split(".")[-1], batch, eager, graphs))
    print(
        f"{'dtype':>9} {'batch':>5} {'eager ms':>9} {'eager ms/img':>12} "
        f"{'graphs ms':>10} {'graphs ms/img':>13} {'img/s':>8}"
    )
    for dtype, batch, eager, graphs in rows:
        print(
            f"{dtype:>9} {batch:>5} {eager:9.2f} {eager / batch:12.2f} "
            f"{graphs:10.2f} {graphs / batch:13.2f} {1000 * batch / graphs:8.0f}"
        )
    print("seed: RT-DETR-L 40 ms/img on an RTX 4060 Ti; paper: 8.5 ms (114 FPS) on a T4 with TensorRT fp16")


if __name__ == "__main__":
    main()
