"""Data: volume I/O, the TensorStore volume store, clinical tables, phantoms and Grain pipelines."""
