"""Stream analysis: capture, detection + tracking, emotion worker, overlay and sinks."""
