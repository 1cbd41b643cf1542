"""Segmentation rungs: the classical voxel classifier (``classical*``), the MONAI networks (``deep*``, one
implementation configured per registry entry) and the ensemble of networks. Registered in
:attr:`automed.tasks.segmentation.Segmentation.rungs`."""
