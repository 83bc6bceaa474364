"""``python -m advfeatures COMMAND ...``: a small dispatcher over the package's command lines.

Each command is a function ``main(argv) -> int`` of a module imported only when its command is
called.
Add a command by adding a line to :data:`COMMANDS`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

#: command -> ("module" or "module:function", one-line help); the function (default ``main``)
#: takes the command's arguments and returns the exit status
COMMANDS: dict[str, tuple[str, str]] = {
    "compare": ("advfeatures.compare", "line up two runs' tables and claims (RUN_A RUN_B [--strict])"),
    "reference": ("advfeatures.compare:reference_main",
                  "copy a finished run's tables and claims into a reference folder (RUN DEST)"),
}


def usage() -> str:
    lines = ["usage: python -m advfeatures COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "python -m advfeatures COMMAND --help shows a command's arguments."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"unknown command {name!r}; choose one of: {', '.join(COMMANDS)}\n\n{usage()}", file=sys.stderr)
        return 2
    module, _, func = COMMANDS[name][0].partition(":")
    return int(getattr(importlib.import_module(module), func or "main")(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
