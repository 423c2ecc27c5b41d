"""Where a run's stages execute: `local` (threads in this process, the default)."""
