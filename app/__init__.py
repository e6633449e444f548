"""Picaivid: listing photos + a music track -> a beat-synced listing video."""

__version__ = "0.1.0"
