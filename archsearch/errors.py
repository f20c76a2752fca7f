"""The one base class for bad user input: the CLI prints these without a traceback and exits with 2."""


class UserError(Exception):
    """Invalid input from the user (a file, an argument, a URL): the message says what and what is allowed."""
