"""pytest fixtures for the two test doubles (fake claude, fake GitHub)."""
