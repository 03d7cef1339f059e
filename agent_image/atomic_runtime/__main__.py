"""``python -m atomic_runtime``: the container's command."""

from .server import run

if __name__ == "__main__":
    run()
