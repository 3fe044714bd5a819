"""The statements of seed 000 that the book does not test, each with its anchor and the reason."""

from lnbook.sources import untested

UNTESTED = [
    untested(("000", "在现代深度学习", "没有它，这些大模型的训练将变得极其困难甚至无法收敛"),
             reason="a statement about training large Transformers without any normalization: only a run at "
             "that scale could decide it; the book's toys compare with and without LayerNorm at small scale "
             "(F11, chapter 3's T07)."),
    untested(("000", "2. LayerNorm 的核心直觉", "由 Geoffrey Hinton 团队在 2016 年提出"),
             reason="history with nothing to compute; the book cites the paper (Ba, Kiros & Hinton 2016)."),
    untested(("000", "第三步：仿射变换 (Affine Transformation)", "可能会破坏模型学到的特征"),
             reason="hedged ('may'): whether a network needs inputs outside an activation's linear range depends "
             "on the task; the book shows only that γ and β cannot undo the normalization in general (F03)."),
    untested(("000", "5. 为什么 NLP/Transformer 偏爱 LayerNorm？", "所以跨样本归一化（BN）效果很好"),
             reason="a statement about practice in CNNs and NLP at scale (which normalization works better there); "
             "no toy decides it."),
    untested(("000", "5. 为什么 NLP/Transformer 偏爱 LayerNorm？", "显存占用高。这导致训练时 Batch Size 往往很小"),
             reason="a statement about how large models are trained, not computable here; published LLM runs use "
             "large global batches (GPT-3: 0.5 to 3.2 million tokens), small batches being per device."),
    untested(("000", "只有 LayerNorm 之前的世界", "下一层的权重更新步长变得极不稳定"),
             reason="too vague to measure ('extremely unstable' update steps); the growth of the activations "
             "themselves is F08."),
    untested(("000", "3. 优化景观：平滑损失曲面 (Smoothing the Loss Landscape)", "由 MIT 的 Santurkar 等人"),
             reason="attribution with nothing to compute (Santurkar, Tsipras, Ilyas & Madry 2018, MIT, on "
             "BatchNorm); whether it carries over to LayerNorm is F11."),
    untested(("000", "Lipschitz 连续性", "曲率（Hessian 矩阵的特征值）更加均匀"),
             reason="the book does not compute Hessian spectra; F11's β probes the curvature only along the "
             "gradient."),
    untested(("000", "4. 消除自由度：降低优化难度", "这通常是更高效的收敛路径"),
             reason="hedged ('usually') and about convergence speed in general; F13 shows the weights do not stay "
             "on a sphere, and no toy here measures the efficiency of the path."),
    untested(("000", "B. 优化空间从“欧几里得空间”转为“球面”", "这大大缩小了搜索空间"),
             reason="removing one radial direction from the search space and the speed-up claimed for it are not "
             "measured; F13 shows the optimization does not stay on a sphere."),
    untested(("000", "Pre-LN 与 Post-LN 的演进", "这种方式模型性能上限更高"),
             reason="a statement about final quality of large Transformers; chapter 5 (R22) compares only the "
             "learning rates the two placements take."),
]
