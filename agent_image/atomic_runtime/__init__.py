"""The agent runtime: serves one atomic agent over HTTP (see docs/runtime.md).

Importing the package is cheap on purpose; the heavy modules (instructor, openai) load when
the app is built, so ``atomicctl`` can import ``atomic_runtime.local`` without paying for
them until it runs an agent.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
