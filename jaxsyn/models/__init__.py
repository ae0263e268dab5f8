"""Model families: each module holds a config, Flax Linen modules, `init` and `generate`."""
