"""A module that is not a task: it has ``generate`` but no ``verify`` (for error messages)."""


def generate(rng):
    return {}
