"""apgbench: benchmark instance segmentation of cells and nuclei with foundation models."""

__version__ = "0.1.0"
