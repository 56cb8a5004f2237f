"""What every command line of the project shares: usage errors in one line."""
from __future__ import annotations

import argparse


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line with a pointer to --help (argparse's own print
    the whole usage first: 24 lines for ssl_train, the error last)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
