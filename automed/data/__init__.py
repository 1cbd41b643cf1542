"""Data layer: readers/writers, dataset layouts, loading with checks, fingerprint, splits."""
