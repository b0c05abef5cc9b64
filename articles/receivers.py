"""Signal receivers of the articles app. Cache invalidation hooks land here (thin: one call each)."""
