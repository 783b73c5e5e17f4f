"""Numbered schema migrations; see `appliance.db.migrate`."""
