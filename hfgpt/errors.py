"""The one exception type for user mistakes: bad flags, bad data, bad run folders.

The command line prints its message as one paragraph and exits with status 2, without a
traceback; anything else that goes wrong is a bug and keeps its traceback.
"""


class HfGptError(Exception):
    """A problem the user can fix; the message names the culprit and the fix."""
