"""The statements of seed 002 that the book does not test, each with its anchor and the reason."""

from lnbook.sources import untested

UNTESTED = [
    untested(
        ("002", "Transformer的层归一化（Layer Normalization）", "稳定训练过程、加速收敛并提高模型性能"),
        ("002", "2. 加速收敛", "优化器（如Adam）更容易找到最优方向"),
        ("002", "2. 加速收敛", "训练速度显著提升"),
        ("002", "训练稳定性", "收敛速度：训练收敛更快"),
        ("002", "模型性能", "训练时间：减少训练时间"),
        reason=(
            "Faster convergence and shorter training of Transformers with LayerNorm than without: deciding it needs "
            "Transformers trained to a target quality, each variant tuned, over several seeds, far beyond a CPU toy, "
            "and the book reads no clock. Its measurable neighbours are tested in toys: the range of learning rates "
            "(T07), accuracy (T08) and the steps to a given accuracy with LayerNorm and residual connections (R20)."
        ),
    ),
    untested(
        ("002", "Pre-LN vs Post-LN", "但Post-LN在某些情况下性能更好"),
        reason=(
            "Which placement reaches the better final quality, and in which cases, is a comparison of fully trained "
            "Transformers (Liu et al. 2020 report Post-LN ahead where it trains at all); the source names no case, and "
            "a CPU toy cannot train either placement to the end. Stability, the first half of the sentence, is F15's "
            "and R22's."
        ),
    ),
    untested(
        ("002", "数值精度", "避免数值下溢"),
        reason=(
            "Advice that names no setting and no effect: no case to measure. The variance computation it belongs to "
            "is tested in T05 (algorithms in float32 against float64) and low precision in R13 and R18."
        ),
    ),
]
