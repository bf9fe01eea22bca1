"""``python -m ccr.operator``: the same as ``ccr operator``."""

from ccr.operator.main import run

if __name__ == "__main__":
    run()
