"""``python -m transcribe.render``: the same as ``transcribe-render``."""

from .run import main

main()
