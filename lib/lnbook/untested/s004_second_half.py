"""The statements of seed 004's second half (from “架构设计：Transformer中的深度融合” on) that the book does not
test, each with its anchor and the reason. The first half is :mod:`lnbook.untested.s004`."""

from lnbook.sources import untested

H51 = "5.1 标准结构与物理意义：Add & Norm的“化学反应”"
H512 = "5.1.2 Add & Norm操作的物理意义"
H522 = "5.2.2 热启动与模型稳定性"
H532 = "5.3.2 GPT-2/3与DeepNet的设计选择"
H541 = "5.4.1 Zero Init：让模型从“恒等映射”起步"
H55 = "5.5 小结"
H61 = "方差的保持与“信号传播率”"
H64 = "损失函数的等值面形状"
H65P = "对参数扰动的鲁棒性"
H65N = "对输入噪声的容忍"
H7C = "2. 真实案例详细解析"
H7G = "7. 实施指南与部署方法 🛠️"
H7B = "3. 最佳实践与避坑指南"
H84 = "💡 8.4 场景选型建议与迁移指南"
H9 = "9. 性能优化：计算效率与显存占用"
H10 = "10. 实践应用：应用场景与案例"
H10I = "2. 实施指南与部署方法"
H111 = "11.1 技术演进：从“标准化”走向“极简主义”"
H112 = "11.2 残差连接的重构：深度网络的“高速公路”升级"
H113 = "11.3 挑战与机遇：量化与异常值的博弈"
H114 = "11.4 生态建设：软硬协同设计的必然"
HSUM = "⚖️ 协同的哲学：稳定与流动的完美平衡"
HFOUND = "🏛️ 奠基性作用：让“深度”成为可能"

UNTESTED = [
    untested(("004", H51, "历史上曾引发过长时间的讨论"),
             reason="a matter of history (the debate over where the norm goes), with nothing to compute"),
    untested(("004", H512, "导致数值落入激活函数的饱和区"),
             reason="names no network or depth; ReLU has no saturating side for positive inputs, and what the "
                    "normalization does to the activations' scale is F08's and R08's measurement"),
    untested(("004", H522, "早期的Transformer模型很少超过24层"),
             reason="a survey of published models, not something a toy can measure; R05 and R23 test why Post-LN is "
                    "hard to train deep"),
    untested(("004", H532, "无需复杂的warm-up技巧"),
             reason="an attribution to OpenAI's researchers that the GPT-2 paper (Radford et al. 2019) does not make: "
                    "it describes the moved LayerNorm and the 48-layer model but reports no warm-up finding; whether "
                    "Pre-LN needs warm-up is R22's study"),
    untested(("004", H532, "对学习率和初始化更加敏感"),
             reason="a statement about large models early in training that a toy cannot settle; at the rates of "
                    "R22's study Pre-LN tolerates higher learning rates than Post-LN, the opposite direction"),
    untested(("004", H532, "微调效果可能略逊于Post-Norm"),
             reason="fine-tuning quality of pretrained models on downstream tasks: far beyond a CPU toy"),
    untested(("004", H541, "T5模型和GPT-3等模型都采用了类似的初始化策略"),
             reason="an attribution the book does not check against the T5 and GPT-3 papers' initializations; "
                    "GPT-3 follows GPT-2's depth-scaled initialization (R07), not zero initialization"),
    untested(("004", H55, "数千层深度的语言模型"),
             reason="a survey claim about deployed language models, not computable; the deepest models the source "
                    "names elsewhere (GPT-3) have 96 layers"),
    untested(("004", H61, "Xiao等人提出的信号传播理论"),
             reason="an attribution of a theory to a paper the source does not cite fully; the variance "
                    "preservation it leads to is R08's measurement"),
    untested(("004", H64, "使得损失函数的等值面更接近于正圆"),
             reason="an explanation of why BatchNorm speeds up convolutional networks, a debated question "
                    "(Santurkar et al. 2018) that the LayerNorm chapters test only for LayerNorm (F11, W01, W02, R40)"),
    untested(("004", H65P, "不需要极其小心翼翼地调整学习率"),
             reason="a claim about fine-tuning pretrained models, beyond a CPU toy; R41 tests the mechanism given "
                    "for it"),
    untested(("004", H65N, "对输入数据中的离群点具有一定的平滑作用"),
             reason="names no measure of smoothing or of noise; LayerNorm bounds any one output by √(d − 1) but "
                    "an outlier still dominates the row, so the statement depends on what is meant"),
    untested(("004", H65N, "远超传统RNN的鲁棒性"),
             reason="a comparison of Transformers and RNNs on noisy real-world data, far beyond a CPU toy"),
    untested(("004", H7C, "如果不使用LN，隐藏层状态数值的分布"),
             reason="an attribution to BERT's team that the BERT paper (Devlin et al. 2019) does not make: it reports "
                    "no training without LayerNorm"),
    untested(("004", H7C, "刷新了十一项NLP任务的纪录"),
             reason="a benchmark result of the BERT paper, quoted correctly (eleven tasks), not computable here"),
    untested(("004", H10, "收敛速度提升了30%以上"),
             reason="names no baseline, model or accuracy; R20's runs show the figure depends on the baseline "
                    "(over 78 % fewer steps than a plain stack, none saved by LayerNorm on a residual stack)"),
    untested(("004", H7G, "推荐使用PyTorch 1.10+"),
             reason="a recommendation of tool versions, a matter of taste"),
    untested(("004", H7G, "建议使用原位加法操作"),
             reason="not yet tested: in a Pre-LN block LayerNorm saves x for its backward, so x += f(LN(x)) in "
                    "training raises autograd's in-place error; a card counting the memory it saves at inference "
                    "is future work"),
    untested(("004", H7G, "不要禁用可学习的缩放参数"),
             reason="a recommendation whose effect on quality depends on the task; M07 and M08 bear on β and γ"),
    untested(("004", H7G, "更平滑的下降轨迹和更低的最终Loss"),
             reason="a validation procedure, not a claim with a number; R20's runs record the final losses with and "
                    "without the two components"),
    untested(("004", H7B, "引入动态损失缩放"),
             reason="loss scaling is a remedy for FP16 gradient underflow, a different failure from LayerNorm's "
                    "division; the book does not train in FP16"),
    untested(("004", H7B, "务必配合梯度裁剪使用"),
             reason="a training recommendation at very high learning rates, with no stated effect to measure"),
    untested(("004", H7B, "内置了针对Transformer架构的Fused"),
             reason="an attribution of features to DeepSpeed and Megatron-LM, which the book does not install"),
    untested(("004", H84, "千万不要直接改代码继续训练"),
             reason="needs a pretrained Post-LN model converted to Pre-LN and trained on: beyond a CPU toy"),
    untested(("004", H84, "BN在空间特征提取上效果显著"),
             reason="a recommendation for convolutional networks, outside the book's Transformer toys"),
    untested(("004", H9, "将通信过程与前面的矩阵乘法计算重叠"),
             reason="a description of how tensor-parallel implementations schedule their all-reduce; the book has "
                    "no multi-GPU run (R15 counts the bytes on CPU processes)"),
    untested(("004", H9, "在低精度下也需注意累加顺序"),
             reason="names no setting; a bfloat16 residual stream loses small updates to rounding rather than "
                    "overflowing, which the book does not measure"),
    untested(("004", H10, "成功构建了深达6层甚至12层"),
             reason="an attribution to Google's translation system that the book does not check; GNMT (Wu et al. "
                    "2016) stacks 8 encoder and 8 decoder LSTM layers with residual connections"),
    untested(("004", H10I, "NVIDIA Volta 架构及以上"),
             reason="a hardware fact (Tensor Cores arrived with Volta), with nothing to compute"),
    untested(("004", H10I, "对数值精度相对稳健"),
             reason="contrary to the source's own advice to keep LayerNorm in FP32 (R18); R13 and R18 show where "
                    "low-precision LayerNorm is safe (statistics in float32) and where not"),
    untested(("004", H10I, "通常将梯度范数裁剪阈值设置为 1.0"),
             reason="a common setting (GPT-3 clips at 1.0), a recommendation with no effect to measure"),
    untested(("004", H10I, "将LN与其前后的线性层融合为单个CUDA Kernel"),
             reason="fusing LayerNorm with a matrix product is not among the book's kernels; R11 counts the "
                    "fusion with the residual add"),
    untested(("004", H10I, "集成了融合LayerNorm算子"),
             reason="an attribution of fused kernels to Apex and DeepSpeed, which the book does not install"),
    untested(("004", H111, "在理论损失极小的情况下显著提升了计算速度"),
             reason="RMSNorm's speed and quality are F07's and W07's; this sentence adds a forecast"),
    untested(("004", H111, "完全移除归一化层"),
             reason="a report of research directions and a forecast, nothing to compute"),
    untested(("004", H112, "加权或门控残差连接"),
             reason="a forecast of future architectures"),
    untested(("004", H113, "残差累加容易导致数值溢出或精度损失"),
             reason="INT4/INT2 quantized inference is outside the book's experiments"),
    untested(("004", H114, "将归一化操作融合进注意力计算图中"),
             reason="a forecast about compilers and hardware"),
    untested(("004", HFOUND, "从BERT到GPT-4，再到如今风靡的Sora"),
             reason="GPT-4's and Sora's architectures are not published; nothing to check against"),
    untested(("004", HSUM, "在一个深层模型中，残差连接让信息能够穿透屏障"),
             reason="a metaphor restating the earlier sections' claims (R01, R08, R09, R10)"),
]
