"""The server shell and composition root: aiohttp app, wiring, process management."""
