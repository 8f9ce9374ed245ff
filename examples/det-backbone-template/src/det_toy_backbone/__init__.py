"""det-toy-backbone: the template of a third-party det backbone plugin."""

__version__ = "0.1.0"
