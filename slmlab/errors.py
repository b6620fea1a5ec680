"""Errors that reach the user as one clear line (the CLI prints them without a traceback)."""


class UserError(Exception):
    """Bad input from the user: the message names the problem and the fix."""


class CallFailed(Exception):
    """Call `index` of an executor's calls raised `error` (the calls not started were cancelled)."""

    def __init__(self, index: int, error: BaseException):
        super().__init__(f"call {index} failed: {type(error).__name__}: {error}")
        self.index, self.error = index, error

    def user_error(self, what: str, kept: str) -> UserError:
        """One line for the user: the call's own UserError as it is; otherwise `what` failed, why,
        and that the finished ones (`kept`) stay, so the same command goes on."""
        if isinstance(self.error, UserError):
            return self.error
        return UserError(f"{what} failed ({type(self.error).__name__}: {self.error}); {kept} are kept: "
                         "run the same command again to go on")  # fmt: skip
