"""Registration: displacement fields (:mod:`~automed.registration.fields`), pair scores
(:mod:`~automed.registration.scores`) and predictions (:mod:`~automed.registration.predict`)."""
