"""Training: state pytrees, the generic loop, data parallelism and one step module per family."""
