"""Rho-Bank's systems, a separate local HTTP service for the demo: customers, bank and credit
card accounts, cards, transactions and the bank's records, seeded from τ²-bench's banking
database, with the rules of Rho-Bank's help center.

`store.py` keeps the documents in SQLite, `operations.py` is what each write does,
`identity.py` matches customers by what they know and runs one-time codes, `app.py` serves them
over HTTP; `appliance demo-backend bank` runs it under gunicorn.
"""
