"""The one exception type users see.

Anything raised as `LossnetError` is a problem with the user's input or environment (a missing file, an
unknown layer, a corrupt weights file). The CLI prints it as one `error:` line and exits with code 2;
anything else is a bug and keeps its traceback.
"""
import math


class LossnetError(Exception):
    """A user-facing error with a message that says what to fix."""


def suggest(name: str, choices) -> str:
    """' (did you mean relu3_3?)' when `name` is close to one of `choices`, else ''."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


class ConfigError(LossnetError):
    """A bad value of one config field, named: `field: message`. The CLI says the field's flag instead."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def check_finite(terms: dict, when: str, who: str = "") -> None:
    """Stop a loop whose loss went to NaN or inf, naming the terms that did and `when` ("at step 3"), so the user
    knows which weight or learning rate to lower. `terms` maps names to scalars (tensors or floats)."""
    bad = [name for name, value in terms.items()
           if not math.isfinite(float(value.detach() if hasattr(value, "detach") else value))]
    if bad:
        raise LossnetError(f"{who + ' ' if who else ''}loss term {', '.join(bad)} became non-finite {when}: "
                           "lower the learning rate or that term's weight")
