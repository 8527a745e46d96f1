"""Controllers of the JSON API under /api."""
