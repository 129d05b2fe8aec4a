"""Binance: capture files (and, later, the live websocket client)."""
