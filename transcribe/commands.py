"""Console-script entry points of the commands that need optional packages
(``transcribe-train``, ``transcribe-eval``, ``transcribe-render``): each checks that what it
needs is installed, and otherwise says in one line what to install, instead of a traceback
from an import. (``transcribe`` itself needs only the base install.)"""

from __future__ import annotations

import sys

from .deps import MissingDependency, require

TRAIN_NEEDS = ("torch", "hydra", "omegaconf", "mir_eval", "pyroomacoustics")
EVAL_NEEDS = ("hydra", "omegaconf", "mir_eval")
RENDER_NEEDS = ("hydra", "omegaconf")


def check(command: str, modules: tuple[str, ...], extra: str) -> None:
    """Exit with status 2 and one ``COMMAND: error:`` line if any of ``modules`` is missing."""
    try:
        for module in modules:
            require(module, command, extra)
    except MissingDependency as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        sys.exit(2)


def train() -> None:
    """``transcribe-train`` (needs ``transcribe-piano[train]``)."""
    check("transcribe-train", TRAIN_NEEDS, "train")
    from .train import main

    main()


def evaluate() -> None:
    """``transcribe-eval`` (needs ``transcribe-piano[train]``)."""
    check("transcribe-eval", EVAL_NEEDS, "train")
    from .evaluate import main

    main()


def render() -> None:
    """``transcribe-render`` (needs ``transcribe-piano[render]``)."""
    check("transcribe-render", RENDER_NEEDS, "render")
    from .render.run import main

    main()
