"""certgate core: model, policy, store, service, server shell and CLI."""

__version__ = "0.1.0"
