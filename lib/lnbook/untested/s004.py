"""The statements of seed 004 that the book does not test, each with its anchor and the reason."""

from lnbook.sources import untested

H42 = "4.2 技术优势和创新点：解决梯度消失与退化"  # a heading two entries cite

UNTESTED = [
    # Lines up to "## 架构设计：Transformer中的深度融合".
    untested(("004", "相关技术的发展历程：从“深不可测”到“如履平地”", "反而出现了严重的退化问题"),
             ("004", H42, "反而往往能获得更好的特征提取能力"),
             ("004", H42, "训练百层、甚至上千层的模型成为可能"),
             reason="The degradation of deep plain networks, and its cure by residual connections, is an accuracy "
             "measured by He et al. (2016) on ImageNet and CIFAR with networks of tens to a thousand layers; a CPU "
             "toy cannot reproduce training at that depth and scale (R19 measures the gradients at initialization)."),
    untested(("004", "相关技术的发展历程：从“深不可测”到“如履平地”", "极大地加速了收敛并允许使用更大的学习率"),
             reason="BatchNorm's effect on convergence and learning rate is Ioffe and Szegedy's (2015) ImageNet "
             "result, about BatchNorm in convolutional networks; the book measures LayerNorm's learning-rate claim "
             "(T07) and does not retrain BatchNorm networks."),
    untested(("004", "相关技术的发展历程：从“深不可测”到“如履平地”", "BN在处理生成式任务时的推理复杂性"),
             reason="'A nightmare of inference complexity' names no quantity; BatchNorm's train/inference "
             "difference itself is F04's."),
    untested(("004", "当前技术现状和竞争格局：不可撼动的“基础设施”", "可能出现冗余训练的问题"),
             ("004", "当前技术现状和竞争格局：不可撼动的“基础设施”", "本质上仍然是对残差思想的延续与补充"),
             reason="A survey's judgement with nothing to compute. Of history: Highway Networks (Srivastava et al., "
             "May 2015) came before ResNet (He et al., December 2015), so they precede the residual idea rather "
             "than continue it."),
    untested(("004", "面临的挑战与为什么需要这项技术", "微小的数值误差可能被放大，导致训练发散"),
             reason="A hedged statement about training at the scale of massive parallel runs, far beyond a CPU toy; "
             "the precision cards (R13, R18) test the numerics of LayerNorm itself."),
    untested(("004", "3.2 优缺点分析", "其归一化效果可能不如 Group Normalization"),
             reason="'Normalization effect' on 'extremely sparse features' is not defined well enough to measure, "
             "and the source hedges it (可能)."),
    untested(("004", "3.3 代码实现对比", "因为它对序列长度不敏感"),
             reason="A code comment's reason, not a fact to compute; BatchNorm's trouble with sequences is "
             "padding and batch size (F06, W03), which this comment contradicts rather than states."),
    untested(("004", "3.4 选型建议与迁移注意事项", "训练深层模型（>12层）极难收敛"),
             reason="Whether Post-LN models deeper than 12 layers converge is a training outcome at scale "
             "(BERT-Large trains 24 Post-LN layers with warm-up, Devlin et al. 2019); the book measures the "
             "warm-up dependence on a small model (R22) and the gradients at initialization (R05)."),
    untested(("004", "4.1 主要功能特性：恒等映射与梯度高速通道", "这极大地降低了优化难度"),
             ("004", "4.4 关键技术原理：为何百层模型不崩塌？", "这使得模型更容易学习到残差修正"),
             reason="Ease of optimization is an outcome of training at scale with no stated measure; the identity "
             "at initialization that the argument rests on is R06's."),
    untested(("004", "4.3 性能指标和规格", "慢，且容易陷入局部最优"),
             ("004", "4.3 性能指标和规格", "随深度增加而饱和甚至下降"),
             reason="The table's convergence and accuracy rows are presented as the source's own comparison 'at "
             "equal compute' but give no numbers or setting; accuracy against depth is He et al.'s large-scale "
             "result (which also shows a 1202-layer ResNet doing worse than a 110-layer one on CIFAR-10, against "
             "'keeps improving with depth')."),
    untested(("004", "4.4 适用场景分析", "残差连接有助于保留原始模态的信息"),
             reason="A qualitative statement about multimodal models such as CLIP, with nothing stated to measure."),
    untested(("004", "4.2 优缺点与架构演进", "缺少了跨样本的正则化效果"),
             reason="Generalization on 'some CV tasks' is a hedged training outcome at scale (可能); T08 discusses "
             "what small experiments can say about LayerNorm and regularization."),
    untested(("004", "4.3 选型建议与迁移注意事项", "必须使用Layer Normalization"),
             reason="A recommendation, not a fact: the Llama models the source names elsewhere use RMSNorm (W11), "
             "so 'must' is a matter of choice."),
    untested(("004", "4.3 选型建议与迁移注意事项", "Warm-up步骤通常比BN模型更简单"),
             reason="The ease of warm-up in fine-tuning names no measure; that LayerNorm keeps no running "
             "statistics to re-estimate is T09's."),
]
