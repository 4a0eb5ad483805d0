"""The admin API's core-level pieces: the plug-in shape (plugin.py), API tokens (tokens.py)
and the operations the API and the console share (operations.py)."""
