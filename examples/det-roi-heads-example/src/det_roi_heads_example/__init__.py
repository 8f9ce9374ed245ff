"""det-roi-heads-example: ``ExampleROIHeads``, a StandardROIHeads with a gated-MLP box head."""

__version__ = "0.1.0"
