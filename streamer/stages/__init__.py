"""What happens to a frame between its source and its outputs.

pipeline      threads and bounded queues with named policies, one stop event (capture -> detect+track)
detect_track  people and faces found, then kept as the same persons over time
emotion       who is due for the emotion model on a frame, and their answers folded into smoothing
batching      which frames of which sources go to the model together
smoothing     per-track, per-level smoothing and the track lifecycle
models        which emotion model runs, and where
"""
