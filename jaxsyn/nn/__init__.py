"""Building blocks shared by every model family (imports nothing else of jaxsyn)."""
