"""The book's glossary: every term a reader needs, in English and Chinese, with a one-sentence definition
and the chapter where a reader first meets it (and where the chapter defines it, at its first use).

One list serves both pages: book/glossary.ipynb shows every column, the Chinese page (book/zh.ipynb) the
English and Chinese terms. The Chinese term is the standard one, in the words the seeds use where they use
one; a term with no common Chinese rendering keeps its English name with a short Chinese gloss. Tables are
rendered by :mod:`lnbook.readers`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# The chapters, by file name (book/<name>.ipynb), and their numbers; tests/test_glossary.py compares them
# with book/.
CHAPTERS = {"01_foundations": 1, "02_principles": 2, "03_transformer": 3, "04_why": 4, "05_residual": 5,
            "06_kernels": 6}
CJK = re.compile(r"[\u4e00-\u9fff]")
# A sentence ends at ". ", "! " or "? " followed by a capital; a definition has none inside.
SENTENCE_BREAK = re.compile(r"[.!?]\s+[A-Z]")


@dataclass(frozen=True)
class Term:
    """One entry: the English term, the Chinese term, one sentence defining it, the chapter that first uses it."""

    en: str
    zh: str
    definition: str
    chapter: str  # a key of CHAPTERS

    def __post_init__(self):
        for name in ("en", "zh", "definition"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip() or value != value.strip():
                raise ValueError(f"term {self.en!r}: {name}: expected a non-empty string without outer "
                                 f"spaces, got {value!r}")
        if not CJK.search(self.zh):
            raise ValueError(f"term {self.en!r}: zh: expected Chinese characters, got {self.zh!r}")
        if not self.definition.endswith(".") or SENTENCE_BREAK.search(self.definition):
            raise ValueError(f"term {self.en!r}: definition: expected one sentence ending with a period, "
                             f"got {self.definition!r}")
        if self.chapter not in CHAPTERS:
            raise ValueError(f"term {self.en!r}: chapter: expected one of {sorted(CHAPTERS)}, got {self.chapter!r}")


def sort_key(term: Term) -> str:
    """Alphabetical by the English term, ignoring case (R² files as R2, under R)."""
    return unicodedata.normalize("NFKD", term.en).casefold()


_TERMS = (
    # The source texts' own vocabulary (the Chinese page's list before issue 22).
    Term("Layer Normalization (LayerNorm, LN)", "层归一化",
         "Normalization of each sample over its own features: subtract the sample's mean, divide by "
         "√(variance + ε), then scale by γ and shift by β, feature by feature.", "01_foundations"),
    Term("Batch Normalization (BatchNorm, BN)", "批归一化",
         "Normalization of each feature over the samples of a batch (and, for images, over positions), with "
         "running averages of those statistics used at inference.", "01_foundations"),
    Term("RMSNorm (root-mean-square normalization)", "均方根归一化",
         "LayerNorm without the mean: each sample is divided by the root mean square of its features, "
         "√(mean(x²) + ε), and scaled by γ.", "01_foundations"),
    Term("Instance Normalization", "实例归一化",
         "Normalization of each channel of each sample over its positions, one image's feature map at a time.",
         "02_principles"),
    Term("Group Normalization", "组归一化",
         "Normalization of each sample over groups of consecutive channels, between LayerNorm (one group) and "
         "InstanceNorm (one channel per group).", "02_principles"),
    Term("normalization", "归一化",
         "Shifting and rescaling a group of values to mean 0 and variance 1 (or root mean square 1), before a "
         "learned scale and shift; the methods differ in which values form the group.", "01_foundations"),
    Term("mean", "均值", "The average of a set of values: their sum divided by their number.", "01_foundations"),
    Term("variance", "方差",
         "The mean squared deviation from the mean (LayerNorm's is the biased one, dividing by n and not by "
         "n − 1).", "01_foundations"),
    Term("standard deviation", "标准差",
         "The square root of the variance, the typical size of a deviation from the mean.", "01_foundations"),
    Term("affine transformation", "仿射变换",
         "A linear map followed by a shift, here LayerNorm's per-feature y = γ·x̂ + β after normalizing.",
         "01_foundations"),
    Term("scale γ (gain), shift β (bias)", "缩放参数 γ，平移参数 β",
         "LayerNorm's two learned vectors, one entry per feature, that multiply and then offset the normalized "
         "values; they start at ones and zeros.", "01_foundations"),
    Term("learnable parameter", "可学习参数",
         "A number of the model that training adjusts, such as a weight or LayerNorm's γ and β.",
         "01_foundations"),
    Term("internal covariate shift (ICS)", "内部协变量偏移",
         "The drift of a layer's input distribution while the layers before it train, which BatchNorm was "
         "introduced to reduce.", "01_foundations"),
    Term("residual connection (skip connection)", "残差连接",
         "A path that adds a block's input to its output, y = x + F(x), so that the block learns a change to "
         "its input.", "01_foundations"),
    Term("Pre-LN / Post-LN", "前置层归一化 / 后置层归一化（Pre-LN / Post-LN）",
         "Where the norm sits in a residual block: Post-LN (Post-Norm) normalizes after the addition, "
         "LN(x + F(x)), and Pre-LN (Pre-Norm) normalizes only the branch's input, x + F(LN(x)).",
         "01_foundations"),
    Term("warm-up (of the learning rate)", "学习率预热",
         "Raising the learning rate from near zero to its set value over the first steps of training.",
         "01_foundations"),
    Term("learning rate", "学习率",
         "The factor η that multiplies the gradient in each step of gradient descent, and so sets the step's "
         "size.", "01_foundations"),
    Term("gradient", "梯度",
         "The vector of a loss's partial derivatives with respect to the parameters (or the inputs), pointing "
         "where the loss rises fastest.", "01_foundations"),
    Term("vanishing / exploding gradients", "梯度消失 / 梯度爆炸",
         "Gradients that shrink towards zero or grow without bound as they pass back through many layers, "
         "stalling or destabilizing training.", "01_foundations"),
    Term("Jacobian", "雅可比矩阵",
         "The matrix of the partial derivatives of every output of a function with respect to every input.",
         "01_foundations"),
    Term("scale invariance", "尺度不变性",
         "The property that scaling the input (or the weights feeding a norm) by a positive factor leaves the "
         "output unchanged.", "01_foundations"),
    Term("homogeneous of degree zero", "零阶齐次",
         "Said of a function unchanged when its argument is multiplied by any positive number, f(λx) = f(x), "
         "as LayerNorm is with ε = 0.", "01_foundations"),
    Term("Lipschitz constant", "Lipschitz 常数",
         "The smallest L such that a function's output never changes by more than L times the change of its "
         "input; for the loss's gradient it measures how fast the gradient can change along a step.", "01_foundations"),
    Term("loss landscape", "损失曲面（优化景观）",
         "The loss seen as a surface over the space of the weights, whose slopes and curvature govern how "
         "gradient descent moves.", "01_foundations"),
    Term("convergence", "收敛",
         "A training run's loss settling towards a limit, ideally a minimum, as the steps go on.",
         "01_foundations"),
    Term("batch size", "批量大小",
         "The number of samples processed together in one step, over which BatchNorm takes its statistics.",
         "01_foundations"),
    Term("padding", "填充",
         "Filler positions (often zeros) appended to shorter sequences so that sequences of different lengths "
         "fit in one batch.", "01_foundations"),
    Term("sequence length", "序列长度", "The number of tokens, or positions, in a sequence.", "01_foundations"),
    Term("self-attention", "自注意力",
         "The Transformer sublayer in which each position's output is a weighted average of the positions' "
         "values, with weights from a softmax over query–key dot products.", "03_transformer"),
    Term("feed-forward network", "前馈网络",
         "The two-layer MLP that every Transformer layer applies to each position separately (here widening "
         "d to 4d and back).", "03_transformer"),
    Term("encoder / decoder", "编码器 / 解码器",
         "The two halves of the original Transformer: the encoder reads the input sequence, and the decoder "
         "writes the output one token at a time, attending to the encoder and to its own earlier tokens.",
         "03_transformer"),
    Term("numerical stability", "数值稳定性",
         "The property of a computation whose rounding errors stay small against its result, as the two-pass "
         "variance's do and those of mean(x²) − mean(x)² do not.", "03_transformer"),
    Term("mixed precision (FP16, BF16)", "混合精度",
         "Training with most operations in a 16-bit format (float16 or bfloat16) for speed and memory, while "
         "sensitive parts such as the weights and a norm's statistics stay in float32.", "05_residual"),
    Term("kernel (GPU)", "算子（GPU 内核）",
         "A function that runs on the GPU, launched as many programs that work on the data in parallel.",
         "01_foundations"),
    Term("operator fusion", "算子融合",
         "Doing several operations in one kernel, so that intermediate results stay on the chip instead of "
         "being written to memory and read back.", "01_foundations"),
    Term("memory bandwidth", "显存带宽",
         "The rate, in bytes per second, at which a device moves data between its main memory and its "
         "processors.", "01_foundations"),
    Term("seed (random)", "随机种子",
         "The number that starts a pseudo-random generator, so that a run with the same seed draws the same "
         "numbers.", "01_foundations"),
    Term("standard error", "标准误",
         "The standard deviation of an estimate; for a mean, the spread of the values divided by the square "
         "root of their number.", "01_foundations"),
    Term("verdict: holds / holds under conditions / does not hold / not established",
         "判定：成立 / 有条件成立 / 不成立 / 未确定",
         "The book's judgement of a claim: it holds, holds under the conditions the card states, does not hold "
         "(the card gives the correction), or is not established (deciding it needs more than a small "
         "experiment).", "01_foundations"),

    # Chapter 1: performance, precision, optimization.
    Term("FLOP (floating-point operation)", "浮点运算（FLOP）",
         "One floating-point add, multiply or similar operation; FLOP/s counts them per second, the unit of a "
         "device's peak arithmetic rate.", "01_foundations"),
    Term("roofline model", "屋顶线模型（roofline）",
         "A model of an operation's least time on a device: the larger of its FLOPs divided by the peak "
         "arithmetic rate of the units that run it and its bytes divided by the memory bandwidth.",
         "01_foundations"),
    Term("machine balance", "机器平衡点（算力带宽比）",
         "A device's peak arithmetic rate in FLOP/s (for a named precision and unit) divided by its memory "
         "bandwidth in bytes/s: the FLOPs it can do in the time one byte arrives from memory.",
         "01_foundations"),
    Term("memory-bound", "访存受限（带宽受限）",
         "Said of an operation whose FLOPs per byte moved are below the machine balance, so that moving its "
         "bytes, not its arithmetic, sets its time.", "01_foundations"),
    Term("tensor core", "张量核心（tensor core）",
         "The GPU units built for matrix products in low-precision formats such as bfloat16, with a peak rate "
         "many times that of the CUDA cores.", "01_foundations"),
    Term("CUDA core", "CUDA 核心",
         "The GPU's general-purpose arithmetic units, which do elementwise work and reductions such as a "
         "norm's statistics, in float32 among other formats.", "01_foundations"),
    Term("dispatcher (PyTorch)", "分发器（PyTorch dispatcher）",
         "The layer of PyTorch that routes every operation to its implementation, where each call can be seen "
         "and counted.", "01_foundations"),
    Term("float32", "单精度浮点数（float32，FP32）",
         "The 32-bit IEEE floating-point format, with 24 significant bits (about 7 decimal digits) and a "
         "largest value of about 3.4 × 10³⁸.", "01_foundations"),
    Term("float64", "双精度浮点数（float64，FP64）",
         "The 64-bit IEEE floating-point format, with 53 significant bits (about 16 decimal digits), the "
         "book's reference for measuring the error of lower precisions.", "01_foundations"),
    Term("bfloat16", "bfloat16（BF16，脑浮点数）",
         "A 16-bit floating-point format with float32's 8 exponent bits, hence its range, but only 8 "
         "significant bits (2 to 3 decimal digits).", "01_foundations"),
    Term("epsilon (ε)", "ε（数值稳定常数）",
         "The small constant added to the variance under the square root, √(σ² + ε), so that a constant input "
         "gives 0 instead of 0/0; it also shrinks the output of rows whose variance is not large against it.",
         "01_foundations"),
    Term("saturation (tanh, sigmoid)", "饱和（tanh、sigmoid）",
         "The state of a unit whose input is so large that its output flattens against its limits and its "
         "derivative approaches 0.", "01_foundations"),
    Term("skewness", "偏度",
         "The mean cubed deviation in units of the standard deviation, zero for any symmetric distribution "
         "such as the normal one.", "01_foundations"),
    Term("Kolmogorov–Smirnov distance", "KS 距离（柯尔莫哥洛夫–斯米尔诺夫距离）",
         "The largest gap between a sample's empirical distribution function and a reference distribution "
         "function, such as that of N(0, 1).", "01_foundations"),
    Term("running statistics", "滑动统计量（running statistics）",
         "Moving averages of past batches' means and variances that BatchNorm keeps in training and uses in "
         "place of the batch's own at inference.", "01_foundations"),
    Term("RMS (root mean square)", "均方根（RMS）",
         "The square root of the mean of the squared entries, ‖v‖/√d for a vector of d entries.",
         "01_foundations"),
    Term("forward pass / backward pass", "前向传播 / 反向传播",
         "The computation of a network's outputs from its inputs, and the computation of the gradients from "
         "the output back to every weight and input by the chain rule (backpropagation).", "01_foundations"),
    Term("autograd", "autograd（自动微分）",
         "PyTorch's automatic differentiation, which records the operations a computation runs and computes "
         "their exact derivatives in the backward pass.", "01_foundations"),
    Term("MLP (multilayer perceptron)", "多层感知机（MLP）",
         "A stack of fully connected layers, each a matrix product followed by an elementwise nonlinearity.",
         "01_foundations"),
    Term("ReLU", "ReLU（线性整流函数）",
         "The activation max(0, x), which passes positive inputs and zeroes negative ones.", "01_foundations"),
    Term("He initialization", "He 初始化（何恺明初始化）",
         "Drawing a layer's weights with variance 2/fan-in, so that a ReLU layer, which zeroes about half its "
         "inputs, keeps the size of the signal from layer to layer.", "01_foundations"),
    Term("fan-in", "扇入",
         "The number of inputs of each unit of a layer (the columns of its weight matrix).", "01_foundations"),
    Term("SGD (stochastic gradient descent)", "随机梯度下降（SGD）",
         "Gradient descent in which each step uses the gradient of the loss on one sample or a small batch; "
         "\"plain SGD\" takes the step −η·g with no momentum or weight decay.", "01_foundations"),
    Term("weight decay", "权重衰减",
         "Shrinking every weight by a small fraction of itself at each step (for SGD, the same as adding a "
         "penalty on the squared weights to the loss), which pulls the weight norm back.", "01_foundations"),
    Term("effective learning rate", "有效学习率",
         "For a weight feeding a norm (scale invariant), the learning rate divided by the squared weight norm, "
         "η/‖W‖², which sets how far a step turns the weight's direction.", "01_foundations"),
    Term("Euler's theorem (homogeneous functions)", "欧拉齐次函数定理",
         "For a function homogeneous of degree k, ⟨x, ∇f(x)⟩ = k·f(x), so that the gradient of a scale-"
         "invariant loss is orthogonal to the weights.", "01_foundations"),
    Term("eigenvalue / eigenspace", "特征值 / 特征子空间",
         "A number λ and the vectors v that a matrix only scales, Av = λv; a symmetric matrix splits space "
         "into such orthogonal eigenspaces.", "01_foundations"),
    Term("singular value", "奇异值",
         "One of the factors by which a matrix stretches the orthogonal directions it maps to orthogonal "
         "directions; the largest is its spectral norm.", "01_foundations"),
    Term("one-hot vector", "独热向量（one-hot）",
         "A vector with a single non-zero entry (a distribution with all its weight on one entry).",
         "01_foundations"),
    Term("least squares", "最小二乘",
         "Fitting parameters by the choice that minimizes the sum of squared differences from the data.",
         "01_foundations"),
    Term("NaN (not a number)", "非数（NaN）",
         "The floating-point value of an undefined operation such as 0/0 or ∞ − ∞; once in a loss it spreads "
         "to every weight.", "01_foundations"),
    Term("weight normalization", "权重归一化",
         "Reparametrizing each weight vector as a learned length times a unit direction, w = g·v/‖v‖, instead "
         "of normalizing activations.", "01_foundations"),
    Term("VGG network", "VGG 网络",
         "A family of deep convolutional image classifiers built from stacks of small convolutions.",
         "01_foundations"),

    # Chapter 2.
    Term("sparse vector", "稀疏向量", "A vector whose entries are mostly zeros.", "02_principles"),
    Term("gain control", "增益控制",
         "Turning a signal up or down to hold its level steady, as LayerNorm does with each token's scale.",
         "02_principles"),
    Term("online learning", "在线学习",
         "Training on one example at a time, as the examples arrive.", "02_principles"),
    Term("momentum (of running statistics)", "动量（滑动平均系数）",
         "The fraction of the way each step moves a running average towards the newest value.",
         "02_principles"),
    Term("overflow", "上溢（溢出）",
         "A floating-point result too large for its format, which becomes ∞ (and then NaN in later "
         "arithmetic).", "02_principles"),
    Term("Hessian", "黑塞矩阵（Hessian）",
         "The matrix of a loss's second derivatives in the weights, whose eigenvalues are the curvatures along "
         "its eigenvectors and whose largest one bounds the stable step size.", "02_principles"),
    Term("pre-activation", "预激活值",
         "The output Wx + b of a linear layer before any normalization or nonlinearity.", "02_principles"),
    Term("i.i.d. (independent and identically distributed)", "独立同分布（i.i.d.）",
         "Said of random values drawn independently from one and the same distribution.", "02_principles"),
    Term("random walk", "随机游走",
         "A sum of independent terms of either sign, which grows like the square root of the number of "
         "terms.", "02_principles"),
    Term("teacher network", "教师网络",
         "A fixed, randomly initialized network whose outputs label the data that a student network learns.",
         "02_principles"),
    Term("full-batch / minibatch training", "全批量 / 小批量训练",
         "Gradient descent whose every step uses the whole training set, or a small random batch of it.",
         "02_principles"),
    Term("Adam", "Adam 优化器",
         "An optimizer that scales each parameter's step by running averages of its gradient and of its "
         "squared gradient.", "02_principles"),
    Term("ulp (unit in the last place)", "ulp（末位单位）",
         "The gap between a floating-point number and the next one of its format (in float32, 2⁻²³ times the "
         "power of two at or below the number), so that rounding errs by at most half an ulp.",
         "02_principles"),

    # Chapter 3.
    Term("GELU", "GELU（高斯误差线性单元）",
         "The activation x·Φ(x), Φ the standard normal distribution function, a smooth relative of ReLU used "
         "in GPT-2's MLP.", "03_transformer"),
    Term("softmax", "softmax（归一化指数函数）",
         "The map from scores s to weights exp(sᵢ)/Σⱼ exp(sⱼ), positive and summing to 1, which attention "
         "applies to its query–key scores.", "03_transformer"),
    Term("causal (attention mask, language model)", "因果（注意力掩码 / 语言模型）",
         "Letting each position see only itself and earlier positions, as a model that predicts the next "
         "token from the ones before it must.", "03_transformer"),
    Term("residual stream", "残差流",
         "The running sum that a residual network carries from block to block: the input plus every block's "
         "output added so far.", "03_transformer"),
    Term("outlier features", "离群特征",
         "The few feature dimensions in which trained Transformers carry activations many standard deviations "
         "larger than the rest.", "03_transformer"),
    Term("population / sample standard deviation", "总体标准差 / 样本标准差",
         "The square root of the summed squared deviations divided by n (population, LayerNorm's) or by "
         "n − 1 (sample, or unbiased, torch.std's default).", "03_transformer"),
    Term("two-pass variance", "两遍法方差",
         "The variance computed as the mean squared deviation from a mean found in a first pass, which never "
         "subtracts two large, nearly equal numbers.", "03_transformer"),
    Term("catastrophic cancellation", "灾难性抵消",
         "The loss of significant digits when two nearly equal rounded numbers are subtracted, as in "
         "mean(x²) − mean(x)² for a large mean.", "03_transformer"),
    Term("machine epsilon", "机器精度（machine epsilon）",
         "The gap between 1 and the next larger number of a floating-point format (2⁻²³ for float32).",
         "03_transformer"),
    Term("Welford's algorithm", "Welford 算法",
         "A one-pass variance algorithm that updates a running mean and a running sum of squared deviations "
         "one value at a time, never forming the mean of squares.", "03_transformer"),
    Term("Chan's update", "Chan 合并公式（并行均值方差合并）",
         "The formula of Chan, Golub and LeVeque that merges the counts, means and sums of squared deviations "
         "of parts of a data set into those of the whole, using deviations from means and never the mean of "
         "squares (Welford's algorithm for blocks).", "03_transformer"),
    Term("arithmetic intensity", "算术强度",
         "The FLOPs an operation does per byte it moves to and from memory.", "03_transformer"),
    Term("HBM (high-bandwidth memory)", "高带宽显存（HBM）",
         "The stacked memory beside the chip that is the main memory of GPUs such as the H100, whose transfer "
         "rate is the bandwidth the roofline uses.", "03_transformer"),
    Term("ATen operation", "ATen 算子",
         "One of the primitive tensor operations of PyTorch's core library, which its dispatcher runs.",
         "03_transformer"),
    Term("meta tensor (meta device)", "meta 张量（meta 设备）",
         "A PyTorch tensor with a shape and a dtype but no data, on which operations propagate shapes and can "
         "be counted without computing anything.", "03_transformer"),

    # Chapter 4.
    Term("float16", "半精度浮点数（float16，FP16）",
         "The 16-bit IEEE floating-point format, with 11 significant bits and a largest finite value of 65504, "
         "so that the square of any value of 256 or more overflows.", "04_why"),
    Term("CIFAR-10", "CIFAR-10 数据集",
         "A data set of small (32×32) colour images in ten classes, a standard benchmark of image "
         "classification.", "04_why"),
    Term("nat", "奈特（nat）",
         "The unit of a loss or an entropy computed with the natural logarithm; a uniform guess among k "
         "classes costs ln k nats.", "04_why"),
    Term("entropy (of attention)", "熵（注意力熵）",
         "The spread of a query's attention weights p, −Σⱼ pⱼ log pⱼ: log T when they are uniform over T "
         "keys, 0 when they are one-hot.", "04_why"),
    Term("spectral norm", "谱范数",
         "A matrix's largest singular value, the Lipschitz constant of the linear map it defines.", "04_why"),
    Term("style transfer", "风格迁移",
         "Redrawing the content of one image in the style of another.", "04_why"),

    # Chapter 5.
    Term("DeepNorm", "DeepNorm（深度归一化）",
         "DeepNet's Post-LN variant LN(α·x + G(x)) with α > 1 and branches initialized scaled down by β, so "
         "that one optimizer step moves the output by a bounded amount however deep the model is.",
         "05_residual"),
    Term("Weyl's inequality", "外尔（Weyl）不等式",
         "The bound that adding a matrix J moves every singular value of a matrix by at most ‖J‖₂, J's "
         "largest singular value, so that σ_min(I + J) ≥ 1 − ‖J‖₂.", "05_residual"),
    Term("circular law", "圆律",
         "The theorem that the eigenvalues of a large n×n random matrix with independent entries of mean 0 "
         "and variance 1/n spread uniformly over the unit disc of the complex plane.", "05_residual"),
    Term("Highway network", "高速公路网络（Highway Network）",
         "A deep network whose skip connections are gated: a learned gate mixes each layer's input and its "
         "transformation.", "05_residual"),
    Term("R² (coefficient of determination)", "决定系数（R²）",
         "The share of a quantity's variance that a fit explains, 1 for a perfect fit and 0 for none.",
         "05_residual"),
    Term("excess kurtosis", "超额峰度",
         "The mean fourth power of the standardized values minus 3, zero for a normal distribution and "
         "larger for heavier tails.", "05_residual"),
    Term("Markov chain", "马尔可夫链",
         "A random sequence in which each token is drawn from a distribution that depends only on the token "
         "before it.", "05_residual"),
    Term("entropy rate", "熵率",
         "The average uncertainty of a sequence's next token given its past, the lowest loss per token that "
         "any model can reach.", "05_residual"),
    Term("isotropic (loss surface)", "各向同性",
         "Equally curved in every direction, that is with all eigenvalues of the Hessian equal.",
         "05_residual"),
    Term("autocast (automatic mixed precision)", "autocast（自动混合精度）",
         "PyTorch's context in which each operation runs in the precision that a per-device list assigns it.",
         "05_residual"),
    Term("activation recomputation (checkpointing)", "激活重计算（梯度检查点）",
         "Keeping only a block's input in the forward pass and recomputing the rest in the backward pass, "
         "trading compute for memory.", "05_residual"),
    Term("tensor parallelism", "张量并行",
         "Splitting a layer's tensors, here each token's features, across devices.", "05_residual"),
    Term("all_gather", "全收集（all_gather）",
         "A collective operation after which every process holds every process's values.", "05_residual"),
    Term("all_reduce", "全归约（all_reduce）",
         "A collective operation after which every process holds the sum (or another reduction) over all "
         "processes.", "05_residual"),

    # Chapter 6.
    Term("Triton", "Triton（GPU 内核编程语言）",
         "A Python language and compiler for GPU kernels, in which a kernel is written for one program's "
         "block of data and compiled for NVIDIA and other GPUs.", "06_kernels"),
    Term("program (Triton)", "程序实例（Triton program）",
         "One instance of a Triton kernel, run by one thread block on its own share of the data (here one or "
         "more rows, or a chunk of a row).", "06_kernels"),
    Term("interpreter (Triton)", "解释器模式（Triton interpreter）",
         "Triton's mode that runs each program of a kernel on the CPU with NumPy, slowly, so that the kernel "
         "code can be tested without a GPU.", "06_kernels"),
    Term("compute capability", "计算能力（compute capability）",
         "NVIDIA's version number of a GPU's instruction set: 7.5 for the T4, 8.0 for the A100, 9.0 for the "
         "H100 (targets sm_75, sm_80, sm_90).", "06_kernels"),
    Term("streaming multiprocessor (SM)", "流式多处理器（SM）",
         "One of the independent processors of an NVIDIA GPU, which runs thread blocks and holds their "
         "registers and shared memory.", "06_kernels"),
    Term("thread block", "线程块",
         "The threads that run one program together on one streaming multiprocessor, sharing its registers "
         "and shared memory.", "06_kernels"),
    Term("warp", "线程束（warp）",
         "A group of 32 threads of an NVIDIA GPU that execute the same instruction together; a block of 16 "
         "warps has 512 threads.", "06_kernels"),
    Term("register", "寄存器",
         "The fastest storage of a GPU, private to each thread; a multiprocessor's registers are shared out "
         "among the threads it runs.", "06_kernels"),
    Term("register spill", "寄存器溢出",
         "Values that do not fit in a thread's registers, moved to per-thread stack memory in DRAM, which is "
         "slow.", "06_kernels"),
    Term("shared memory", "共享内存",
         "Fast on-chip memory of a multiprocessor that the threads of one block share.", "06_kernels"),
    Term("ptxas", "ptxas（PTX 汇编器）",
         "NVIDIA's assembler from PTX, the intermediate code, to machine code; Triton ships it, so kernels "
         "compile for any NVIDIA target without a GPU.", "06_kernels"),
    Term("cp.async", "cp.async（异步拷贝指令）",
         "The asynchronous copy instruction of compute capability 8.0 and later, which copies from global "
         "memory into shared memory while the thread goes on computing.", "06_kernels"),
    Term("software pipelining", "软件流水线",
         "Issuing the loads of the next piece of data while the current one is computed, so that waiting for "
         "memory overlaps the arithmetic.", "06_kernels"),
    Term("atomic add", "原子加",
         "An addition to a memory location that no other thread can interrupt, so that concurrent updates are "
         "all counted, in whatever order they arrive.", "06_kernels"),
    Term("deterministic (reduction)", "确定性（结果逐位可复现）",
         "Giving the same bits on every run, which a parallel sum does only if its order of additions is "
         "fixed, floating-point addition not being associative.", "06_kernels"),
    Term("partials (buffer)", "部分和缓冲",
         "The per-program float32 sums of dw and db that a second kernel adds up in a fixed order.",
         "06_kernels"),
    Term("L2 cache", "L2 缓存",
         "The on-chip cache that all of a GPU's multiprocessors share, between them and the main memory, much "
         "smaller than that memory and faster to read.", "06_kernels"),
    Term("DRAM", "DRAM（动态随机存储器）",
         "The GPU's main memory (on an H100, HBM), from which every byte an operation needs must come unless "
         "a cache holds it.", "06_kernels"),
    Term("residency window", "驻留窗口",
         "The bytes that pass through L2 while a group of split rows must stay there, between its first and "
         "its second read.", "06_kernels"),
    Term("ticket", "取号（ticket）",
         "A program's logical index, taken at run time by an atomic increment of a zeroed counter, so that "
         "every program it waits for has already started.", "06_kernels"),
    Term("eager mode (PyTorch)", "即时执行模式（eager）",
         "PyTorch's default way of running, each operation launched as its own kernel as the Python code "
         "reaches it.", "06_kernels"),
    Term("torch.compile", "torch.compile（PyTorch 编译器）",
         "PyTorch's compiler, which traces a function and generates fused kernels (often in Triton) for it.",
         "06_kernels"),
    Term("Liger-Kernel", "Liger-Kernel（Triton 内核库）",
         "A library of Triton kernels for training language models, one of the benchmark's comparisons.",
         "06_kernels"),
    Term("effective bandwidth", "有效带宽",
         "The bytes an ideal implementation must move divided by the measured time, in GB/s.", "06_kernels"),
)

TERMS: tuple[Term, ...] = tuple(sorted(_TERMS, key=sort_key))
