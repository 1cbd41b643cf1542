"""Classification rungs: the classical image-feature classifier (``classical*``), the torch classifiers
(``deep*``: a CNN from scratch, with ``ssl`` pretraining or ``transfer`` of ImageNet weights) and the ensemble.
Registered in :attr:`automed.tasks.classification.Classification.rungs`."""
