"""The statements of seed 003 that the book does not test, each with its anchor and the reason."""

from lnbook.sources import untested

H1 = "为什么必须要有Norm？真的是为了解决ICS吗？"
H2 = "第二、 为什么BN在Transformer里水土不服？"
H3 = "为什么LN能赢？"
H4 = "LN的变体与RMSNorm的称霸"
H5 = "Pre-Norm vs Post-Norm 是一场血的教训"
H6 = "为什么不用Instance Norm、Group Norm？"

UNTESTED = [
    untested(("003", H1, "是2018年NeurIPS上的"),
             reason="A reading recommendation; its bibliographic facts are right (Santurkar et al., NeurIPS 2018, "
             "references.bib) and 'underrated' is an opinion: nothing to compute."),
    untested(("003", H1, "为什么有时候Loss飞了是Norm没设好"),
             reason="An anecdote about large-scale pre-training runs; no toy reproduces a misconfigured norm in one."),
    untested(("003", H2, "ResNet靠它打下了江山"),
             reason="History: ResNet does put BatchNorm after every convolution (He et al. 2016, §3.4); nothing to "
             "compute."),
    untested(("003", H2, "但在工程实现上极其恶心，而且效果并不好"),
             reason="Masking makes BatchNorm's statistics exact for the real tokens (W03's null world); whether masked "
             "BatchNorm then trains worse is a matter of NLP-scale training (Shen et al. 2020), beyond a CPU toy."),
    untested(("003", H2, "大家还在用几G显存的卡"),
             reason="History and hardware: the 2017 Transformer was trained on 8 P100 GPUs (Vaswani et al., §5.2); "
             "nothing to compute."),
    untested(("003", H2, "单卡能塞进去的Batch Size也非常小"),
             reason="A statement about clusters and models of hundreds of billions of parameters; the per-device batch "
             "depends on the parallelism chosen, far beyond this book's scale."),
    untested(("003", H2, "这对于大模型训练时的稳定性至关重要"),
             reason="Stability of large-model training is not something a CPU toy can measure; W04 shows the batch "
             "independence itself."),
    untested(("003", H2, "RNN时代大家就发现BN不行"),
             reason="History: Ba et al. (2016) name BatchNorm's per-time-step statistics as the obstacle in RNNs, and "
             "Cooijmans et al. (2016) made it work with per-step statistics; no RNN is trained here."),
    untested(("003", H2, "每个Token在不同位置的语义强度是不一样的"),
             reason="'Semantic strength' is not defined well enough to measure; W12 tests what BatchNorm and LayerNorm "
             "keep of the tokens' relative sizes."),
    untested(("003", H2, "Google Brain 2016年的那篇"),
             reason="A bibliographic attribution: Layer Normalization (Ba, Kiros and Hinton, 2016) is a University of "
             "Toronto paper, Hinton last author (also at Google); its RNN analysis is a reading recommendation."),
    untested(("003", H3, "向量的方向代表了“语义”"),
             reason="An interpretation (norm as confidence or energy, direction as meaning) with nothing to compute; "
             "W05 tests what LayerNorm does to norm and direction."),
    untested(("003", H3, "在深层网络里，模长很容易失控"),
             reason="Depends on the trained network; at initialization a stack without a norm grows every token alike "
             "(W13), and a trained deep network is beyond this chapter's toys."),
    untested(("003", H3, "刚开始我不信邪，非要试BN"),
             reason="A personal anecdote (a recommendation model, 2020) with no data to check."),
    untested(("003", H3, "远比跨样本的特征一致性（BN捕捉的东西）重要"),
             reason="A claim about NLP and sequence tasks at real scale, drawn from experience; no toy can decide it."),
    untested(("003", H4, "绝大多数用的都不是原始论文里的LN"),
             reason="A census of today's Transformers that the book does not take; its table (W11) checks the models "
             "the source names."),
    untested(("003", H4, "电费都是几百万几千万"),
             reason="Economics of training runs, not a property of normalization."),
    untested(("003", H4, "去找个优化好的 RMSNorm kernel"),
             reason="A recommendation of tools; speed is chapter 6's (the kernels and their benchmarks against torch), "
             "never measured by a clock on this machine."),
    untested(("003", H4, "是怎么把Norm和Attention融合在一起优化的"),
             reason="A description of another project's code (FlashAttention's repository) that the book does not "
             "read; its fused norm operators are a matter for that repository."),
    untested(("003", H4, "不懂算子优化，路走不远"), reason="Career advice; nothing to compute."),
    untested(("003", H5, "Post-Norm在理论上效果可能更好"),
             reason="Hedged ('可能') and about final quality at scale; chapter 5 compares the two placements on a toy."),
    untested(("003", H5, "早期的BERT训练需要非常小心地设计Warmup"),
             reason="BERT does warm its learning rate up over the first 10,000 steps (Devlin et al. 2019, A.2); "
             "whether it collapses without it is BERT-scale training; chapter 5 (R22) measures Post-Norm and warm-up "
             "on a toy."),
    untested(("003", H5, "Checkpoint回滚几个小时就是几万块钱没了"),
             reason="Economics of training runs, not a property of normalization."),
    untested(("003", H6, "GN有时候确实比LN好一点点"),
             reason="An empirical comparison on Vision Transformers that needs ViT-scale training."),
    untested(("003", H6, "简单粗暴，效果好，硬件亲和力强"),
             reason="A judgement; the hardware side (one row per program, no cross-sample reduction) is chapter 6's "
             "kernels, and quality needs large-scale training."),
    untested(("003", H6, "别回头去试Post-Norm BN了"),
             reason="A recommendation; note that the 2017 Transformer used Post-Norm with LayerNorm, not BatchNorm "
             "(W11)."),
    untested(("003", H6, "导致显存利用率和通信开销问题"),
             reason="A systems claim (synchronized BatchNorm all-reduces its statistics across devices); this book has "
             "one device and counts no communication."),
    untested(("003", H6, "Rich Sutton写的博客文章"),
             reason="A reading recommendation: The Bitter Lesson is Rich Sutton's 2019 blog post; its thesis is an "
             "opinion on the history of AI, nothing to compute."),
]
