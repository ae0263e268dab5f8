"""jaxsyn: generative models for synthetic medical data in JAX."""

from jaxsyn.errors import CheckpointError, ConfigError, DataError, JaxsynError

__version__ = "0.1.0"

__all__ = ["CheckpointError", "ConfigError", "DataError", "JaxsynError", "__version__"]
