"""User mistakes: which exceptions are one line on stderr (exit code 2) instead of a traceback."""
from __future__ import annotations

import sys

from inference import USER_ERRORS
from training.distribute import StrategyError


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean a user mistake: printed as one line, no traceback."""
    return (*USER_ERRORS, StrategyError)


def run_main(main, argv=None, extra_errors: tuple[type[BaseException], ...] = ()) -> int:
    """main(argv)'s exit code; a user mistake (user_errors(), and a script's own ``extra_errors``) is one line, 2."""
    try:
        return main(argv) or 0
    except (*user_errors(), *extra_errors) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
