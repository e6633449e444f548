"""Queue workers: `picaivid worker --type cpu|gpu`, or `python -m app.worker`.

A worker is a small loop (`loop.Worker`) over a message handler per worker type (`handlers`), with a
heartbeat that keeps its message invisible and its lease alive while it works, and a stop path for
SIGTERM and Spot interruption notices (`spot`).
"""
