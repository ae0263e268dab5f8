"""`jaxsyn bench`: throughput, analytic model FLOPs, MFU and compiled memory of each family's
training step and generation (`flops`, `peaks`, `cases`, `measure`)."""
