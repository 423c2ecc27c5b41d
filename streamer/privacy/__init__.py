"""Privacy and responsible use: faces hidden in what leaves the process, and the declared context of use.

- `faces.py`: every person's face blurred, pixelated or filled in a frame
  before any output (video, images, the live page, MJPEG, the report's
  thumbnails) gets it.
- `use.py`: where the tool runs and why (`use.context`, `use.purpose`), and
  the EU AI Act's rule for emotion recognition at work and in education.
"""
