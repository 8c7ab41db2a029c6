"""The one exception type users see.

Anything raised as `LossnetError` is a problem with the user's input or environment (a missing file, an
unknown layer, a corrupt weights file). The CLI prints it as one `error:` line and exits with code 2;
anything else is a bug and keeps its traceback.
"""


class LossnetError(Exception):
    """A user-facing error with a message that says what to fix."""


def suggest(name: str, choices) -> str:
    """' (did you mean relu3_3?)' when `name` is close to one of `choices`, else ''."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""
