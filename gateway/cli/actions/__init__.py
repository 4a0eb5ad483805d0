"""What the operator commands do, one module per command group; imported only when a command
of the group runs (the command trees in :mod:`gateway.cli` name them as ``module:function``)."""
