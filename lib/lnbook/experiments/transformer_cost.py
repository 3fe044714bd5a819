"""Chapter 3 (seed 002), book/03_transformer: what LayerNorm costs, claim T06.

Section of the chapter: "What it costs". FLOPs per token by term (:func:`flops_per_token`), bytes
(:func:`bytes_per_token`), and a dispatcher count of a full-size block's ATen ops on meta tensors, which
computes nothing (:func:`block_ops`), fed to a roofline model of an H100. The rest of the chapter is
:mod:`lnbook.experiments.transformer` and :mod:`lnbook.experiments.transformer_training`.
"""

from __future__ import annotations

import torch

from lnbook.claims import claim
from lnbook.experiments.common import FLOPS_PER_ELEMENT, H100, flops_per_token, roofline_seconds
from lnbook.models import TransformerBlock

CHAPTER = "book/03_transformer"  # the chapter that shows this module's claims


# ----------------------------------------------------------------------------- T06: cost





def bytes_per_token(d: int, element_size: int = 2) -> dict[str, int]:
    """Activation bytes per token of one Transformer block's forward, by the terms of :func:`flops_per_token`
    and the elementwise rest, each tensor read or written once (weights are counted per batch).

    Matmuls: QKV reads d and writes 3d, the output projection d and d, the MLP d and 4d, then 4d and
    d: 16d. Attention (a fused kernel) reads q, k, v and writes its output: 4d. Each LayerNorm reads
    its input and writes its output: 2d, twice. The rest: two residual additions (read 2d, write d),
    GELU (read and write 4d), and the copy of attention's output back to (B, L, d) (read and write d): 16d.
    """
    return {"matmul": 16 * d * element_size, "attention": 4 * d * element_size,
            "layernorm": 2 * 2 * d * element_size, "elementwise": 16 * d * element_size}


PARTS = ("matmul", "attention", "layernorm", "elementwise")


def part_of(op: str) -> str:
    """Which term of the block's cost an ATen op belongs to."""
    if op in ("addmm", "mm", "bmm"):
        return "matmul"
    return {"scaled_dot_product_attention": "attention", "native_layer_norm": "layernorm"}.get(op, "elementwise")


def _tensors(*trees) -> list[torch.Tensor]:
    from torch.utils._pytree import tree_flatten

    return [t for t in tree_flatten(trees)[0] if isinstance(t, torch.Tensor)]


def _nbytes(*trees) -> int:
    """Bytes of every tensor in ``trees`` (nested args, kwargs, outputs)."""
    return sum(t.numel() * t.element_size() for t in _tensors(*trees))


def _op_flops(func, args, kwargs, out) -> int:
    """PyTorch's FLOP formula for a matrix product (torch.utils.flop_counter), ``FLOPS_PER_ELEMENT`` per
    element for layer_norm, one per output element for any other op."""
    from torch.utils import flop_counter

    if func.overloadpacket in flop_counter.flop_registry:
        return int(flop_counter.flop_registry[func.overloadpacket](*args, **kwargs, out_val=out))
    first = _tensors(out)[0].numel()
    return first * FLOPS_PER_ELEMENT["layer_norm"] if func.overloadpacket.__name__ == "native_layer_norm" else first


def _count_flops(fn) -> list[dict]:
    """Every ATen op that ``fn()`` dispatches, in order, as {"op", "flops", "bytes"} (:func:`_op_flops`; bytes
    are every tensor the op reads and writes, none for views). Attention counts as one fused kernel: its
    inputs and output, not the L × L scores its decomposition on this machine writes. Run it on meta tensors
    to count any shape for free."""
    from torch.overrides import TorchFunctionMode
    from torch.utils import flop_counter
    from torch.utils._python_dispatch import TorchDispatchMode

    ops, inside_attention = [], [False]

    class Dispatched(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__
            view = any(r.alias_info is not None for r in func._schema.returns) or name == "_unsafe_view"
            if not (inside_attention[0] or view):
                ops.append({"op": name, "flops": _op_flops(func, args, kwargs or {}, out),
                            "bytes": _nbytes(args, kwargs, out)})
            return out

    class FusedAttention(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is not torch.nn.functional.scaled_dot_product_attention:
                return func(*args, **(kwargs or {}))
            inside_attention[0] = True
            try:
                out = func(*args, **(kwargs or {}))
            finally:
                inside_attention[0] = False
            q, k, v = args[:3]
            ops.append({"op": "scaled_dot_product_attention", "bytes": _nbytes(q, k, v, out),
                        "flops": int(flop_counter.sdpa_flop_count(q.shape, k.shape, v.shape))})
            return out

    with torch.no_grad(), FusedAttention(), Dispatched():
        fn()
    return ops


T06_SHAPE = {"d": 768, "seq": 1024, "batch": 8}  # GPT-2 small's width and context, a modest batch
TENSOR_CORE_EFFICIENCY = 0.7  # matrix products and attention at 70 % of peak: the model's sensitivity


def block_ops(d: int, seq: int, batch: int) -> list[dict]:
    """The ATen ops of one bfloat16 Pre-LN block's forward at this shape, counted on meta tensors."""
    with torch.device("meta"):
        block = TransformerBlock(d, heads=d // 64).to(torch.bfloat16)
        x = torch.empty(batch, seq, d, dtype=torch.bfloat16)
    return _count_flops(lambda: block(x))


def op_seconds(op: dict, tensor_core: float = 1.0) -> float:
    """One op's least time on an H100 (:func:`roofline_seconds`): matrix products and attention on the
    tensor cores at ``tensor_core`` times their peak, everything else on the CUDA cores."""
    if part_of(op["op"]) in ("matmul", "attention"):
        return roofline_seconds(op["flops"] / tensor_core, op["bytes"], "bf16 tensor core")
    return roofline_seconds(op["flops"], op["bytes"], "fp32 CUDA core")


def layernorm_time_share(ops: list[dict], tensor_core: float = 1.0) -> float:
    """The LayerNorms' share of the block's least time, every op at its roofline."""
    times = [(part_of(op["op"]), op_seconds(op, tensor_core)) for op in ops]
    return sum(t for part, t in times if part == "layernorm") / sum(t for _, t in times)


def by_part(ops: list[dict], key: str) -> dict[str, int]:
    """The ops' ``key`` ("flops" or "bytes") summed by :func:`part_of`."""
    return {part: sum(op[key] for op in ops if part_of(op["op"]) == part) for part in PARTS}


def _decide_t06(n) -> dict[str, bool]:
    same_bytes = lambda part: abs(n[f"{part}_bytes_counted"] / n[f"{part}_bytes_model"] - 1) < 0.01
    return {
        # The hand count and PyTorch's flop formulas on the block's own ops: integers, equal or not.
        "matmul_flops_counted": n["matmul_flops_counted"] == n["matmul_flops_model"],
        "attention_flops_counted": n["attention_flops_counted"] == n["attention_flops_model"],
        # The hand count of bytes leaves out biases, γ and β (read once a batch) and LayerNorm's per-row mean
        # and rstd (8 bytes on a row of 1.5 kB): under 1 % of each part.
        "matmul_bytes_counted": same_bytes("matmul"), "layernorm_bytes_counted": same_bytes("layernorm"),
        "elementwise_bytes_counted": same_bytes("elementwise"),
        "flop_share_small": n["flop_share_768"] < 1e-3,
        # Memory-bound: LayerNorm's least time is set by its bytes, more than ten times its FLOPs' time.
        "layernorm_memory_bound": n["layernorm_bytes_over_flops_time"] > 10,
        # Time does not follow FLOPs: the share of time is over ten times the share of FLOPs, also with
        # the tensor cores below peak.
        "time_share_far_above_flop_share": min(n["time_share"], n["time_share_tc70"]) > 10 * n["flop_share_768"],
    }


@claim(
    "T06",
    anchors=(
        ("002", "计算复杂度", "与输入大小线性相关"),
        ("002", "计算复杂度", "层归一化的计算开销很小"),
    ),
    claim=(
        "LayerNorm's mean, variance, normalization and affine step each cost O(B·L·d), so the whole is linear in "
        "the input's size, and its computational cost is small next to the Transformer's matrix products (which "
        "the source writes as O(L²)). 'Cost' is read twice: as arithmetic, and as time on a GPU."
    ),
    statement=(
        "Holds under conditions: for arithmetic, not for time. Counting FLOPs, a block's two LayerNorms cost "
        "2·7·d per token against 24·d² + 4·L·d for its matrix products and attention (counts PyTorch's "
        "dispatcher confirms), a share of {flop_share_768:.2%} at d = 768, L = 1024. Time is another matter, "
        "because LayerNorm moves memory rather than doing arithmetic. In a roofline model of an H100 fed with "
        "the bytes every ATen op of a bfloat16 block's forward reads and writes (batch 8), the two LayerNorms "
        "take about {time_share:.0%} of the block's time, {time_over_flops:.0f}× their FLOP share, and about "
        "{time_share_tc70:.0%} with the matrix products at 70% of peak: an estimate, not a bound. The source's "
        "comparison with 'O(L²)' mixes terms: the matrix products grow as L·d² and attention as L²·d."
    ),
    verdict="holds under conditions",
    answer_zh=(
        "有条件成立：就算术量而言成立，就时间而言不成立：d = 768、L = 1024 时一个块中两个层归一化只占 FLOPs 的 "
        "{flop_share_768:.2%}，但在 H100 的屋顶线模型中它们搬运内存，约占块的时间 {time_share:.0%}（FLOP 占比的 "
        "{time_over_flops:.0f} 倍，矩阵乘法按峰值 70% 计时约 {time_share_tc70:.0%}），这是估计而非界。"
    ),
    kind="model",
    assumptions=(
        f"{H100.name} datasheet figures ({H100.bandwidth / 1e12:.3g} TB/s of memory bandwidth; "
        f"{H100.peak['bf16 tensor core'] / 1e12:.0f} TFLOP/s of dense bfloat16 on the tensor cores for matrix "
        f"products and attention; {H100.peak['fp32 CUDA core'] / 1e12:.0f} TFLOP/s of float32 on the CUDA cores "
        "for the rest), every ATen op one kernel at its roofline (FLOPs over peak or bytes over bandwidth, "
        "whichever is larger), attention one fused kernel that reads q, k, v and writes its output, no other "
        f"fusion; bfloat16, d = {T06_SHAPE['d']}, L = {T06_SHAPE['seq']}, batch {T06_SHAPE['batch']}"
    ),
    decide=_decide_t06,
    # A world where LayerNorm's time followed its FLOPs (the source's O(B·L·d) reasoning): compute-bound, its
    # share of time equal to its share of FLOPs.
    null=lambda n: {**n, "time_share": n["flop_share_768"], "time_share_tc70": n["flop_share_768"],
                    "time_over_flops": 1.0, "layernorm_bytes_over_flops_time": 1.0},
)
def t06() -> dict:
    """The evidence for T06. See book/03_transformer.ipynb, section "What it costs"."""
    d, seq, batch = T06_SHAPE["d"], T06_SHAPE["seq"], T06_SHAPE["batch"]
    f = flops_per_token(d, seq)
    ops = block_ops(d, seq, batch)
    flops, nbytes = by_part(ops, "flops"), by_part(ops, "bytes")
    tokens = batch * seq
    weights = 12 * d * d * 2  # QKV 3d², projection d², MLP 8d²: read once per batch, bfloat16
    model_bytes = {k: tokens * v for k, v in bytes_per_token(d).items()}
    ln_ops = [op for op in ops if part_of(op["op"]) == "layernorm"]
    nums = {"flop_share_768": f["layernorm"] / sum(f.values()), "time_share": layernorm_time_share(ops),
            "time_share_tc70": layernorm_time_share(ops, TENSOR_CORE_EFFICIENCY),
            "layernorm_bytes_over_flops_time": sum(op["bytes"] for op in ln_ops) / H100.bandwidth
            / (sum(op["flops"] for op in ln_ops) / H100.peak["fp32 CUDA core"]),
            "matmul_flops_counted": flops["matmul"], "matmul_flops_model": tokens * f["matmul"],
            "attention_flops_counted": flops["attention"], "attention_flops_model": tokens * f["attention"],
            "matmul_bytes_counted": nbytes["matmul"], "matmul_bytes_model": model_bytes["matmul"] + weights,
            "layernorm_bytes_counted": nbytes["layernorm"], "layernorm_bytes_model": model_bytes["layernorm"],
            "elementwise_bytes_counted": nbytes["elementwise"], "elementwise_bytes_model": model_bytes["elementwise"]}
    nums["time_over_flops"] = nums["time_share"] / nums["flop_share_768"]
    return nums
