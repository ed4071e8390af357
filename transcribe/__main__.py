"""``python -m transcribe``: the same as the ``transcribe`` command."""

from .cli import entry

entry()
