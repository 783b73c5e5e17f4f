"""Billing: contracts per brand and the hash-chained ledger that every billed line goes into."""
