"""Progress bars a reader can see: a widget in JupyterLab, text in papermill logs and terminals.

``tqdm.auto`` picks the notebook widget whenever code runs in a Jupyter kernel, which is right in
JupyterLab but leaves ``nml run``'s papermill log with a bar frozen at its first state. ``nml run``
therefore sets ``NML_PROGRESS=text`` for the kernels it starts, and every bar in nml is made here.
"""

from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm as _auto_tqdm
from tqdm.std import tqdm as _text_tqdm

PROGRESS_ENV = "NML_PROGRESS"
"""``text``: plain text bars even in a kernel (set by ``nml run``); anything else: ``tqdm.auto``."""


def _in_notebook() -> bool:
    # tqdm.autonotebook picks the widget class only inside a Jupyter kernel
    from tqdm.autonotebook import tqdm as chosen

    return chosen is not _text_tqdm


def tqdm(*args: Any, **kwargs: Any) -> Any:
    """A tqdm bar: the notebook widget in JupyterLab, text under ``NML_PROGRESS=text`` or in a terminal.

    In a notebook, transient inner bars (``leave=False``) are not drawn: each would leave an empty
    widget output behind, and a cold run's hundreds of them push the cell's figure behind
    JupyterLab's "Show more outputs"; the outer bar of the same loop shows the progress.
    """
    if os.environ.get(PROGRESS_ENV) == "text":
        return _text_tqdm(*args, **kwargs)
    if _in_notebook() and kwargs.get("leave") is False:
        kwargs["disable"] = True
    return _auto_tqdm(*args, **kwargs)
