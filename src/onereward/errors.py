"""The one exception type for a user's mistake: the CLI prints its message on one line and exits 2, no traceback."""


class UserError(Exception):
    """Bad input a user can fix. The message says what is wrong and what to do about it."""
