"""`sepipe`: the command line. One module per command group, each a thin caller of stage functions.

A command group registers its subcommands with `add_parsers(sub, common)` and attaches its
handler with `set_defaults(handler=...)`; `main` dispatches on that handler. Adding a group is
one module and one entry in `COMMAND_GROUPS` (sepipe.cli.main).
"""

from sepipe.cli.main import build_parser, main  # noqa: F401
