"""The one table of device figures the book quotes: every chapter and tool reads them from here.

Each figure is quoted from its maker's datasheet, not measured, and names its unit and its precision:
a GPU has several peak arithmetic rates (the tensor cores' for matrix products in bfloat16, the CUDA
cores' for the elementwise work and reductions a norm does in float32), and a sentence that quotes "the
H100's peak" without saying which is off by a factor of fifteen. Dense rates only: the datasheets' larger
tensor-core figures assume 2:4 structured sparsity, which no op in this book has.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Device:
    """One GPU's quoted figures. ``peak``: FLOP/s by precision and unit (``"bf16 tensor core"``,
    ``"fp32 CUDA core"``); ``bandwidth``: bytes/s of its main memory (HBM); ``l2_bytes``: its L2 cache;
    ``sms``: its streaming multiprocessors; ``capability``: CUDA compute capability × 10."""

    name: str
    bandwidth: float
    peak: dict
    l2_bytes: int
    sms: int
    capability: int
    source: str

    def balance(self, unit: str) -> float:
        """Machine balance: the FLOPs ``unit`` can do in the time one byte arrives from memory. An op
        that does fewer FLOPs per byte than this is memory-bound on the device."""
        return self.peak[unit] / self.bandwidth


MIB = 2**20

H100 = Device(
    name="H100 SXM5", bandwidth=3.35e12,
    peak={"bf16 tensor core": 989e12, "fp32 CUDA core": 67e12},
    l2_bytes=50 * MIB, sms=132, capability=90,
    source="NVIDIA H100 Tensor Core GPU datasheet (SXM5 column): 3.35 TB/s HBM3; 989 TFLOP/s dense BF16 "
           "tensor core (1,979 with sparsity); 67 TFLOP/s FP32; 50 MB L2; 132 SMs (Hopper architecture whitepaper)",
)
A100 = Device(
    name="A100 SXM4 80GB", bandwidth=2.039e12,
    peak={"bf16 tensor core": 312e12, "fp32 CUDA core": 19.5e12},
    l2_bytes=40 * MIB, sms=108, capability=80,
    source="NVIDIA A100 Tensor Core GPU datasheet (80GB SXM): 2,039 GB/s HBM2e; 312 TFLOP/s dense BF16 tensor "
           "core; 19.5 TFLOP/s FP32; 40 MB L2; 108 SMs (Ampere architecture whitepaper)",
)
T4 = Device(
    name="T4", bandwidth=320e9,
    peak={"fp16 tensor core": 65e12, "fp32 CUDA core": 8.1e12},
    l2_bytes=4 * MIB, sms=40, capability=75,
    source="NVIDIA T4 datasheet: 320 GB/s GDDR6; 65 TFLOP/s FP16 tensor core (mixed precision); 8.1 TFLOP/s "
           "FP32; 4 MB L2; 40 SMs (Turing architecture whitepaper)",
)

DEVICES = {d.name: d for d in (H100, A100, T4)}
BY_CAPABILITY = {d.capability: d for d in DEVICES.values()}


def table() -> list[dict]:
    """The figures as rows for a page: name, memory bandwidth, each peak rate with its precision, L2, SMs."""
    return [{"device": d.name, "memory bandwidth (TB/s)": d.bandwidth / 1e12,
             **{f"{unit} (TFLOP/s)": rate / 1e12 for unit, rate in d.peak.items()},
             "L2 (MiB)": d.l2_bytes / MIB, "SMs": d.sms, "source": d.source} for d in DEVICES.values()]
