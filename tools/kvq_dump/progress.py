"""Progress display: tqdm when installed, otherwise a plain counter on stderr."""

from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], total: int, desc: str, enabled: bool = True) -> Iterator[T]:
    if not enabled:
        yield from items
        return
    try:
        from tqdm import tqdm
    except ImportError:
        for i, item in enumerate(items):
            print(f"\r{desc}: {i}/{total}", end="", file=sys.stderr, flush=True)
            yield item
        print(f"\r{desc}: {total}/{total}", file=sys.stderr, flush=True)
        return
    yield from tqdm(items, total=total, desc=desc, file=sys.stderr)
