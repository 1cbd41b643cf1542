"""Handcrafted features: per-voxel filter banks for segmentation."""
