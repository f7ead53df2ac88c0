"""Command line: ``python -m fastconv {demo,bench,info}``."""
from __future__ import annotations

import sys
from typing import Optional, Sequence

USAGE = """usage: python -m fastconv {demo,bench,info} [options]

  demo    train the seed CNN on handwritten digits (or --dataset mnist, fashion_mnist,
          cifar10) and report test accuracy
  bench   time fastconv against its NumPy backend and PyTorch (if installed)
  info    show the build: version, OpenMP, SIMD paths, threads

`python -m fastconv COMMAND --help` describes each command's options."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "demo":
        from .demo import main as run
    elif command == "bench":
        from .bench import main as run
    elif command == "info":
        from . import show_config

        def run(_rest):
            show_config()
            return 0
    else:
        print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    return run(rest)


if __name__ == "__main__":
    sys.exit(main())
