"""Trading strategies written once and run by both the replay backtester and live paper trading."""
