"""Exchange with participants: agreements, submissions, inquiries (and later push, pull, feed)."""
