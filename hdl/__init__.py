"""Tessera RTL, written in Amaranth: one block per file."""
