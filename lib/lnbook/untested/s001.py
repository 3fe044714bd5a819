"""The statements of seed 001 that the book does not test, each with its anchor and the reason."""

from lnbook.sources import untested

INTRO, ZOO, ALONE, AFFINE, SYMPHONY = "引言", "归一化动物园：关键在于分组", "单打独斗的力量", "可学习参数的隐藏天才", "特征的交响乐"

UNTESTED = [
    untested(("001", INTRO, "最基本但又最容易被误解的组件之一"),
             reason="A judgement about how the field understands LayerNorm: there is nothing to compute."),
    untested(("001", INTRO, "对训练当今人工智能所依赖的大型模型"),
             ("001", SYMPHONY, "使得构建定义现代人工智能的那些大规模"),
             reason="A claim about the history of large models (that LayerNorm made them possible): it would "
             "take training such models with and without it, far beyond a CPU toy. The book measures the "
             "mechanisms it names (chapters 1, 2 and 5), not the history."),
    untested(("001", INTRO, "深度学习的主要挑战一直是训练过程的不稳定性"),
             reason="A statement about the history of the field (what its main challenge has long been), not "
             "about a computation."),
    untested(("001", INTRO, "构建稳定、强大乃至公平的智能系统"),
             reason="Fairness is named but never argued in this text (it points to applications it does not "
             "describe): no statement here to test."),
    untested(("001", ZOO, "你所做的选择从根本上改变了网络的属性"),
             reason="Too vague to test: which property is not said. The concrete differences the choice makes "
             "are measured in M02 (which values are grouped, how many affine parameters) and M03 (batch "
             "dependence)."),
    untested(("001", ALONE, "默认选择的一个关键原因"),
             reason="A claim about why Transformer designers chose LayerNorm (their motive), a matter of "
             "history; the book tests the property itself, batch independence, in M03."),
    untested(("001", AFFINE, "网络正在学习其特征的"),
             reason="'Optimal' here means whatever training reaches: γ and β are learned by gradient descent "
             "like every weight, with no optimality a toy could check; what their gradients do is tested in "
             "M06–M08."),
]
