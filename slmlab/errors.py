"""Errors that reach the user as one clear line (the CLI prints them without a traceback)."""


class UserError(Exception):
    """Bad input from the user: the message names the problem and the fix."""


class CallFailed(Exception):
    """Call `index` of an executor's calls raised `error` (the calls not started were cancelled)."""

    def __init__(self, index: int, error: BaseException):
        super().__init__(f"call {index} failed: {type(error).__name__}: {error}")
        self.index, self.error = index, error
