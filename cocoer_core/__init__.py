"""CocoER: multi-level emotion recognition (Shen et al., CVPR 2025), re-implemented.

Also holds the embedded FER2013 face-expression baseline used when no CocoER
weights are present. Imports nothing from the rest of the project.
"""
