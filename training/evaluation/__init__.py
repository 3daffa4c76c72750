"""How a steering policy plays, measured: games against the house bots with confidence
intervals (``evaluate``: ``autosteer-train evaluate``), what a result rests on (``evidence``),
exact checks on what a policy was not fitted to (``heldout``: ``autosteer-train heldout``),
and the markdown tables and results document made from the result files (``tables``,
``results_md``, ``results``: ``autosteer-train report``)."""
