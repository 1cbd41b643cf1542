"""Which predictions not to trust: what a fit keeps of its training images and validation cases
(``quality.json``: :func:`automed.quality.segmentation.write_segmentation_quality`,
:func:`automed.quality.classification.write_classification_quality`, written by each task's ``finish``), and the
quality of each new case :func:`automed.ladder.predict.predict_run` predicts
(:meth:`automed.quality.record.QualityRecord.assess`): how far its image is from the training images, how unsure
the rung is, and a flag for review calibrated on the validation cases.
"""
