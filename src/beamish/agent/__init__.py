"""Agents: the journaled LLM loop, tools, consults and the models behind them.

The public names are re-exported from :mod:`beamish`; the modules here are private.
"""
