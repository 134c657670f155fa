"""rollback-bot: watch release metrics, open incidents, walk a time-phased rollback ladder."""

__version__ = "0.1.0"
