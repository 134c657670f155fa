"""Backtest a playbook on history: replay readings through the live evaluation on a simulated clock."""
