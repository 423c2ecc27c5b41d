"""Command-line tools at the edge: they combine cocoer_core with the pipeline's detectors."""
