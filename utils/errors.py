"""One way to report bad input: raise UserError, and let `run_main` turn it into one line."""
import sys


class UserError(Exception):
    """Something the user can fix (a flag, a file, a prompt). Printed as one line, exit code 2."""


def run_main(main):
    """Run a script's main(): user errors become `error: ...` on stderr and exit status 2."""
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
