"""`make clean`: remove processed/ (and staging folders, failed-run logs), respecting the run lock.

Standard library only, so it works before `make setup`. A run holds an exclusive lock on
``<data_dir>/.pipeline.lock`` (`filelock`, which uses ``flock`` on Unix, like this module); while a
run holds it, cleaning stops with a message and removes nothing. Raw data is never touched.

    python3 -m pipeline.clean DATA_DIR
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def clean(data_dir: Path) -> list[Path]:
    """Remove what runs wrote under `data_dir`; raise RuntimeError when a run holds the lock."""
    import fcntl

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return []
    with open(data_dir / ".pipeline.lock", "a") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"a pipeline run is using {data_dir} (lock {data_dir / '.pipeline.lock'}); "
                               f"nothing was removed. Wait for it to finish, then clean again.") from None
        try:
            removed = [p for p in [data_dir / "processed", *data_dir.glob(".processed-*"), data_dir / "failed-runs"]
                       if p.exists()]
            for path in removed:
                shutil.rmtree(path)
            return removed
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def main(argv: list[str]) -> int:
    data_dir = Path(argv[0] if argv else "data")
    try:
        removed = clean(data_dir)
    except RuntimeError as exc:
        print(f"make clean: {exc}", file=sys.stderr)
        return 1
    print(f"removed {', '.join(str(p) for p in removed)}" if removed else f"nothing to remove in {data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
