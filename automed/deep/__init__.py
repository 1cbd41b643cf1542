"""Torch components of the deep rungs: data sampling, networks, training, inference, probes.

Everything here imports torch and MONAI; only rung modules import it, and only when a
deep rung is fitted or loaded.
"""
