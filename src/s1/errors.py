"""The one exception type that means "the user asked for something we cannot do".

The CLI turns it into a single line on stderr and exit code 2; everything else is a bug and may
show a traceback.
"""


class UserError(Exception):
    """A bad flag, file, model id or server: reported as one clear line, exit code 2."""
