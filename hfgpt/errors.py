"""The one exception type for user mistakes: bad flags, bad data, bad run folders; and how errors are quoted.

The command line prints its message as one paragraph and exits with status 2, without a
traceback; anything else that goes wrong is a bug and keeps its traceback.
"""


class HfGptError(Exception):
    """A problem the user can fix; the message names the culprit and the fix."""


def error_summary(error: BaseException, limit: int = 200) -> str:
    """`Type: first line of the message`, short enough to quote inside a one-paragraph message."""
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0][:limit]}" if lines else type(error).__name__


def os_error_text(error: OSError, where: object) -> str:
    """What a failed write says (`No space left on device (path)`), naming `where` if the error names nothing."""
    return f"{error.strerror or error} ({error.filename or where})"
