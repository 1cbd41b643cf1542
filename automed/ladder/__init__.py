"""Running the ladder: measuring cost and the run folder's side effects."""
