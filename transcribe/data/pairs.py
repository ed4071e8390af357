"""Find (audio, labels) pairs: in a folder, where labels share the audio file's stem and sit beside
it or in a sibling ``labels/`` folder of an ``audio/`` folder (the MAPS layout); or listed in a
split table (MAESTRO's ``maestro-v3.0.0.csv``/``.json``, or any CSV/JSON of audio, MIDI, split)."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from ..audio import find_audio_files
from ..notefiles import LABEL_EXTENSIONS


def label_for(audio: Path) -> Path | None:
    """The label file of ``audio``, or None."""
    folders = [audio.parent]
    if audio.parent.name == "audio":
        folders.append(audio.parent.parent / "labels")
    for folder in folders:
        for ext in LABEL_EXTENSIONS:
            candidate = folder / f"{audio.stem}{ext}"
            if candidate.is_file():
                return candidate
    return None


def find_pairs(root: str | Path, glob: str | None = None) -> list[tuple[Path, Path]]:
    """All (audio, label) pairs under ``root``, sorted; audio without labels is skipped.

    ``glob`` keeps only files whose path relative to ``root`` matches it.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such data folder")
    pairs = []
    for audio in find_audio_files(root):
        if glob and not fnmatch.fnmatch(str(audio.relative_to(root)), glob):
            continue
        label = label_for(audio)
        if label is not None:
            pairs.append((audio, label))
    return pairs


def split_pairs(pairs: list[tuple[Path, Path]], val_glob: str | None) -> tuple[list, list]:
    """Split into (train, validation): validation holds files whose name matches ``val_glob``."""
    if not val_glob:
        return pairs, []
    val = [p for p in pairs if fnmatch.fnmatch(p[0].name, val_glob)]
    train = [p for p in pairs if not fnmatch.fnmatch(p[0].name, val_glob)]
    return train, val


# Column names of split tables: MAESTRO's own, then the short names for any collection.
AUDIO_COLUMNS = ("audio_filename", "audio")
LABEL_COLUMNS = ("midi_filename", "midi", "labels", "label")
SPLIT_COLUMN = "split"


def read_table(path: str | Path) -> list[dict[str, str]]:
    """Rows of a split table: CSV with a header, or JSON as MAESTRO ships it (one object of
    columns, each ``{row index: value}``) or as a list of row objects."""
    import csv
    import json

    path = Path(path)
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, dict):  # {"column": {"0": value, ...}, ...}
            columns = {name: col if isinstance(col, dict) else dict(enumerate(col)) for name, col in data.items()}
            index = list(next(iter(columns.values()), {}))  # row keys in file order
            return [{name: str(col.get(i, "")) for name, col in columns.items()} for i in index]
        return [{k: str(v) for k, v in row.items()} for row in data]
    with open(path, newline="") as f:
        return [dict(row) for row in csv.DictReader(f)]


def _column(rows: list[dict[str, str]], names: tuple[str, ...], table: Path) -> str:
    for name in names:
        if rows and name in rows[0]:
            return name
    raise ValueError(f"{table}: no column named {' or '.join(names)}")


def pairs_from_table(root: str | Path, table: str | Path, splits: str | list[str]) -> list[tuple[Path, Path]]:
    """(audio, label) pairs of the rows of a split table whose ``split`` is one of ``splits``.

    ``table`` (relative to ``root`` unless absolute) is MAESTRO's ``maestro-v3.0.0.csv``/``.json``
    (columns ``audio_filename``, ``midi_filename``, ``split``) or any CSV/JSON with columns
    ``audio``, ``midi`` (or ``labels``) and ``split``; file paths in it are relative to ``root``.
    Every listed file must exist (a partial download is an error, not a smaller data set).
    """
    root = Path(root)
    table = Path(table) if Path(table).is_absolute() else root / table
    if not table.is_file():
        raise FileNotFoundError(f"{table}: no such split table")
    rows = read_table(table)
    if not rows:
        return []
    audio_col, label_col = _column(rows, AUDIO_COLUMNS, table), _column(rows, LABEL_COLUMNS, table)
    _column(rows, (SPLIT_COLUMN,), table)
    wanted = {splits} if isinstance(splits, str) else set(splits)
    pairs = [(root / r[audio_col], root / r[label_col]) for r in rows if r[SPLIT_COLUMN] in wanted]
    absent = [p for pair in pairs for p in pair if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"{table}: {len(absent)} listed file(s) missing under {root}, e.g. {absent[0]}")
    return pairs


def _base_splits(data) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """(train, validation) of ``data.root`` alone: its split table, or its folder split by ``val_glob``."""
    if data.metadata:
        val = data.val_split
        return (pairs_from_table(data.root, data.metadata, _as_list(data.train_split)),
                pairs_from_table(data.root, data.metadata, _as_list(val)) if val else [])
    return split_pairs(find_pairs(data.root), data.val_glob)


def dataset_splits(data) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """(train, validation) pairs for a ``data`` config: a split table (``data.metadata``, with
    ``data.train_split`` / ``data.val_split``) or a labelled folder split by ``data.val_glob``;
    plus, for training only, every labelled file under the folders of ``data.extra_train_roots``
    (e.g. the renders of ``transcribe-render``), except files whose name matches ``data.val_glob``;
    plus, for validation only, every labelled file under ``data.extra_val_roots`` (e.g. renders
    through held-out pianos), interleaved with the other validation files."""
    train, valid = _base_splits(data)
    for extra in data.extra_train_roots or []:
        more, _ = split_pairs(find_pairs(extra), data.val_glob)
        if not more:
            raise FileNotFoundError(f"{extra}: no audio files with labels (data.extra_train_roots)")
        train = train + more
    val_sets = [valid]
    for extra in data.extra_val_roots or []:
        more = find_pairs(extra)
        if not more:
            raise FileNotFoundError(f"{extra}: no audio files with labels (data.extra_val_roots)")
        val_sets.append(more)
    return train, interleave([spread(v) for v in val_sets])


def spread(items: list) -> list:
    """``items`` reordered so that any first few are spread evenly over the whole list (the
    golden-ratio sequence): names sorted by piece give a first few from different pieces."""
    golden = (5 ** 0.5 - 1) / 2
    return [items[i] for i in sorted(range(len(items)), key=lambda i: (i * golden) % 1.0)]


def interleave(lists: list[list]) -> list:
    """The items of several lists taken in turn (a, b, a, b, ...), so the first few validation
    files (``train.val_max_files``) come from every validation set."""
    out, longest = [], max((len(x) for x in lists), default=0)
    for i in range(longest):
        out.extend(x[i] for x in lists if i < len(x))
    return out


def eval_pairs(data, split: str, glob: str | None = None) -> list[tuple[Path, Path]]:
    """The (audio, label) pairs to evaluate on: ``split`` ``"validation"`` is the validation
    split of the ``data`` config (the one training validates on), ``"all"`` every labelled file
    under ``data.root``, any other name those rows of ``data.metadata``'s split table. ``glob``
    then keeps only files whose path relative to ``data.root`` matches it."""
    if split == "all":
        pairs = find_pairs(data.root)
    elif split == "validation":
        if not (data.val_split if data.metadata else data.val_glob):
            raise ValueError(f"{data.root}: the data config defines no validation split; use split=all")
        pairs = _base_splits(data)[1]
    elif data.metadata:
        pairs = pairs_from_table(data.root, data.metadata, split)
    else:
        raise ValueError(f"{data.root}: split={split} needs a split table (data.metadata); use split=all "
                         "or split=validation")
    if glob:
        pairs = [p for p in pairs if fnmatch.fnmatch(str(p[0].relative_to(data.root)), glob)]
    return pairs


def _as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]
