"""What people watch while a run goes on: the overlay drawn on frames, the desktop window, the live web page."""
