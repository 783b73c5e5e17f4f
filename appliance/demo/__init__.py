"""The embedded demo: two brands with their agents, an admin login and one key per brand."""
